//! Failure handling: retries, retry-after, fallback, circuit breaker, timeouts, cut streams
//! (never retried once started), and cancellation when the client goes away.

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
    let metrics = s.client.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
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
    let metrics = s.client.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
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
