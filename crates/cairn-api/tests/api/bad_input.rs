//! Bad input gets a 4xx in the OpenAI error shape, never a 500, and changes nothing.

use serde_json::{json, Value};

use crate::{chat, setup};

fn assert_error_shape(body: &Value) {
    let e = &body["error"];
    assert!(e["message"].is_string() && e["type"].is_string(), "{body}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{body}");
}

#[tokio::test]
async fn malformed_and_mistyped_requests_are_400() {
    let (s, up, _) = setup().await;
    let raw = |body: &'static str| {
        s.client
            .post(format!("{}/v1/chat/completions", s.base))
            .bearer_auth(&s.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "{not json",
        "",
        "[1,2]",
        r#"{"model":"fast"}"#,
        r#"{"model":5,"messages":[]}"#,
        r#"{"model":"fast","messages":[{"role":"wizard","content":"x"}]}"#,
    ] {
        let resp = raw(body).await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        assert_error_shape(&resp.json().await.unwrap());
    }
    let cases = [
        (json!({"model": "fast", "messages": []}), "messages"),
        (json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "n": 2}), "n"),
        (json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": 9}), "temperature"),
        (json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}), "max_tokens"),
        (
            json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
        ),
        (
            json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}}),
            "stream_options",
        ),
        (json!({"model": "fast", "messages": [{"role": "tool", "content": "x"}]}), "messages[0].tool_call_id"),
        (
            json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}),
            "response_format",
        ),
        (json!({"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}), "temperature"),
        (json!({"model": "embed", "messages": [{"role": "user", "content": "x"}]}), "model"),
    ];
    for (body, param) in cases {
        let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &body).await;
        assert_eq!(status, 400, "{body} -> {resp}");
        assert_error_shape(&resp);
        assert_eq!(resp["error"]["param"], param, "{resp}");
    }
    let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &chat("no-such-model")).await;
    assert_eq!((status, resp["error"]["code"].as_str()), (404, Some("model_not_found")));
    assert_eq!(up.request_count(), 0, "nothing invalid reached the upstream");
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let (s, up, _) = setup().await;
    let big = "x".repeat(100_000);
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            &s.admin_key,
            &json!({"model": "fast", "messages": [{"role": "user", "content": big}]}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error_shape(&body);
    assert_eq!(up.request_count(), 0);
}

#[tokio::test]
async fn bad_embeddings_usage_and_admin_requests_are_4xx() {
    let (s, _, _) = setup().await;
    let cases: Vec<(&str, Value, u16)> = vec![
        ("/v1/embeddings", json!({"model": "embed", "input": []}), 400),
        ("/v1/embeddings", json!({"model": "embed", "input": 42}), 400),
        ("/v1/embeddings", json!({"model": "embed", "input": "x", "encoding_format": "hex"}), 400),
        ("/v1/embeddings", json!({"model": "fast", "input": "x"}), 400),
        ("/v1/embeddings", json!({"model": "nope", "input": "x"}), 404),
        ("/v1/admin/tenants", json!({"id": "Bad Id"}), 400),
        ("/v1/admin/tenants", json!({"id": "ok", "extra": 1}), 400),
        ("/v1/admin/keys", json!({"tenant_id": "ghost"}), 404),
        ("/v1/admin/keys", json!({"tenant_id": "default", "role": "god"}), 400),
        ("/v1/admin/keys", json!({"tenant_id": "default", "limits": {"monthly_budget_usd": -1}}), 400),
    ];
    for (path, body, expected) in cases {
        let (status, resp) = s.post(path, &s.admin_key, &body).await;
        assert_eq!(status, expected, "{path} {body} -> {resp}");
        assert_error_shape(&resp);
    }
    assert_eq!(s.post("/v1/admin/tenants", &s.admin_key, &json!({"id": "dup"})).await.0, 201);
    assert_eq!(s.post("/v1/admin/tenants", &s.admin_key, &json!({"id": "dup"})).await.0, 409);
    for q in ["?from=yesterday", "?from=2026-02-31", "?key_id=1&from=x", "?to=%2B2026-01-01"] {
        let (status, resp) = s.get(&format!("/v1/usage{q}"), &s.admin_key).await;
        assert_eq!(status, 400, "{q} -> {resp}");
        assert_error_shape(&resp);
    }
    // Any window is fine; one that ends before it starts holds nothing.
    let (status, resp) = s.get("/v1/usage?from=2026-05-01&to=2026-04-01", &s.admin_key).await;
    assert_eq!((status, &resp["data"]), (200, &json!([])), "{resp}");
    assert_eq!(s.get("/v1/usage?from=2000-01-01&to=2026-01-01", &s.admin_key).await.0, 200);
    let (status, resp) = s.get("/v1/nope", &s.admin_key).await;
    assert_eq!(status, 404);
    assert_error_shape(&resp);
    let resp = s.client.put(format!("{}/v1/models", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}
