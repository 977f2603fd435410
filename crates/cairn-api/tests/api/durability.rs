//! When an answer leaves relative to its usage record (`gateway.usage_commit`), checked with
//! SQLite's write lock held by another connection, so no record can be committed meanwhile.

use std::time::Duration;

use cairn_testkit::{StandIn, TestServer};
use serde_json::json;
use sqlx::{Connection, SqliteConnection};

use crate::{chat, config};

/// A server whose `[gateway]` section also says `extra`, a member key, and a connection that
/// holds the database's write lock until it is dropped or rolled back.
async fn locked_server(extra: &str) -> (TestServer, String, SqliteConnection, StandIn, StandIn) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let toml = config(&up, &backup).replacen("[gateway]\n", &format!("[gateway]\n{extra}\n"), 1);
    let s = TestServer::start(&toml).await;
    let key = s.key("acme", "member", json!({})).await;
    let mut blocker = SqliteConnection::connect(&s.database_url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();
    (s, key, blocker, up, backup)
}

#[tokio::test]
async fn by_default_an_answer_waits_for_its_usage_record() {
    let (s, key, mut blocker, _up, _backup) = locked_server("").await;
    let body = chat("fast");
    let call = s.post("/v1/chat/completions", &key, &body);
    tokio::pin!(call);
    // The record cannot be committed while the lock is held, so the answer does not leave.
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut call).await.is_err(), "answered before its record");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert_eq!(call.await.0, 200);
    let (_, u) = s.get("/v1/usage", &key).await;
    assert_eq!(u["totals"]["requests"], 1, "{u}");
}

#[tokio::test]
async fn after_answer_sends_the_answer_first_and_still_records_the_call() {
    let (s, key, mut blocker, _up, _backup) = locked_server("usage_commit = \"after_answer\"").await;
    // Answered while no record can be written (waiting would take SQLite's 10 s busy timeout).
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(5), s.post("/v1/chat/completions", &key, &chat("fast")))
            .await
            .expect("answered without waiting for the record");
    assert_eq!(status, 200, "{body}");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    // The record follows: the usage report writes queued records before it reads.
    let (_, u) = s.get("/v1/usage", &key).await;
    assert_eq!(u["totals"]["requests"], 1, "{u}");
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - 0.19).abs() < 1e-9, "{u}");
}

#[tokio::test]
async fn an_unknown_usage_commit_is_refused_at_start() {
    let err = cairn_core::config::Config::from_toml("[gateway]\nusage_commit = \"whenever\"\n")
        .expect_err("refused")
        .to_string();
    assert!(err.contains("usage_commit") || err.contains("whenever"), "{err}");
}
