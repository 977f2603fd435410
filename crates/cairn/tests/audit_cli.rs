//! `cairn audit verify` over real storage: an intact chain passes; a row edited, or removed,
//! in the database makes it fail naming that row. On SQLite and on PostgreSQL.

use std::process::{Command, Output};

fn cairn(data: &std::path::Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_DATA_DIR", data)
        .env("CAIRN_STORAGE__URL", url)
        .env_remove("CAIRN_CONFIG")
        .output()
        .expect("run cairn")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `sql` on the database at `url`, as someone with access to it would.
async fn exec(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
}

/// Four audited actions through the CLI, then tampering checked by `cairn audit verify`.
async fn tampering_is_found(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(&cairn(data, url, &["keys", "create", "--tenant", "acme", "--role", "member"]));
    ok(&cairn(data, url, &["keys", "create", "--tenant", "acme", "--role", "reader", "--budget-usd", "5"]));
    let keys: serde_json::Value = serde_json::from_str(&ok(&cairn(data, url, &["keys", "list", "--json"]))).unwrap();
    let id = keys[0]["id"].as_str().unwrap();
    ok(&cairn(data, url, &["keys", "revoke", id]));
    let out = ok(&cairn(data, url, &["audit", "verify"]));
    assert!(out.contains("intact: 4 entries"), "{out}");

    let db = if url.is_empty() { format!("sqlite://{}", data.join("cairn.db").display()) } else { url.to_owned() };
    // Raise the reader key's budget in the log after the fact.
    let edited = r#"{"limits":{"monthly_budget_usd":5000.0},"name":"","role":"reader"}"#;
    exec(&db, &format!("UPDATE audit_log SET details = '{edited}' WHERE seq = 3")).await;
    let out = cairn(data, url, &["audit", "verify"]);
    assert!(!out.status.success(), "an edited row must fail the check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken at entry 3") && err.contains("edited"), "{err}");

    // Remove that row instead of editing it: the gap is named.
    exec(&db, "DELETE FROM audit_log WHERE seq = 3").await;
    let out = cairn(data, url, &["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("broken at entry 3") && err.contains("missing"), "{err}");
}

#[tokio::test]
async fn a_tampered_sqlite_chain_fails_verification_at_the_row() {
    tampering_is_found("").await;
}

#[tokio::test]
async fn a_tampered_postgres_chain_fails_verification_at_the_row() {
    tampering_is_found(&cairn_store::conformance::fresh_pg_database().await).await;
}
