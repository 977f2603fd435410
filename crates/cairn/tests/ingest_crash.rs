//! Crash safety of ingestion with a real process: `cairn serve` is killed with SIGKILL while
//! documents are half embedded (a stand-in embedding provider answers slowly), one of them an
//! update of a document already searchable. Right after the kill, storage holds each document
//! whole or not at all: the old version of the update, never a mix. After a restart the jobs
//! complete, and every document holds each of its sentences exactly once (no duplicate, no
//! missing chunk), the update only its new version.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cairn_testkit::{Fault, StandIn};
use common::{free_port, ready, spawn, stored_markers, ADMIN_KEY};
use serde_json::{json, Value};

const DOCS: usize = 6;
const SENTENCES: usize = 96;

fn write_config(dir: &Path, url: &str, up: &StandIn) -> std::path::PathBuf {
    let rest = format!(
        r#"
[jobs]
lease_ms = 1500
poll_ms = 50
backoff_base_ms = 50
backoff_max_ms = 500
[providers.up]
kind = "openai"
base_url = "{}"
[models.emb]
kind = "embedding"
targets = [{{ provider = "up", model = "up-embed", timeouts = {{ first_token_ms = 10000, total_ms = 20000 }} }}]
"#,
        up.openai_url()
    );
    common::write_node_config(dir, url, &rest)
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> Value {
    let resp = client.post(url).bearer_auth(ADMIN_KEY).json(body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

/// Waits until `job` succeeded; fails if it is dead-lettered or takes longer than `within`.
async fn wait_succeeded(client: &reqwest::Client, base: &str, job: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let resp = client.get(format!("{base}/v1/jobs/{job}")).bearer_auth(ADMIN_KEY).send().await.unwrap();
        let j: Value = resp.json().await.unwrap();
        if j["state"] == "succeeded" {
            return;
        }
        assert_ne!(j["state"], "dead", "{j}");
        assert!(tokio::time::Instant::now() < deadline, "{job} did not complete: {j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A document whose every sentence carries a marker no other sentence has.
fn text(doc: &str, version: u32) -> String {
    (0..SENTENCES)
        .map(|i| format!("Marker {doc}v{version}s{i} belongs to one sentence of this long test document."))
        .collect::<Vec<_>>()
        .join(" ")
}

fn expected(doc: &str, version: u32) -> BTreeMap<String, usize> {
    (0..SENTENCES).map(|i| (format!("{doc}v{version}s{i}"), 1)).collect()
}

async fn a_server_killed_mid_ingestion_loses_nothing(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let config = write_config(dir.path(), &url, &up);
    let client = reqwest::Client::new();
    let port = free_port();
    let mut server = spawn(dir.path(), "serve-1", &config, &["serve"], port);
    let base = ready(&client, port).await;
    let col = post(
        &client,
        format!("{base}/v1/collections"),
        &json!({"name": "crash", "embedding_model": "emb", "chunk_max_tokens": 16, "chunk_overlap_tokens": 0}),
    )
    .await;
    let col = col["id"].as_str().unwrap().to_owned();
    let docs_url = format!("{base}/v1/collections/{col}/documents");

    // Version 1 of the manual, fully ingested.
    let first =
        post(&client, docs_url.clone(), &json!({"documents": [{"id": "manual", "text": text("manual", 1)}]})).await;
    let job = first["data"][0]["job_id"].as_str().unwrap().to_owned();
    wait_succeeded(&client, &base, &job, Duration::from_secs(60)).await;

    // Slow embeddings from here on, so the kill lands mid-document.
    up.push((0..2000).map(|_| Fault::SlowFirstToken(Duration::from_millis(150))));
    let before = up.request_count();
    let mut docs: Vec<Value> =
        (0..DOCS).map(|d| json!({"id": format!("d{d}"), "text": text(&format!("d{d}"), 1)})).collect();
    docs.push(json!({"id": "manual", "text": text("manual", 2)}));
    let accepted = post(&client, docs_url, &json!({ "documents": docs })).await;
    let jobs: Vec<String> =
        accepted["data"].as_array().unwrap().iter().map(|a| a["job_id"].as_str().unwrap().to_owned()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while up.request_count() < before + DOCS + 1 {
        assert!(tokio::time::Instant::now() < deadline, "ingestion did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // Whole or nothing: the manual is still exactly version 1; the others have no chunks yet.
    let store = cairn_store::open(&url, 2).await.unwrap();
    assert_eq!(
        stored_markers(&*store, &col, "manual", "manualv").await,
        expected("manual", 1),
        "old version intact, no mix"
    );
    let mut unfinished = 0;
    for d in 0..DOCS {
        let doc = format!("d{d}");
        let found = stored_markers(&*store, &col, &doc, &format!("{doc}v")).await;
        assert!(found.is_empty() || found == expected(&doc, 1), "{doc} half written: {} markers", found.len());
        unfinished += usize::from(found.is_empty());
    }
    assert!(unfinished > 0, "the kill landed before some documents were written");

    // Restarted, the jobs complete and every document is whole, once.
    let port = free_port();
    let mut restarted = spawn(dir.path(), "serve-2", &config, &["serve"], port);
    let base = ready(&client, port).await;
    for job in &jobs {
        wait_succeeded(&client, &base, job, Duration::from_secs(120)).await;
    }
    for d in 0..DOCS {
        let doc = format!("d{d}");
        assert_eq!(
            stored_markers(&*store, &col, &doc, &format!("{doc}v")).await,
            expected(&doc, 1),
            "{doc}: every sentence exactly once"
        );
        let got: Value = client
            .get(format!("{base}/v1/collections/{col}/documents/{doc}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["state"], "ready", "{got}");
    }
    assert_eq!(stored_markers(&*store, &col, "manual", "manualv").await, expected("manual", 2), "only the new version");
    let hits = post(
        &client,
        format!("{base}/v1/collections/{col}/search"),
        &json!({"query": "manualv1s5", "mode": "keyword"}),
    )
    .await;
    assert_eq!(hits["data"], json!([]), "no stale hit of the old version");
    let _ = restarted.kill();
    let _ = restarted.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_ingestion_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    a_server_killed_mid_ingestion_loses_nothing(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_ingestion_postgres() {
    a_server_killed_mid_ingestion_loses_nothing(cairn_store::conformance::fresh_pg_database().await).await;
}
