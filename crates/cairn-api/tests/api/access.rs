//! Keys, roles, tenant separation, rate limits and budgets.

use serde_json::json;

use crate::{chat, setup, usage};

#[tokio::test]
async fn keys_and_roles() {
    let (s, _, _) = setup().await;
    let reader = s.key("acme", "reader", json!({})).await;
    let member = s.key("acme", "member", json!({})).await;

    assert_eq!(s.get("/v1/models", &reader).await.0, 200);
    let (status, body) = s.post("/v1/chat/completions", &reader, &chat("fast")).await;
    assert_eq!((status, body["error"]["type"].as_str()), (403, Some("permission_error")));
    let (status, _) = s.post("/v1/admin/keys", &member, &json!({"tenant_id": "acme"})).await;
    assert_eq!(status, 403);
    assert_eq!(s.post("/v1/chat/completions", &member, &chat("fast")).await.0, 200);

    let (status, body) = s.get("/v1/models", "sk-cairn-0000000000000000000000000000000000000000000000000").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(s.get("/v1/models", "not-a-key").await.0, 401);
    let resp = s.client.get(format!("{}/v1/models", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // Keys are listed without secrets, and revocation takes effect at once.
    let (_, keys) = s.get("/v1/admin/keys?tenant_id=acme", &s.admin_key).await;
    let listed = keys["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|k| k.get("secret").is_none() && k.get("hash").is_none()));
    let member_id = listed.iter().find(|k| k["role"] == "member").unwrap()["id"].as_str().unwrap().to_owned();
    let resp = s
        .client
        .delete(format!("{}/v1/admin/keys/{member_id}", s.base))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = s.post("/v1/chat/completions", &member, &chat("fast")).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    let resp =
        s.client.delete(format!("{}/v1/admin/keys/key_nope", s.base)).bearer_auth(&s.admin_key).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn usage_is_separated_by_tenant() {
    let (s, _, _) = setup().await;
    let a = s.key("tenant-a", "member", json!({})).await;
    let b = s.key("tenant-b", "member", json!({})).await;
    s.post("/v1/chat/completions", &a, &chat("fast")).await;
    s.post("/v1/chat/completions", &b, &chat("fast")).await;
    s.post("/v1/chat/completions", &b, &chat("fast")).await;

    let (_, ua) = usage(&s, &a, "").await;
    assert_eq!(ua["totals"]["requests"], 1);
    assert!(ua["data"].as_array().unwrap().iter().all(|d| d["tenant_id"] == "tenant-a"));
    let (status, _) = usage(&s, &a, "?tenant=tenant-b").await;
    assert_eq!(status, 403);
    let (_, ub) = usage(&s, &s.admin_key, "?tenant=tenant-b").await;
    assert_eq!(ub["totals"]["requests"], 2);
    let (_, all) = usage(&s, &s.admin_key, "").await;
    assert_eq!(all["totals"]["requests"], 3);
    let (_, by_model) = usage(&s, &s.admin_key, "?model=chain").await;
    assert_eq!(by_model["totals"]["requests"], 0);
}

#[tokio::test]
async fn requests_per_minute_limit() {
    let (s, _, _) = setup().await;
    let key = s.key("acme", "member", json!({"requests_per_minute": 2})).await;
    for _ in 0..2 {
        assert_eq!(s.post("/v1/chat/completions", &key, &chat("fast")).await.0, 200);
    }
    let resp = s
        .client
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&key)
        .json(&chat("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn tokens_per_minute_limit() {
    let (s, _, _) = setup().await;
    let key = s.key("acme", "member", json!({"tokens_per_minute": 10})).await;
    assert_eq!(s.post("/v1/chat/completions", &key, &chat("fast")).await.0, 200);
    let (status, body) = s.post("/v1/chat/completions", &key, &chat("fast")).await;
    assert_eq!(status, 429, "15 tokens used of 10 per minute: {body}");
}

#[tokio::test]
async fn monthly_budget() {
    let (s, _, _) = setup().await;
    // Each call costs $0.19 and reserves up to $0.33 (its prompt's byte bound and 4 output
    // tokens): two fit under $0.60 one after the other, the third's worst case does not.
    let key = s.key("acme", "member", json!({"monthly_budget_usd": 0.6})).await;
    let capped = json!({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "Say hello"}]});
    assert_eq!(s.post("/v1/chat/completions", &key, &capped).await.0, 200);
    assert_eq!(s.post("/v1/chat/completions", &key, &capped).await.0, 200);
    let (status, body) = s.post("/v1/chat/completions", &key, &capped).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("budget_exceeded")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("$0.3800 spent"), "{message}");
}

#[tokio::test]
async fn a_tenant_admin_cannot_touch_another_tenant() {
    let (s, _, _) = setup().await;
    let admin_a = s.key("tenant-a", "admin", json!({})).await;
    let member_b = s.key("tenant-b", "member", json!({})).await;
    let (status, col) =
        s.post("/v1/collections", &member_b, &json!({"name": "docs", "embedding_model": "embed"})).await;
    assert_eq!(status, 201, "{col}");
    let col_id = col["id"].as_str().unwrap();
    let (status, job) = s.post("/v1/jobs", &member_b, &json!({"type": "noop", "payload": {}})).await;
    assert_eq!(status, 201, "{job}");
    let job_id = job["id"].as_str().unwrap();

    // What belongs to tenant B is invisible: not found, never "forbidden", so ids leak nothing.
    let (_, listed) = s.get("/v1/collections", &admin_a).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|c| c["tenant_id"] == "tenant-a"), "{listed}");
    assert_eq!(s.get(&format!("/v1/collections/{col_id}"), &admin_a).await.0, 404);
    let deleted = s.client.delete(format!("{}/v1/collections/{col_id}", s.base)).bearer_auth(&admin_a).send().await;
    assert_eq!(deleted.unwrap().status(), 404);
    assert_eq!(s.get(&format!("/v1/jobs/{job_id}"), &admin_a).await.0, 404);
    assert_eq!(s.post(&format!("/v1/jobs/{job_id}/cancel"), &admin_a, &json!({})).await.0, 404);
    // Acting for tenant B, or on the instance, is refused.
    for (path, body) in [
        ("/v1/admin/keys", json!({"tenant_id": "tenant-b", "role": "admin"})),
        ("/v1/admin/tenants", json!({"id": "tenant-c"})),
        ("/v1/collections", json!({"name": "x", "embedding_model": "embed", "tenant_id": "tenant-b"})),
        ("/v1/jobs", json!({"type": "noop", "payload": {}, "tenant_id": "tenant-b"})),
        ("/v1/jobs/purge", json!({"older_than_secs": 0, "tenant_id": "tenant-b"})),
    ] {
        let (status, body) = s.post(path, &admin_a, &body).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    for path in ["/v1/admin/keys?tenant_id=tenant-b", "/v1/usage?tenant=tenant-b", "/v1/jobs?tenant_id=tenant-b"] {
        assert_eq!(s.get(path, &admin_a).await.0, 403, "{path}");
    }
    // Its own tenant it manages: keys up to admin, not owner.
    let (status, _) = s.post("/v1/admin/keys", &admin_a, &json!({"tenant_id": "tenant-a", "role": "member"})).await;
    assert_eq!(status, 201);
    let (status, _) = s.post("/v1/admin/keys", &admin_a, &json!({"tenant_id": "tenant-a", "role": "owner"})).await;
    assert_eq!(status, 403);
    // Tenant B's collection is still there.
    assert_eq!(s.get(&format!("/v1/collections/{col_id}"), &member_b).await.0, 200);
}

#[tokio::test]
async fn open_streams_per_key_are_bounded() {
    let up = cairn_testkit::StandIn::start().await;
    let config = format!(
        "[gateway]\nmax_streams_per_key = 1\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.fast]\ntargets = [{{ provider = \"up\", model = \"m\" }}]\n",
        up.openai_url()
    );
    let s = cairn_testkit::TestServer::start(&config).await;
    let key = s.key("acme", "member", json!({})).await;
    let other = s.key("acme", "member", json!({})).await;
    let (_, job) = s.post("/v1/jobs", &key, &json!({"type": "noop", "payload": {}, "delay_ms": 3_600_000})).await;
    let events = format!("{}/v1/jobs/{}/events", s.base, job["id"].as_str().unwrap());
    let watcher = s.client.get(&events).bearer_auth(&key).send().await.unwrap();
    assert_eq!(watcher.status(), 200);
    // The key's one stream is taken: another watcher and a streamed chat wait their turn.
    let second = s.client.get(&events).bearer_auth(&key).send().await.unwrap();
    assert_eq!(second.status(), 429);
    let stream = json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(s.send_chat(&key, &stream).await.status(), 429);
    // Another key has its own; closing the watcher gives the slot back.
    assert_eq!(s.send_chat(&other, &stream).await.status(), 200);
    drop(watcher);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.client.get(&events).bearer_auth(&key).send().await.unwrap().status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
