//! Happy paths: OpenAI format fidelity (JSON and SSE), tool calls both ways, Anthropic
//! translation, embeddings, accounting, and the operational endpoints.

use base64::Engine;
use serde_json::{json, Value};

use crate::{chat, setup, usage};

#[tokio::test]
async fn non_streaming_chat_passes_through_and_is_accounted() {
    let (s, up, _) = setup().await;
    let mut body = chat("fast");
    body["presence_penalty"] = json!(0.5);
    body["seed"] = json!(7);
    let resp = s.send_chat(&s.admin_key, &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
    assert_eq!(resp.headers()["x-cairn-provider"], "up");
    let c: Value = resp.json().await.unwrap();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["message"]["content"], "Hello from the stand-in.");
    assert_eq!(c["usage"]["total_tokens"], 15);

    let sent = &up.bodies()[0];
    assert_eq!(sent["model"], "up-model", "alias replaced by the upstream model");
    assert_eq!(sent["presence_penalty"], 0.5, "unknown fields pass through");
    assert_eq!(sent["seed"], 7);
    let h = &up.headers()[0];
    assert_eq!(h["authorization"], "Bearer sk-upstream-secret");
    assert_eq!(h["x-team"], "search");

    let (status, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["totals"]["requests"], 1);
    assert_eq!(u["totals"]["input_tokens"], 11);
    assert_eq!(u["totals"]["output_tokens"], 4);
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - 0.19).abs() < 1e-9, "{u}");
    assert_eq!(u["data"][0]["model"], "fast");
}

#[tokio::test]
async fn streaming_matches_the_openai_chunk_format() {
    let (s, up, _) = setup().await;
    let mut body = chat("fast");
    body["stream"] = json!(true);
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from the stand-in.");
    assert!(chunks.iter().all(|c| c.get("usage").is_none() && c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["choices"].as_array().unwrap().len() == 1), "no usage-only chunk unless asked");
    assert_eq!(chunks.iter().rev().find_map(|c| c["choices"][0]["finish_reason"].as_str()), Some("stop"));
    // Cairn always asks the upstream for usage, to account the stream.
    assert_eq!(up.bodies()[0]["stream_options"]["include_usage"], true);

    body["stream_options"] = json!({"include_usage": true});
    let (_, events) = s.stream(&s.admin_key, &body).await;
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let (last, rest) = chunks.split_last().unwrap();
    assert!(rest.iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()), "usage: null on content chunks");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 4);

    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["requests"], 2);
    assert_eq!(u["totals"]["output_tokens"], 8);
}

fn tool_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "stream": stream,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto"
    })
}

/// Joins streamed tool-call fragments into (id, name, arguments).
fn assemble_tool_call(events: &[String]) -> (String, String, String) {
    let (mut id, mut name, mut args) = (String::new(), String::new(), String::new());
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let c: Value = serde_json::from_str(e).unwrap();
        for tc in c["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            id.push_str(tc["id"].as_str().unwrap_or(""));
            name.push_str(tc["function"]["name"].as_str().unwrap_or(""));
            args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    (id, name, args)
}

#[tokio::test]
async fn tool_calls_work_both_ways_on_both_providers() {
    let (s, up, _) = setup().await;
    for model in ["fast", "claude"] {
        let (status, c) = s.post("/v1/chat/completions", &s.admin_key, &tool_request(model, false)).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls", "{model}");
        let call = &c["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["city"], "Oslo", "{model}");

        let (status, events) = s.stream(&s.admin_key, &tool_request(model, true)).await;
        assert_eq!(status, 200);
        let (id, name, args) = assemble_tool_call(&events);
        assert!(!id.is_empty() && name == "get_weather", "{model}: {events:?}");
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap()["city"], "Oslo");
    }
    // The Anthropic request carried the tool as Anthropic expects it.
    let anthropic_body = up.bodies().into_iter().find(|b| b["model"] == "claude-model").unwrap();
    assert_eq!(anthropic_body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(anthropic_body["tool_choice"], json!({"type": "auto"}));

    // A tool result goes back as an Anthropic tool_result block.
    let follow_up = json!({"model": "claude", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "-3C"}
    ]});
    let (status, c) = s.post("/v1/chat/completions", &s.admin_key, &follow_up).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["choices"][0]["message"]["content"], "Hello from the stand-in.");
    let sent = up.bodies().pop().unwrap();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(up.headers().pop().unwrap()["x-api-key"], "sk-upstream-secret");
}

#[tokio::test]
async fn anthropic_streams_become_openai_chunks_with_usage() {
    let (s, _, _) = setup().await;
    let mut body = chat("claude");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from the stand-in.");
    assert_eq!(chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str()), Some("stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 11);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn embeddings_as_floats_and_base64() {
    let (s, up, _) = setup().await;
    let body = json!({"model": "embed", "input": ["a b", "ccc"], "dimensions": 3});
    let (status, floats) = s.post("/v1/embeddings", &s.admin_key, &body).await;
    assert_eq!(status, 200, "{floats}");
    assert_eq!(floats["data"].as_array().unwrap().len(), 2);
    assert_eq!(floats["data"][1]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(up.bodies()[0]["dimensions"], 3);
    assert_eq!(up.bodies()[0]["encoding_format"], "float");

    let mut b64 = body.clone();
    b64["encoding_format"] = json!("base64");
    let (_, encoded) = s.post("/v1/embeddings", &s.admin_key, &b64).await;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(encoded["data"][1]["embedding"].as_str().unwrap()).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let expected: Vec<f32> =
        floats["data"][1]["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(decoded, expected);

    let (status, _) = s.post("/v1/embeddings", &s.admin_key, &json!({"model": "embed", "input": "one"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn models_openapi_docs_and_metrics() {
    let (s, _, _) = setup().await;
    let (status, models) = s.get("/v1/models", &s.admin_key).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["chain", "claude", "embed", "fast", "gpt", "narrow", "notools", "quick", "resilient"]);
    assert_eq!(models["data"][0]["cairn"]["targets"], json!(["up/up-model", "backup/backup-model"]));

    let spec: Value = s.client.get(format!("{}/openapi.json", s.base)).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/usage",
        "/v1/admin/keys",
        "/v1/admin/keys/{id}",
        "/v1/admin/tenants",
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/types",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/retry",
        "/v1/jobs/dead/retry",
        "/v1/jobs/purge",
        "/v1/collections",
        "/v1/collections/{id}",
        "/v1/collections/{id}/documents",
        "/v1/collections/{id}/documents/{doc}",
        "/v1/collections/{id}/search",
        "/v1/collections/{id}/files",
        "/v1/collections/{id}/answer",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let docs = s.client.get(format!("{}/docs/", s.base)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));

    assert_eq!(s.get("/readyz", "").await.0, 200);
    s.post("/v1/chat/completions", &s.admin_key, &chat("fast")).await;
    s.flush().await;
    let metrics = s.metrics().await;
    for family in [
        "cairn_http_requests_total",
        "cairn_model_calls_total",
        "cairn_model_latency_seconds_bucket",
        "cairn_model_tokens_total",
        "cairn_model_cost_usd_total",
        "cairn_breaker_state",
        "cairn_inflight_streams",
    ] {
        assert!(metrics.contains(family), "{family} missing");
    }
    assert!(metrics.contains("route=\"/v1/chat/completions\""));
}

#[tokio::test]
async fn accounting_and_usage_on_postgres() {
    let (up, backup) = (cairn_testkit::StandIn::start().await, cairn_testkit::StandIn::start().await);
    let url = cairn_store::conformance::fresh_pg_database().await;
    let s = cairn_testkit::TestServer::start_with(&crate::config(&up, &backup), Some(url)).await;
    let key = s.key("acme", "member", json!({})).await;
    for stream in [false, true] {
        let mut body = chat("fast");
        body["stream"] = json!(stream);
        let (status, _) = s.post("/v1/chat/completions", &key, &body).await;
        assert_eq!(status, 200);
    }
    let (status, u) = usage(&s, &key, "").await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["totals"]["requests"], 2);
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - 0.38).abs() < 1e-9);
    assert_eq!(u["data"][0]["tenant_id"], "acme");
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_streams_finish() {
    let (s, up, _) = setup().await;
    up.push([cairn_testkit::Fault::ChunkDelay(std::time::Duration::from_millis(150))]);
    let mut body = chat("fast");
    body["stream"] = json!(true);
    let resp = s.send_chat(&s.admin_key, &body).await;
    assert_eq!(resp.status(), 200);
    s.shutdown.cancel();
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    s.handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn streams_still_open_after_the_grace_period_are_cut_cleanly() {
    let (up, backup) = (cairn_testkit::StandIn::start().await, cairn_testkit::StandIn::start().await);
    let config = crate::config(&up, &backup).replace("[server]", "[server]\nshutdown_grace_secs = 0");
    let s = cairn_testkit::TestServer::start(&config).await;
    up.push([cairn_testkit::Fault::ChunkDelay(std::time::Duration::from_secs(2))]);
    let mut body = chat("fast");
    body["stream"] = json!(true);
    let mut resp = s.send_chat(&s.admin_key, &body).await;
    assert!(resp.chunk().await.unwrap().is_some());
    s.shutdown.cancel();
    let mut rest = Vec::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&bytes);
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("shutting down") && rest.contains("stream_interrupted"), "{rest}");
    s.handle.await.unwrap().unwrap();
    up.wait_hang_ups(1).await;
}

#[tokio::test]
async fn cors_follows_the_config() {
    let (up, backup) = (cairn_testkit::StandIn::start().await, cairn_testkit::StandIn::start().await);
    let config = crate::config(&up, &backup)
        .replace("[server]", "[server]\ncors_allowed_origins = [\"https://app.example.com\"]");
    let s = cairn_testkit::TestServer::start(&config).await;
    let preflight = |origin: &'static str| {
        s.client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/chat/completions", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
