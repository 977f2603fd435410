//! Both storage backends pass the same conformance suite.

use cairn_store::conformance;

#[tokio::test]
async fn sqlite_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/cairn.db").display());
    conformance::run_all(cairn_store::open(&url, 4).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_passes_the_suite() {
    let url = conformance::fresh_pg_database().await;
    conformance::run_all(cairn_store::open(&url, 4).await.unwrap()).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_skips_applied_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    let store = cairn_store::open(&url, 2).await.unwrap();
    let t = cairn_core::tenancy::Tenant { id: "t".into(), name: "T".into(), created_at_ms: 1 };
    store.create_tenant(&t).await.unwrap();
    drop(store);
    let store = cairn_store::open(&url, 2).await.unwrap();
    assert_eq!(store.get_tenant("t").await.unwrap(), Some(t));
}

#[tokio::test]
async fn unsupported_url_is_an_error() {
    assert!(cairn_store::open("mysql://x", 1).await.is_err());
}
