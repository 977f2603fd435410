//! Failure handling: retries, retry-after, fallback, circuit breaker, timeouts, cut streams
//! (never retried once started), bodies that never end, and cancellation when the client goes
//! away.

use std::time::{Duration, Instant};

use cairn_testkit::Fault;
use serde_json::{json, Value};

use crate::{chat, setup, usage};

#[tokio::test]
async fn retries_5xx_and_bad_json_then_succeeds() {
    let (s, up, _) = setup().await;
    up.push([Fault::Status(500, None), Fault::MalformedJson]);
    let resp = s
        .client
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&s.admin_key)
        .json(&chat("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cairn-retries"], "2");
    assert_eq!(up.request_count(), 3);
    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["errors"], 0);
}

#[tokio::test]
async fn an_upstream_body_without_end_is_read_only_so_far() {
    let (s, up, _) = setup().await;
    // An error whose body never ends: its message is read up to a small limit, then retried.
    // An answer whose body never ends: read up to its limit (256 MiB), then retried too.
    up.push([Fault::EndlessBody(500), Fault::EndlessBody(200)]);
    let resp = s.send_chat(&s.admin_key, &chat("fast")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cairn-retries"], "2");
    // Cairn hung up on each: what was written stays near the two limits plus the sockets'
    // buffers, far from what a reader to the end would have taken before the call's timeout.
    let sent = up.endless_bytes_sent();
    assert!((256 << 20..320 << 20).contains(&sent), "{sent} bytes sent");
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let (s, up, _) = setup().await;
    up.push([Fault::Status(429, Some(1))]);
    let start = Instant::now();
    let (status, _) = s.post("/v1/chat/completions", &s.admin_key, &chat("fast")).await;
    assert_eq!(status, 200);
    assert!(start.elapsed() >= Duration::from_secs(1), "retried before retry-after elapsed");
    assert_eq!(up.request_count(), 2);
}

#[tokio::test]
async fn falls_back_to_the_next_target_and_accounts_it() {
    let (s, up, backup) = setup().await;
    up.push([Fault::Status(503, None), Fault::Status(503, None), Fault::Status(503, None)]);
    let resp = s
        .client
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&s.admin_key)
        .json(&chat("chain"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cairn-provider"], "backup");
    assert_eq!(resp.headers()["x-cairn-fallbacks"], "1");
    assert_eq!((up.request_count(), backup.request_count()), (3, 1));
    assert_eq!(backup.bodies()[0]["model"], "backup-model");
    s.flush().await;
    let metrics = s.metrics().await;
    assert!(metrics.contains("cairn_model_fallbacks_total{model=\"chain\"} 1"), "{metrics}");
}

#[tokio::test]
async fn client_errors_are_returned_not_retried() {
    let (s, up, backup) = setup().await;
    up.push([Fault::Status(400, None)]);
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &chat("chain")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert_eq!((up.request_count(), backup.request_count()), (1, 0));
}

#[tokio::test]
async fn breaker_opens_after_repeated_failures() {
    let (s, up, _) = setup().await;
    up.push(std::iter::repeat_n(Fault::Status(500, None), 3));
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &chat("fast")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "upstream_error");
    assert_eq!(up.request_count(), 3);
    // Three consecutive failures opened the breaker: the next call does not reach upstream.
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &chat("fast")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(up.request_count(), 3);
    let metrics = s.metrics().await;
    assert!(metrics.contains("cairn_breaker_state{provider=\"up\",model=\"up-model\"} 2"), "{metrics}");
}

#[tokio::test]
async fn slow_first_token_and_hangs_time_out() {
    let (s, up, _) = setup().await;
    // `quick` waits 300 ms for a first token: three slow attempts, then 504.
    up.push(std::iter::repeat_n(Fault::SlowFirstToken(Duration::from_secs(5)), 3));
    let mut body = chat("quick");
    body["stream"] = json!(true);
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 504, "{events:?}");
    up.wait_hang_ups(3).await;
    // Three timeouts in a row opened the breaker: the next call is refused at once.
    assert_eq!(s.post("/v1/chat/completions", &s.admin_key, &chat("quick")).await.0, 503);

    let (s, up, _) = setup().await;
    up.push(std::iter::repeat_n(Fault::Hang, 3));
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &chat("quick")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    up.wait_hang_ups(3).await;
}

#[tokio::test]
async fn a_cut_stream_is_never_retried_and_is_accounted() {
    let (s, up, backup) = setup().await;
    up.push([Fault::CutAfter(3)]);
    let mut body = chat("chain");
    body["stream"] = json!(true);
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{events:?}");
    assert!(!events.contains(&"[DONE]".to_string()));
    assert_eq!((up.request_count(), backup.request_count()), (1, 0), "no retry after the first byte");
    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["errors"], 1);
    assert!(u["totals"]["output_tokens"].as_u64().unwrap() > 0, "cut streams are billed for what was sent: {u}");
}

#[tokio::test]
async fn a_cut_stream_is_charged_the_tokens_counted_so_far() {
    let (s, up, _) = setup().await;
    up.stream_usage_on_every_chunk();
    // Delivered: the role chunk and two words (ten tokens each, as the upstream counts them).
    up.push([Fault::CutAfter(3)]);
    let mut body = chat("chain");
    body["stream"] = json!(true);
    let (status, _) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["output_tokens"], 20, "counted, not estimated from characters: {u}");

    // A whole stream shows clients the usage once, on its last chunk, as OpenAI does.
    body["stream_options"] = json!({"include_usage": true});
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    let chunks: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    let with_usage: Vec<&Value> = chunks.iter().filter(|c| !c["usage"].is_null()).collect();
    assert_eq!(with_usage.len(), 1, "{events:?}");
    assert_eq!(with_usage[0]["choices"], json!([]));
    assert!(chunks.iter().all(|c| c.get("usage").is_some()), "usage: null on the others");
}

#[tokio::test]
async fn a_cut_stream_to_an_openai_model_is_counted_with_its_tokenizer() {
    let (s, up, _) = setup().await;
    // Delivered: the role chunk, "Hello" and " from"; the upstream reports no usage.
    up.push([Fault::CutAfter(3)]);
    let mut body = chat("gpt");
    body["stream"] = json!(true);
    assert_eq!(s.stream(&s.admin_key, &body).await.0, 200);
    let (_, u) = usage(&s, &s.admin_key, "").await;
    // o200k_base: "Hello from" is 2 tokens (a character estimate says 3); the prompt "Say
    // hello" is 2, plus 3 for its message and 3 to prime the reply.
    assert_eq!((&u["totals"]["output_tokens"], &u["totals"]["input_tokens"]), (&json!(2), &json!(8)), "{u}");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    let (s, up, _) = setup().await;
    // Streaming: read one chunk, then hang up.
    up.push([Fault::ChunkDelay(Duration::from_millis(300))]);
    let mut body = chat("fast");
    body["stream"] = json!(true);
    let mut resp = s.send_chat(&s.admin_key, &body).await;
    assert!(resp.chunk().await.unwrap().is_some());
    drop(resp);
    up.wait_hang_ups(1).await;

    // Non-streaming: the upstream hangs; the client gives up.
    up.push([Fault::Hang]);
    let client = s.client.clone();
    let url = format!("{}/v1/chat/completions", s.base);
    let key = s.admin_key.clone();
    let call = tokio::spawn(async move { client.post(url).bearer_auth(key).json(&chat("fast")).send().await });
    while up.request_count() < 2 {
        tokio::task::yield_now().await;
    }
    call.abort();
    up.wait_hang_ups(2).await;

    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["requests"], 2, "cancelled calls are accounted: {u}");
    assert_eq!(u["totals"]["errors"], 2);
}

#[tokio::test]
async fn the_provider_concurrency_limit_holds() {
    let (s, up, _) = setup().await;
    up.push([Fault::ChunkDelay(Duration::from_millis(200))]);
    let mut body = chat("narrow");
    body["stream"] = json!(true);
    // The slow stream holds the provider's only slot until it ends...
    let mut first = s.send_chat(&s.admin_key, &body).await;
    assert!(first.chunk().await.unwrap().is_some());
    // ...so a second stream cannot get one within its 300 ms first-token deadline.
    let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &body).await;
    assert_eq!(status, 504, "{resp}");
    assert!(resp["error"]["message"].as_str().unwrap().contains("free connection slot"), "{resp}");
    assert_eq!(up.request_count(), 1, "the second call never reached the upstream");
    while first.chunk().await.unwrap().is_some() {}
    assert_eq!(s.post("/v1/chat/completions", &s.admin_key, &chat("narrow")).await.0, 200, "the slot is free again");
}

#[tokio::test]
async fn connect_errors_are_retried_then_fall_back() {
    let (s, _, backup) = setup().await;
    let resp = s.send_chat(&s.admin_key, &chat("resilient")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cairn-provider"], "backup");
    assert_eq!(resp.headers()["x-cairn-retries"], "2", "connect errors are retried first");
    assert_eq!(backup.request_count(), 1);
}

#[tokio::test]
async fn the_server_request_deadline_answers_504() {
    let (up, backup) = (cairn_testkit::StandIn::start().await, cairn_testkit::StandIn::start().await);
    let config = crate::config(&up, &backup).replace("[server]", "[server]\nrequest_timeout_secs = 1");
    let s = cairn_testkit::TestServer::start(&config).await;
    up.push([Fault::Hang]);
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &chat("fast")).await;
    assert_eq!(status, 504, "{body}");
    up.wait_hang_ups(1).await;
}
