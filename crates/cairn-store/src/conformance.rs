//! The storage conformance suite: one set of behavioural checks that every backend must pass,
//! plus helpers that give each PostgreSQL test a fresh database of its own.

use std::sync::Arc;

use cairn_core::store::{Store, StoreError};
use cairn_core::tenancy::{ApiKey, KeyLimits, Role, Tenant};
use cairn_core::usage::{CallStatus, UsageQuery, UsageRecord};

/// Environment variable naming the PostgreSQL server tests use (a superuser URL).
pub const PG_URL_ENV: &str = "CAIRN_TEST_POSTGRES_URL";

/// Creates an empty database on the test PostgreSQL server and returns its URL.
///
/// Panics with instructions when `CAIRN_TEST_POSTGRES_URL` is unset: the PostgreSQL suite is
/// part of the test suite, and `scripts/test.sh` starts the server and sets the variable.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let base = std::env::var(PG_URL_ENV).unwrap_or_else(|_| {
        panic!("{PG_URL_ENV} is not set: run the suite with scripts/test.sh, which starts PostgreSQL")
    });
    let name = format!("cairn_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database path");
    format!("{prefix}/{name}")
}

fn tenant(id: &str) -> Tenant {
    Tenant { id: id.into(), name: format!("Tenant {id}"), created_at_ms: 1_000 }
}

fn key(id: &str, tenant: &str, role: Role) -> ApiKey {
    ApiKey {
        id: id.into(),
        tenant_id: tenant.into(),
        name: format!("key {id}"),
        role,
        prefix: "sk-cairn-abcd".into(),
        hash: format!("hash-{id}"),
        limits: KeyLimits { requests_per_minute: Some(60), tokens_per_minute: None, monthly_budget_usd: Some(12.5) },
        created_at_ms: 2_000,
        revoked_at_ms: None,
    }
}

/// A usage record for tests.
pub fn usage(id: &str, ts_ms: i64, tenant: &str, key: &str, model: &str, cost: f64) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        ts_ms,
        tenant_id: tenant.into(),
        key_id: key.into(),
        endpoint: "chat".into(),
        model_alias: model.into(),
        provider: "up".into(),
        upstream_model: "m".into(),
        input_tokens: 10,
        output_tokens: 5,
        tokens_estimated: false,
        cost_usd: cost,
        latency_ms: 42,
        ttft_ms: Some(7),
        output_tokens_per_s: Some(100.0),
        retries: 1,
        fallbacks: 0,
        streamed: true,
        status: CallStatus::Ok,
        error: None,
    }
}

/// Runs every check against `store`, which must be empty.
pub async fn run_all(store: Arc<dyn Store>) {
    tenants(&*store).await;
    keys(&*store).await;
    usage_records(&*store).await;
    store.ping().await.expect("ping");
}

async fn tenants(s: &dyn Store) {
    s.create_tenant(&tenant("acme")).await.unwrap();
    s.create_tenant(&tenant("globex")).await.unwrap();
    assert!(matches!(s.create_tenant(&tenant("acme")).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_tenant("acme").await.unwrap(), Some(tenant("acme")));
    assert_eq!(s.get_tenant("nope").await.unwrap(), None);
    let ids: Vec<_> = s.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["acme", "globex"]);
}

async fn keys(s: &dyn Store) {
    let k1 = key("k1", "acme", Role::Admin);
    s.insert_key(&k1).await.unwrap();
    s.insert_key(&key("k2", "globex", Role::Member)).await.unwrap();
    assert!(matches!(s.insert_key(&key("k3", "ghost", Role::Member)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.insert_key(&k1).await, Err(StoreError::Conflict(_))));

    assert_eq!(s.find_key_by_hash("hash-k1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.find_key_by_hash("hash-none").await.unwrap(), None);
    assert_eq!(s.list_keys(Some("globex")).await.unwrap().len(), 1);
    assert_eq!(s.list_keys(None).await.unwrap().len(), 2);
    assert_eq!(s.count_active_admin_keys().await.unwrap(), 1);

    let revoked = s.revoke_key("k1", 5_000).await.unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(5_000));
    // Revoking twice keeps the first time.
    assert_eq!(s.revoke_key("k1", 9_000).await.unwrap().revoked_at_ms, Some(5_000));
    assert_eq!(s.count_active_admin_keys().await.unwrap(), 0);
    assert!(matches!(s.revoke_key("ghost", 1).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get_key("k2").await.unwrap().unwrap().limits.monthly_budget_usd, Some(12.5));
}

async fn usage_records(s: &dyn Store) {
    let day = cairn_core::time::DAY_MS;
    let recs = vec![
        usage("r1", 10 * day + 5, "acme", "k1", "fast", 0.25),
        usage("r2", 10 * day + 9, "acme", "k1", "fast", 0.5),
        usage("r3", 11 * day, "acme", "k1", "fast", 1.0),
        usage("r4", 10 * day, "globex", "k2", "fast", 2.0),
        UsageRecord { status: CallStatus::Cut, ttft_ms: None, ..usage("r5", 10 * day + 1, "acme", "k1", "big", 0.0) },
    ];
    s.insert_usage(&recs).await.unwrap();
    // Re-inserting the same ids is a no-op, so a retried flush never double-counts.
    s.insert_usage(&recs[..2]).await.unwrap();
    assert_eq!(s.get_usage("r5").await.unwrap(), Some(recs[4].clone()));

    let all = UsageQuery { from_ms: 0, to_ms: 100 * day, ..Default::default() };
    let buckets = s.usage_buckets(&all).await.unwrap();
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    let acme_fast_day10 = &buckets[1];
    assert_eq!(
        (acme_fast_day10.day.as_str(), acme_fast_day10.model.as_str(), acme_fast_day10.requests),
        ("1970-01-11", "fast", 2)
    );
    assert!((acme_fast_day10.cost_usd - 0.75).abs() < 1e-9);
    assert_eq!(acme_fast_day10.input_tokens, 20);
    let big = buckets.iter().find(|b| b.model == "big").unwrap();
    assert_eq!(big.errors, 1);

    let acme = UsageQuery { tenant_id: Some("acme".into()), ..all.clone() };
    assert!(s.usage_buckets(&acme).await.unwrap().iter().all(|b| b.tenant_id == "acme"));
    let window = UsageQuery { from_ms: 11 * day, to_ms: 12 * day, ..all };
    assert_eq!(s.usage_buckets(&window).await.unwrap().len(), 1);

    assert!((s.key_spend_since("k1", 0).await.unwrap() - 1.75).abs() < 1e-9);
    assert!((s.key_spend_since("k1", 11 * day).await.unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(s.key_spend_since("nobody", 0).await.unwrap(), 0.0);
}
