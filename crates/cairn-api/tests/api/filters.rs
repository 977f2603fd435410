//! Metadata filters of every kind and PII redaction, through the real HTTP API: each filter
//! operator narrows keyword and vector results inside the retrievers; personal data is masked
//! before storage while look-alikes that fail their checksums stay; an updated document leaves
//! no stale hit. Embeddings come from a stand-in provider, so these run without a model.

use std::time::Duration;

use cairn_testkit::{StandIn, TestServer};
use serde_json::{json, Value};

async fn server() -> (TestServer, StandIn, String, String) {
    let up = StandIn::start().await;
    let config = format!(
        "[jobs]\npoll_ms = 20\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.emb]\nkind = \"embedding\"\ntargets = [{{ provider = \"up\", model = \"e\" }}]\n",
        up.openai_url()
    );
    let s = TestServer::start(&config).await;
    let key = s.key("acme", "member", json!({})).await;
    let (status, col) = s.post("/v1/collections", &key, &json!({"name": "f", "embedding_model": "emb"})).await;
    assert_eq!(status, 201, "{col}");
    let col = col["id"].as_str().unwrap().to_owned();
    (s, up, key, col)
}

async fn add(s: &TestServer, key: &str, col: &str, docs: Value) {
    let (status, accepted) =
        s.post(&format!("/v1/collections/{col}/documents"), key, &json!({ "documents": docs })).await;
    assert_eq!(status, 202, "{accepted}");
    for a in accepted["data"].as_array().unwrap() {
        let job = a["job_id"].as_str().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, j) = s.get(&format!("/v1/jobs/{job}"), key).await;
            if j["state"] == "succeeded" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{j}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn ids(s: &TestServer, key: &str, col: &str, mode: &str, filter: Value) -> Vec<String> {
    let body = json!({"query": "kettle", "mode": mode, "top_k": 10, "filter": filter});
    let (status, hits) = s.post(&format!("/v1/collections/{col}/search"), key, &body).await;
    assert_eq!(status, 200, "{filter}: {hits}");
    let mut out: Vec<String> =
        hits["data"].as_array().unwrap().iter().map(|h| h["document_id"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_filter_kind_applies_inside_both_retrievers() {
    let (s, _up, key, col) = server().await;
    add(
        &s,
        &key,
        &col,
        json!([
            {"id": "a", "text": "The copper kettle.", "metadata": {"colour": "copper", "litres": 1.7, "sold": "2024-03-01", "tags": ["steel", "new"], "stock": true}},
            {"id": "b", "text": "The slate kettle.", "metadata": {"colour": "slate", "litres": 1.2, "sold": "2023-11-20", "tags": ["old"], "stock": false}},
            {"id": "c", "text": "The white kettle.", "metadata": {"colour": "white", "litres": 2.0, "sold": "2025-01-15"}},
        ]),
    )
    .await;
    let cases = [
        (json!({"field": "colour", "eq": "slate"}), vec!["b"]),
        (json!({"field": "colour", "ne": "slate"}), vec!["a", "c"]),
        (json!({"field": "colour", "in": ["copper", "white"]}), vec!["a", "c"]),
        (json!({"field": "litres", "gt": 1.2, "lt": 2.0}), vec!["a"]),
        (json!({"field": "litres", "gte": 1.2, "lte": 1.7}), vec!["a", "b"]),
        (json!({"field": "sold", "gte": "2024-01-01"}), vec!["a", "c"]),
        (json!({"field": "sold", "lt": "2024-01-01T00:00:00Z"}), vec!["b"]),
        (json!({"field": "tags", "eq": "new"}), vec!["a"]),
        (json!({"field": "stock", "exists": true}), vec!["a", "b"]),
        (json!({"field": "stock", "exists": false}), vec!["c"]),
        (json!({"field": "stock", "eq": true}), vec!["a"]),
        (json!({"and": [{"field": "litres", "gte": 1.5}, {"not": {"field": "colour", "eq": "white"}}]}), vec!["a"]),
        (json!({"or": [{"field": "colour", "eq": "slate"}, {"field": "litres", "gt": 1.9}]}), vec!["b", "c"]),
        (json!({"field": "colour", "eq": "purple"}), vec![]),
    ];
    for (filter, want) in cases {
        for mode in ["keyword", "vector", "hybrid"] {
            assert_eq!(ids(&s, &key, &col, mode, filter.clone()).await, want, "{mode} {filter}");
        }
    }
    for bad in [
        json!({"field": "x", "like": 1}),
        json!({"and": "x"}),
        json!({"field": "sold", "gte": "yesterday"}),
        json!([1]),
    ] {
        let body = json!({"query": "kettle", "filter": bad});
        let (status, e) = s.post(&format!("/v1/collections/{col}/search"), &key, &body).await;
        assert_eq!((status, e["error"]["param"].as_str()), (400, Some("filter")), "{bad}: {e}");
    }
}

#[tokio::test]
async fn personal_data_is_masked_and_look_alikes_stay() {
    let (s, _up, key, col) = server().await;
    let text = "Card 4111 1111 1111 1111 and not-a-card 4111 1111 1111 1112. \
                IBAN GB82 WEST 1234 5698 7654 32, not GB00 WEST 1234 5698 7654 32. \
                SSN 123-45-6789, not 000-12-3456. Mail jane.doe@example.com, call +1 415 555 0132. \
                Host 192.168.10.20. Key sk-proj-abcdefghijklmnopqrstuvwxyz123456. Invoice 2024-03-01.";
    add(&s, &key, &col, json!([{"id": "p", "title": "Contact jane.doe@example.com", "text": text}])).await;
    let (_, hits) = s
        .post(
            &format!("/v1/collections/{col}/search"),
            &key,
            &json!({"query": "card iban ssn mail", "mode": "keyword"}),
        )
        .await;
    let stored: String = hits["data"].as_array().unwrap().iter().map(|h| h["text"].as_str().unwrap()).collect();
    for gone in ["4111 1111 1111 1111", "GB82 WEST", "123-45-6789", "jane.doe", "555 0132", "192.168.10.20", "sk-proj-"]
    {
        assert!(!stored.contains(gone), "{gone} reached storage: {stored}");
    }
    for kept in ["4111 1111 1111 1112", "GB00 WEST 1234 5698 7654 32", "000-12-3456", "2024-03-01"] {
        assert!(stored.contains(kept), "{kept} is not personal data: {stored}");
    }
    assert!(stored.contains("[EMAIL]") && stored.contains("[CARD]"), "{stored}");
    assert_eq!(hits["data"][0]["title"], "Contact [EMAIL]", "titles are redacted too");

    // An update replaces every chunk: nothing of the old text is found.
    add(&s, &key, &col, json!([{"id": "p", "text": "Only a kettle now."}])).await;
    let (_, hits) =
        s.post(&format!("/v1/collections/{col}/search"), &key, &json!({"query": "card iban", "mode": "keyword"})).await;
    assert_eq!(hits["data"], json!([]));
}

#[tokio::test]
async fn a_model_that_changes_its_vector_size_fails_the_document_not_the_collection() {
    let (s, up, key, col) = server().await;
    add(&s, &key, &col, json!([{"id": "ok", "text": "The copper kettle."}])).await;
    up.embed_with_dimensions(8);
    let (status, accepted) = s
        .post(
            &format!("/v1/collections/{col}/documents"),
            &key,
            &json!({"documents": [{"id": "ok", "text": "The slate kettle."}, {"id": "new", "text": "A new kettle."}]}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    for (i, doc) in ["ok", "new"].iter().enumerate() {
        let job = accepted["data"][i]["job_id"].as_str().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let j = loop {
            let (_, j) = s.get(&format!("/v1/jobs/{job}"), &key).await;
            if j["state"] == "dead" || j["state"] == "succeeded" {
                break j;
            }
            assert!(tokio::time::Instant::now() < deadline, "{j}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(j["state"], "dead", "a wrong size is not worth retrying: {j}");
        let (_, d) = s.get(&format!("/v1/collections/{col}/documents/{doc}"), &key).await;
        assert_eq!(d["state"], "failed", "{d}");
        assert!(d["error"].as_str().unwrap().contains("8-dimension vectors; the collection holds 4"), "{d}");
    }
    // The earlier version stays searchable, whole; the new document has nothing indexed.
    assert_eq!(ids(&s, &key, &col, "keyword", Value::Null).await, ["ok"]);
    let (_, hits) =
        s.post(&format!("/v1/collections/{col}/search"), &key, &json!({"query": "copper", "mode": "keyword"})).await;
    assert_eq!(hits["data"][0]["text"], "The copper kettle.");
    // A query embedded at the wrong size is refused with a 400, not a 500.
    let (status, e) =
        s.post(&format!("/v1/collections/{col}/search"), &key, &json!({"query": "kettle", "mode": "vector"})).await;
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("query")), "{e}");
}
