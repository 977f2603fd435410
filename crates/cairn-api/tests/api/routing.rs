//! Cost routing through the HTTP API: a routed alias sends easy requests to its small alias and
//! hard ones to its large alias, says so in `x-cairn-route`, records usage under the alias that
//! answered, obeys a request's choice (header or `cairn.route`), and refuses what it cannot do.

use cairn_testkit::{StandIn, TestServer};
use serde_json::{json, Value};

use crate::config;

async fn setup() -> (TestServer, StandIn, StandIn) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let extra = r#"
[models.small_m]
targets = [{ provider = "up", model = "small-model" }]

[models.large_m]
targets = [{ provider = "backup", model = "large-model" }]

[models.auto]
route = { small = "small_m", large = "large_m", threshold = 0.5, examples = [
  { text = "Write a distributed consensus protocol with formal proofs", size = "large" },
  { text = "What's the weather word for rain in French?", size = "small" },
] }
"#;
    let server = TestServer::start(&format!("{}{extra}", config(&up, &backup))).await;
    (server, up, backup)
}

const EASY: &str = "What is the capital of France?";
const HARD: &str = "Design a sharded key-value store with leader election, prove that reads are linearizable \
                    step by step, and implement the Raft log replication in Rust with unit tests.";

fn ask(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

/// Sends `body` with extra headers; returns status, `x-cairn-route` and the body.
async fn send(s: &TestServer, key: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let resp = s.send_chat_with(key, body, headers).await;
    let status = resp.status().as_u16();
    let route = resp.headers().get("x-cairn-route").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, route, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn easy_requests_go_small_and_hard_ones_large() {
    let (s, up, backup) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let (status, route, body) = send(&s, &key, &ask(EASY), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(route.starts_with("small; alias=small_m; score="), "{route}");
    assert_eq!(up.bodies().last().map(|b| b["model"].clone()), Some(json!("small-model")));

    let (status, route, _) = send(&s, &key, &ask(HARD), &[]).await;
    assert_eq!(status, 200);
    assert!(route.starts_with("large; alias=large_m; score="), "{route}");
    assert_eq!(backup.request_count(), 1);
    let (_, _, trace_id) = crate::traces_flows::post_traced(&s, "/v1/chat/completions", &key, &ask(HARD)).await;
    let spans = crate::traces::flatten(&s.trace(&trace_id, &key, 2).await["spans"]);
    let call = spans.iter().find(|s| s["name"] == "chat large_m").expect("the call's span");
    assert!(
        call["attributes"]["cairn.route"].as_str().unwrap_or_default().starts_with("large; alias=large_m"),
        "{call}"
    );

    // Streamed too.
    let mut body = ask(HARD);
    body["stream"] = json!(true);
    let resp = s.send_chat(&key, &body).await;
    assert!(resp.headers()["x-cairn-route"].to_str().unwrap_or_default().starts_with("large;"));
    let _ = resp.text().await;

    // Usage is recorded under the alias that answered.
    let (_, small) = crate::usage(&s, &key, "?model=small_m").await;
    let (_, large) = crate::usage(&s, &key, "?model=large_m").await;
    assert_eq!((small["totals"]["requests"].clone(), large["totals"]["requests"].clone()), (json!(1), json!(3)));

    // Listed, with the aliases it routes to.
    let (_, models) = s.get("/v1/models", &key).await;
    let auto = models["data"].as_array().into_iter().flatten().find(|m| m["id"] == "auto").cloned();
    assert_eq!(auto.map(|m| m["cairn"]["targets"].clone()), Some(json!(["small_m", "large_m"])));
}

#[tokio::test]
async fn a_request_may_choose_and_bad_choices_are_refused() {
    let (s, up, backup) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let (status, route, _) = send(&s, &key, &ask(EASY), &[("x-cairn-route", "large")]).await;
    assert_eq!(status, 200);
    assert!(route.starts_with("large; alias=large_m") && route.ends_with("; forced"), "{route}");
    let mut body = ask(HARD);
    body["cairn"] = json!({"route": "small"});
    let (status, route, _) = send(&s, &key, &body, &[]).await;
    assert_eq!(status, 200);
    assert!(route.starts_with("small;") && route.ends_with("; forced"), "{route}");
    assert_eq!((up.request_count(), backup.request_count()), (1, 1));

    let (status, _, body) = send(&s, &key, &ask(EASY), &[("x-cairn-route", "medium")]).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("x-cairn-route")), "{body}");
    let mut bad = ask(EASY);
    bad["cairn"] = json!({"route": "huge"});
    assert_eq!(send(&s, &key, &bad, &[]).await.0, 400);
    let (status, body) = s.post("/v1/embeddings", &key, &json!({"model": "auto", "input": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("routed chat model"), "{body}");
}
