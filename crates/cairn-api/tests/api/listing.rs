//! The listings the dashboard reads: the calling key (`/v1/me`), runs by state with paging,
//! and a collection's documents by state; each per tenant, bad queries answered with 400.

use cairn_testkit::{Scripted, StandIn};
use serde_json::json;

use crate::runs::{agent, server, start, wait_job, wait_run};

#[tokio::test]
async fn runs_documents_and_the_caller_are_listed_per_tenant() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let acme = s.key("acme", "member", json!({"requests_per_minute": 100})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    let (status, me) = s.get("/v1/me", &acme).await;
    assert_eq!(status, 200);
    assert_eq!((me["tenant_id"].as_str(), me["role"].as_str()), (Some("acme"), Some("member")));
    assert_eq!(me["limits"]["requests_per_minute"], 100);
    assert_eq!(s.get("/v1/me", "sk-cairn-wrong").await.0, 401);

    // Three runs: two finished, one waiting for a client tool's output.
    let id = agent(
        &s,
        &acme,
        json!({"name": "a", "model": "fast", "instructions": "Be brief.",
        "tools": {"lookup": {"type": "client", "client": {"parameters": {"type": "object"}}}}}),
    )
    .await;
    up.script([Scripted::Text("one".into()), Scripted::Text("two".into())]);
    let done: Vec<String> = [start(&s, &acme, &id, "1").await, start(&s, &acme, &id, "2").await].into();
    for r in &done {
        wait_run(&s, &acme, r, &["succeeded"]).await;
    }
    up.script([Scripted::Calls(vec![("lookup".into(), json!({}))])]);
    let waiting = start(&s, &acme, &id, "3").await;
    wait_run(&s, &acme, &waiting, &["requires_action"]).await;

    let (status, page) = s.get("/v1/runs?state=requires_action", &acme).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], waiting.as_str());
    assert_eq!(page["data"][0]["pending"][0]["tool"], "lookup");
    // Newest first, two per page, then the rest.
    let (_, first) = s.get("/v1/runs?limit=2", &acme).await;
    let ids: Vec<&str> = first["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [waiting.as_str(), done[1].as_str()]);
    let next = first["next"].as_str().unwrap();
    let (_, second) = s.get(&format!("/v1/runs?limit=2&after={next}"), &acme).await;
    assert_eq!(second["data"][0]["id"], done[0].as_str());
    assert!(second["next"].is_null());
    // Another tenant sees none; bad queries are 400s.
    assert!(s.get("/v1/runs", &globex).await.1["data"].as_array().unwrap().is_empty());
    assert_eq!(s.get("/v1/runs?tenant=acme", &globex).await.0, 403);
    for q in ["limit=0", "limit=101", "state=sleeping", "color=red"] {
        assert_eq!(s.get(&format!("/v1/runs?{q}"), &acme).await.0, 400, "{q}");
    }

    // Documents by state: the failed ingestion alone.
    let (_, col) = s.post("/v1/collections", &acme, &json!({"name": "c", "embedding_model": "embed"})).await;
    let col = col["id"].as_str().unwrap().to_owned();
    let add = |id: &str| json!({"documents": [{"id": id, "text": "Refunds are allowed within 30 days."}]});
    let (_, accepted) = s.post(&format!("/v1/collections/{col}/documents"), &acme, &add("good")).await;
    wait_job(&s, &acme, accepted["data"][0]["job_id"].as_str().unwrap()).await;
    up.embed_with_dimensions(8);
    let (_, accepted) = s.post(&format!("/v1/collections/{col}/documents"), &acme, &add("bad")).await;
    let job = accepted["data"][0]["job_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.get(&format!("/v1/jobs/{job}"), &acme).await.1["state"] != "dead" {
        assert!(tokio::time::Instant::now() < deadline, "ingestion did not fail");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, failed) = s.get(&format!("/v1/collections/{col}/documents?state=failed"), &acme).await;
    let ids: Vec<&str> = failed["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bad"]);
    assert!(failed["data"][0]["error"].as_str().unwrap().contains("dimension"));
    let (_, ready) = s.get(&format!("/v1/collections/{col}/documents?state=ready"), &acme).await;
    assert_eq!(ready["data"][0]["id"], "good");
    assert_eq!(s.get(&format!("/v1/collections/{col}/documents?state=broken"), &acme).await.0, 400);
    assert_eq!(s.get(&format!("/v1/collections/{col}/documents?state=failed"), &globex).await.0, 404);
}
