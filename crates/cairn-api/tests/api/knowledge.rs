//! The knowledge layer through the real HTTP API with the in-process MiniLM: a collection,
//! documents ingested by jobs, hybrid search with a metadata filter, tenants kept apart, bad
//! input refused, deletes leaving no stale hit. Runs on both retrieval implementations: the
//! in-memory index (on SQLite and on PostgreSQL) and search inside PostgreSQL. Needs MiniLM in
//! the model cache.

use std::time::Duration;

use cairn_testkit::TestServer;
use serde_json::{json, Value};

const CONFIG: &str = "[local]\nthreads = 1\n[jobs]\npoll_ms = 20\n[providers.local]\nkind = \"local\"\n\n\
    [models.\"local/minilm\"]\nkind = \"embedding\"\ntargets = [{ provider = \"local\", model = \"minilm\" }]\n";

async fn wait_ready(s: &TestServer, key: &str, col: &str, doc: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, d) = s.get(&format!("/v1/collections/{col}/documents/{doc}"), key).await;
        assert_eq!(status, 200, "{d}");
        if d["state"] != "pending" {
            return d;
        }
        assert!(tokio::time::Instant::now() < deadline, "document {doc} still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ingest_and_search_through_http() {
    ingest_and_search(TestServer::start(CONFIG).await, ("sqlite", "memory", "process")).await;
}

#[tokio::test]
async fn ingest_and_search_inside_postgres() {
    let url = cairn_store::conformance::fresh_pg_database().await;
    let config = format!("{CONFIG}\n[knowledge]\nretrieval = \"database\"\n");
    ingest_and_search(TestServer::start_with(&config, Some(url)).await, ("postgres", "database", "database")).await;
}

#[tokio::test]
async fn ingest_and_search_in_memory_on_postgres() {
    let url = cairn_store::conformance::fresh_pg_database().await;
    let config = format!("{CONFIG}\n[knowledge]\nretrieval = \"memory\"\n");
    ingest_and_search(TestServer::start_with(&config, Some(url)).await, ("postgres", "memory", "database")).await;
}

/// The scenario, on a server whose `/readyz` says it runs on `storage`, searches in
/// `retrieval` and keeps rate limits in `rates`.
async fn ingest_and_search(s: TestServer, (storage, retrieval, rates): (&str, &str, &str)) {
    let (status, ready) = s.get("/readyz", "").await;
    assert_eq!(status, 200, "{ready}");
    let node = &ready["node"];
    assert_eq!((node["storage"].as_str(), node["retrieval"].as_str()), (Some(storage), Some(retrieval)), "{ready}");
    assert_eq!((node["rate_limits"].as_str(), node["budgets"].as_str()), (Some(rates), Some("database")), "{ready}");
    let key = s.key("acme", "member", json!({})).await;
    let other = s.key("globex", "member", json!({})).await;
    let (status, col) =
        s.post("/v1/collections", &key, &json!({"name": "papers", "embedding_model": "local/minilm"})).await;
    assert_eq!(status, 201, "{col}");
    assert_eq!(col["dimensions"], 384);
    let id = col["id"].as_str().unwrap().to_owned();

    let docs = json!({"documents": [
        {"id": "aspirin", "title": "Aspirin", "text": "# Aspirin\n\nAspirin reduces fever and relieves headaches. Contact jane@example.com.", "metadata": {"year": 2019}},
        {"id": "statins", "title": "Statins", "text": "Statins lower LDL cholesterol and the risk of heart attacks.", "metadata": {"year": 2023}}
    ]});
    let (status, accepted) = s.post(&format!("/v1/collections/{id}/documents"), &key, &docs).await;
    assert_eq!(status, 202, "{accepted}");
    assert!(accepted["data"][0]["job_id"].as_str().unwrap().starts_with("job_"));
    for doc in ["aspirin", "statins"] {
        let d = wait_ready(&s, &key, &id, doc).await;
        assert_eq!(d["state"], "ready", "{d}");
    }

    let (status, hits) =
        s.post(&format!("/v1/collections/{id}/search"), &key, &json!({"query": "medicine for a headache"})).await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["data"][0]["document_id"], "aspirin");
    assert!(!hits["data"][0]["text"].as_str().unwrap().contains("jane@"), "PII masked before storing");
    let recent = json!({"query": "medicine for a headache", "filter": {"field": "year", "gte": 2020}});
    let (_, hits) = s.post(&format!("/v1/collections/{id}/search"), &key, &recent).await;
    assert_eq!(
        hits["data"].as_array().unwrap().iter().map(|h| h["document_id"].clone()).collect::<Vec<_>>(),
        [json!("statins")]
    );
    for mode in ["keyword", "vector"] {
        let (status, hits) = s
            .post(&format!("/v1/collections/{id}/search"), &key, &json!({"query": "cholesterol statins", "mode": mode}))
            .await;
        assert_eq!(status, 200, "{hits}");
        assert_eq!(hits["data"][0]["document_id"], "statins", "{mode}: {hits}");
        assert!(hits["data"][0]["snippet"].as_str().unwrap().contains("<mark>Statins</mark>"), "{hits}");
    }

    // Chunk budgets are measured in MiniLM's own word pieces: these long words are several
    // pieces each, so a 16-token budget holds far fewer of them than the 12 an estimate allows.
    let (_, small) = s
        .post(
            "/v1/collections",
            &key,
            &json!({"name": "pieces", "embedding_model": "local/minilm", "chunk_max_tokens": 16, "chunk_overlap_tokens": 0}),
        )
        .await;
    let small = small["id"].as_str().unwrap().to_owned();
    let words = "immunohistochemistry pharmacokinetics electroencephalography ".repeat(8);
    let (status, _) = s
        .post(
            &format!("/v1/collections/{small}/documents"),
            &key,
            &json!({"documents": [{"id": "long", "text": words}]}),
        )
        .await;
    assert_eq!(status, 202);
    let d = wait_ready(&s, &key, &small, "long").await;
    assert!(d["chunk_count"].as_u64().unwrap() >= 12, "24 words of 4+ pieces at 16 tokens a chunk: {d}");

    // Bad input: clear 4xx, nothing written.
    let (status, err) = s
        .post(
            &format!("/v1/collections/{id}/search"),
            &key,
            &json!({"query": "x", "filter": {"field": "y", "like": 1}}),
        )
        .await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("filter")));
    let (status, _) =
        s.post(&format!("/v1/collections/{id}/documents"), &key, &json!({"documents": [{"text": " "}]})).await;
    assert_eq!(status, 400);
    let (status, err) = s.post("/v1/collections", &key, &json!({"name": "x", "embedding_model": "nope"})).await;
    assert_eq!(status, 404, "an unknown model is not found, as on /v1/embeddings: {err}");
    let (status, _) =
        s.post("/v1/collections", &key, &json!({"name": "papers", "embedding_model": "local/minilm"})).await;
    assert_eq!(status, 409);
    let (status, err) =
        s.post("/v1/collections", &key, &json!({"name": "h", "embedding_model": "local/minilm", "pii": "hash"})).await;
    // A sound request the server is not set up for (no CAIRN_PII_KEY in tests).
    assert_eq!(status, 409, "{err}");
    assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains("CAIRN_PII_KEY")), "{err}");

    // Another tenant sees nothing.
    assert_eq!(s.get(&format!("/v1/collections/{id}"), &other).await.0, 404);
    assert_eq!(s.post(&format!("/v1/collections/{id}/search"), &other, &json!({"query": "aspirin"})).await.0, 404);
    let (_, theirs) = s.get("/v1/collections", &other).await;
    assert_eq!(theirs["data"], json!([]));

    // Deletes leave no stale hit.
    let resp = s
        .client
        .delete(format!("{}/v1/collections/{id}/documents/aspirin", s.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, hits) = s
        .post(&format!("/v1/collections/{id}/search"), &key, &json!({"query": "aspirin headache", "mode": "keyword"}))
        .await;
    assert_eq!(hits["data"], json!([]));
    let resp = s.client.delete(format!("{}/v1/collections/{id}", s.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(s.get(&format!("/v1/collections/{id}"), &key).await.0, 404);
}
