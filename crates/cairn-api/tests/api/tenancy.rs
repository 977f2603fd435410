//! Documents belong to their collection, versions never go backwards, nothing raw is at rest,
//! and knowledge work is charged to (and limited by) the caller's key: through the real HTTP
//! API, with embeddings from a stand-in provider.

use std::time::Duration;

use cairn_testkit::{Fault, StandIn, TestServer};
use serde_json::{json, Value};

async fn server() -> (TestServer, StandIn) {
    let up = StandIn::start().await;
    let config = format!(
        "[jobs]\npoll_ms = 20\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.emb]\nkind = \"embedding\"\ntargets = [{{ provider = \"up\", model = \"e\" }}]\n",
        up.openai_url()
    );
    (TestServer::start(&config).await, up)
}

async fn collection(s: &TestServer, key: &str, name: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "embedding_model": "emb"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let (status, col) = s.post("/v1/collections", key, &body).await;
    assert_eq!(status, 201, "{col}");
    col["id"].as_str().unwrap().to_owned()
}

/// Adds documents and waits until each one's job has ended; returns the accepted list.
async fn add(s: &TestServer, key: &str, col: &str, docs: Value) -> Vec<Value> {
    let (status, accepted) =
        s.post(&format!("/v1/collections/{col}/documents"), key, &json!({ "documents": docs })).await;
    assert_eq!(status, 202, "{accepted}");
    let accepted = accepted["data"].as_array().unwrap().clone();
    for a in &accepted {
        wait_job(s, key, a["job_id"].as_str().unwrap()).await;
    }
    accepted
}

async fn wait_job(s: &TestServer, key: &str, job: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, j) = s.get(&format!("/v1/jobs/{job}"), key).await;
        if matches!(j["state"].as_str(), Some("succeeded" | "dead" | "cancelled")) {
            return j;
        }
        assert!(tokio::time::Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn texts(s: &TestServer, key: &str, col: &str, query: &str) -> Vec<String> {
    let body = json!({"query": query, "mode": "keyword", "top_k": 50});
    let (status, hits) = s.post(&format!("/v1/collections/{col}/search"), key, &body).await;
    assert_eq!(status, 200, "{hits}");
    hits["data"].as_array().unwrap().iter().map(|h| h["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_same_document_id_lives_in_two_tenants_and_two_collections() {
    let (s, _up) = server().await;
    let a = s.key("tenant-a", "member", json!({})).await;
    let b = s.key("tenant-b", "member", json!({})).await;
    let (a1, a2, b1) = (
        collection(&s, &a, "one", json!({})).await,
        collection(&s, &a, "two", json!({})).await,
        collection(&s, &b, "one", json!({})).await,
    );
    for (key, col, word) in [(&a, &a1, "apple"), (&a, &a2, "banana"), (&b, &b1, "cherry")] {
        add(&s, key, col, json!([{"id": "handbook.md", "text": format!("The {word} handbook.")}])).await;
    }
    assert_eq!(texts(&s, &a, &a1, "handbook").await, ["The apple handbook."]);
    assert_eq!(texts(&s, &a, &a2, "handbook").await, ["The banana handbook."]);
    assert_eq!(texts(&s, &b, &b1, "handbook").await, ["The cherry handbook."]);
    // Tenant A learns nothing of tenant B's document: the same 404 as for an id never used.
    let (status, body) = s.get(&format!("/v1/collections/{b1}/documents/handbook.md"), &a).await;
    let (never, never_body) = s.get(&format!("/v1/collections/{b1}/documents/never-used"), &a).await;
    assert_eq!((status, never), (404, 404));
    assert_eq!(body["error"]["code"], never_body["error"]["code"]);
    assert!(!body.to_string().contains("cherry") && !body.to_string().contains("tenant-b"));
    // Deleting one collection's copy spares the others.
    let resp = s.client.delete(format!("{}/v1/collections/{a1}/documents/handbook.md", s.base)).bearer_auth(&a).send();
    assert_eq!(resp.await.unwrap().status(), 204);
    assert!(texts(&s, &a, &a1, "handbook").await.is_empty());
    assert_eq!(texts(&s, &a, &a2, "handbook").await.len(), 1);
    assert_eq!(texts(&s, &b, &b1, "handbook").await.len(), 1);
}

#[tokio::test]
async fn an_old_version_finishing_after_a_new_one_changes_nothing() {
    let (s, up) = server().await;
    let key = s.key("acme", "member", json!({})).await;
    let col = collection(&s, &key, "docs", json!({"chunk_max_tokens": 16, "chunk_overlap_tokens": 0})).await;
    for round in 0..3 {
        // Version 1 is large and its first embedding call slow; version 2 is small and quick.
        up.push([Fault::SlowFirstToken(Duration::from_millis(300))]);
        let large: Vec<String> =
            (0..60).map(|i| format!("Oldword{round} paragraph {i} of the first version.")).collect();
        let url = format!("/v1/collections/{col}/documents");
        let v1 = json!({"documents": [{"id": "manual", "text": large.join("\n\n")}]});
        let v2 = json!({"documents": [{"id": "manual", "text": format!("Newword{round} is all version two says.")}]});
        let (status, first) = s.post(&url, &key, &v1).await;
        assert_eq!(status, 202, "{first}");
        let (status, second) = s.post(&url, &key, &v2).await;
        assert_eq!(status, 202, "{second}");
        for accepted in [&first, &second] {
            let job = wait_job(&s, &key, accepted["data"][0]["job_id"].as_str().unwrap()).await;
            assert_eq!(job["state"], "succeeded", "{job}");
        }
        assert!(texts(&s, &key, &col, &format!("oldword{round}")).await.is_empty(), "round {round}: v1 came back");
        assert_eq!(texts(&s, &key, &col, &format!("newword{round}")).await.len(), 1, "round {round}");
        let (_, doc) = s.get(&format!("/v1/collections/{col}/documents/manual"), &key).await;
        assert_eq!((doc["state"].as_str(), doc["version"].as_i64()), (Some("ready"), Some(2 * round + 2)), "{doc}");
    }
}

#[tokio::test]
async fn a_reader_sees_no_raw_personal_data_in_jobs_documents_or_hits() {
    let (s, _up) = server().await;
    let member = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let masked = collection(&s, &member, "masked", json!({})).await;
    let exempt = collection(&s, &member, "exempt", json!({"pii_exempt_fields": ["owner"]})).await;
    let doc = json!([{
        "id": "contract", "title": "Contract with jane@example.com",
        "text": "Contract. Write to jane@example.com or call +1 415 555 0132.",
        "metadata": {"owner": "jane@example.com", "year": 2024, "contacts": [{"email": "bob@example.org"}]}
    }]);
    let accepted = add(&s, &member, &masked, doc.clone()).await;
    let raw = ["jane@example.com", "bob@example.org", "555 0132"];
    let (_, job) = s.get(&format!("/v1/jobs/{}", accepted[0]["job_id"].as_str().unwrap()), &reader).await;
    let (_, stored) = s.get(&format!("/v1/collections/{masked}/documents/contract"), &reader).await;
    let (_, hits) = s
        .post(&format!("/v1/collections/{masked}/search"), &member, &json!({"query": "contract", "mode": "keyword"}))
        .await;
    for (what, body) in [("job", &job), ("document", &stored), ("hits", &hits), ("accepted", &accepted[0])] {
        for value in raw {
            assert!(!body.to_string().contains(value), "{what} holds {value}: {body}");
        }
    }
    assert_eq!(stored["metadata"]["year"], 2024, "numbers are not personal data");
    assert_eq!(stored["metadata"]["owner"], "[EMAIL]");
    // A collection may keep chosen metadata fields as they are.
    add(&s, &member, &exempt, doc).await;
    let (_, kept) = s.get(&format!("/v1/collections/{exempt}/documents/contract"), &reader).await;
    assert_eq!(kept["metadata"]["owner"], "jane@example.com");
    assert!(!kept["metadata"]["contacts"].to_string().contains("bob@"), "{kept}");
}

#[tokio::test]
async fn knowledge_work_is_charged_to_the_caller_and_limited() {
    let (s, _up) = server().await;
    let member = s.key("acme", "member", json!({})).await;
    let col = collection(&s, &member, "docs", json!({})).await;
    add(&s, &member, &col, json!([{"id": "a", "text": "Kettles boil water."}])).await;
    // A key with a $0 budget makes no model call: no collection, no vector search.
    let broke = s.key("acme", "member", json!({"monthly_budget_usd": 0.0})).await;
    let (status, body) = s.post("/v1/collections", &broke, &json!({"name": "x", "embedding_model": "emb"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("budget_exceeded")), "{body}");
    let (status, _) = s.post(&format!("/v1/collections/{col}/search"), &broke, &json!({"query": "kettle"})).await;
    assert_eq!(status, 429);
    // A rate limit bounds every route that costs work: searches, uploads, jobs.
    let slow = s.key("acme", "member", json!({"requests_per_minute": 2})).await;
    let search = json!({"query": "kettle", "mode": "keyword"});
    assert_eq!(s.post(&format!("/v1/collections/{col}/search"), &slow, &search).await.0, 200);
    assert_eq!(s.post("/v1/jobs", &slow, &json!({"type": "noop", "payload": {}})).await.0, 201);
    for (path, body) in [
        (format!("/v1/collections/{col}/search"), search.clone()),
        ("/v1/jobs".to_owned(), json!({"type": "noop", "payload": {}})),
        (format!("/v1/collections/{col}/documents"), json!({"documents": [{"text": "x"}]})),
    ] {
        let (status, body) = s.post(&path, &slow, &body).await;
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limit_exceeded")), "{path}: {body}");
    }
    // The member's ingestion and search embeddings are on its own key's usage.
    s.post(&format!("/v1/collections/{col}/search"), &member, &json!({"query": "kettle"})).await;
    s.flush().await;
    let (_, usage) = s.get("/v1/usage?model=emb", &member).await;
    let mine: u64 = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["key_id"] != Value::Null)
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert!(mine >= 3, "probe, ingestion and search embeddings: {usage}");
    assert!(
        usage["data"].as_array().unwrap().iter().all(|b| b["key_id"].as_str().unwrap().starts_with("key_")),
        "{usage}"
    );
}
