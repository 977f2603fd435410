//! When an answer leaves relative to its usage record (`gateway.usage_commit`), checked with
//! the database's write lock held by another connection, so no record can be committed
//! meanwhile: on SQLite the default answers once the record is in the usage journal, on
//! PostgreSQL once it is committed.

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

/// The records each usage journal beside the SQLite database at `url` holds.
fn journal_records(url: &str) -> Vec<usize> {
    let dir = cairn_store::usage_journal_dir(url).expect("a SQLite database");
    std::fs::read_dir(dir)
        .expect("the journal folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .map(|p| cairn_gateway::journal::records_in(&p).expect("journal"))
        .collect()
}

#[tokio::test]
async fn by_default_on_sqlite_an_answer_is_journaled_instead_of_waiting() {
    let (s, key, mut blocker, _up, _backup) = locked_server("").await;
    // No record can be committed while the lock is held; the answer leaves once the record is
    // in the journal (waiting would take SQLite's 10 s busy timeout).
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(5), s.post("/v1/chat/completions", &key, &chat("fast")))
            .await
            .expect("answered without waiting for the commit");
    assert_eq!(status, 200, "{body}");
    let held = journal_records(&s.database_url);
    assert_eq!(held.iter().sum::<usize>(), 1, "the record is in the journal: {held:?}");
    assert_eq!(held.len(), 2);
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let (_, u) = s.get("/v1/usage", &key).await;
    assert_eq!(u["totals"]["requests"], 1, "{u}");
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - 0.19).abs() < 1e-9, "{u}");
    assert_eq!(journal_records(&s.database_url), vec![0, 0], "emptied once its records are committed");
}

#[tokio::test]
async fn on_postgres_an_answer_waits_for_its_usage_record() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let url = cairn_store::conformance::fresh_pg_database().await;
    let s = TestServer::start_with(&config(&up, &backup), Some(url.clone())).await;
    let key = s.key("acme", "member", json!({})).await;
    // Inserts need a lock this one excludes; reads do not.
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE usage_records IN SHARE MODE").execute(&mut blocker).await.unwrap();
    let body = chat("fast");
    let call = s.post("/v1/chat/completions", &key, &body);
    tokio::pin!(call);
    // A node of a cluster keeps nothing of its own: the answer waits for the commit.
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
