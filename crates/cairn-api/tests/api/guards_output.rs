//! The output guards through the HTTP API: PII redaction of answers, streamed answers included
//! (values split across chunks never leave unredacted), refusals mid-stream before the value is
//! sent, cached answers passing a stricter key's guards, and JSON-schema validation with
//! re-asks, exhausted re-asks refused with 422, and validated answers streamed.

use cairn_testkit::{Scripted, StandIn, TestServer};
use serde_json::{json, Value};

use crate::config;
use crate::guards::{ask, send};

/// The shared config plus: `redact_out` (PII in output: redact), `block_out` (block),
/// `cached_out` (a response cache, no guards), `strict_json` (schema: block, 2 re-asks) and
/// `loose_json` (schema: flag).
async fn setup() -> (TestServer, StandIn) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let extra = r#"
[models.redact_out]
targets = [{ provider = "up", model = "up-model" }]
guards = { pii_output = "redact" }

[models.block_out]
targets = [{ provider = "up", model = "up-model" }]
guards = { pii_output = "block" }

[models.flag_out]
targets = [{ provider = "up", model = "up-model" }]
guards = { pii_output = "flag" }

[models.cached_out]
targets = [{ provider = "up", model = "up-model" }]
cache = {}

[models.strict_json]
targets = [{ provider = "up", model = "up-model", input_usd_per_mtok = 10000.0, output_usd_per_mtok = 20000.0 }]
guards = { output_schema = "block", schema_retries = 2 }

[models.loose_json]
targets = [{ provider = "up", model = "up-model" }]
guards = { output_schema = "flag" }
"#;
    let server = TestServer::start(&format!("{}{extra}", config(&up, &backup))).await;
    (server, up)
}

/// An answer with an e-mail address and a card number split across chunks.
const PIECES: [&str; 7] = [
    "Sure. Write to jane.",
    "doe@exam",
    "ple.com and quote card 4111 ",
    "1111 1111 ",
    "1111",
    " when you call. ",
    "Bye!",
];
const REDACTED: &str = "Sure. Write to [EMAIL] and quote card [CARD] when you call. Bye!";

fn hello(model: &str) -> Value {
    ask(model, json!([{"role": "user", "content": "How do I reach support?"}]))
}

/// The streamed text of `events` (content deltas joined) and the error event, if any.
fn streamed(events: &[String]) -> (String, Option<Value>) {
    let mut text = String::new();
    let mut error = None;
    for e in events.iter().filter(|e| e.as_str() != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap_or_default();
        if v.get("error").is_some() {
            error = Some(v);
            continue;
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or_default());
        }
    }
    (text, error)
}

#[tokio::test]
async fn pii_in_answers_is_redacted_whole_and_streamed() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    up.reply_with(&PIECES);
    let (status, guards, body) = send(&s, &key, &hello("redact_out")).await;
    assert_eq!((status, guards.as_str()), (200, "pii_output=redacted"), "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], REDACTED);

    let mut req = hello("redact_out");
    req["stream"] = json!(true);
    let (status, events) = s.stream(&key, &req).await;
    assert_eq!(status, 200);
    let (text, error) = streamed(&events);
    assert_eq!(error, None);
    assert_eq!(text, REDACTED);
    let raw = events.join("\n");
    for leaked in ["jane", "exam", "4111", "1111 1111"] {
        assert!(!raw.contains(leaked), "{leaked} left in a chunk: {raw}");
    }
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    // Flag mode reports and changes nothing, streamed or not.
    let (status, guards, body) = send(&s, &key, &hello("flag_out")).await;
    assert_eq!((status, guards.as_str()), (200, "pii_output=flagged"), "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], PIECES.concat());
    let mut req = hello("flag_out");
    req["stream"] = json!(true);
    let (_, events) = s.stream(&key, &req).await;
    assert_eq!(streamed(&events), (PIECES.concat(), None));
}

#[tokio::test]
async fn block_mode_refuses_answers_and_stops_streams_before_the_value() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    up.reply_with(&PIECES);
    let (status, _, body) = send(&s, &key, &hello("block_out")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "guard_pii_output");
    assert!(!body.to_string().contains("jane"), "{body}");

    let mut req = hello("block_out");
    req["stream"] = json!(true);
    let (status, events) = s.stream(&key, &req).await;
    assert_eq!(status, 200, "the stream had started");
    let (text, error) = streamed(&events);
    let error = error.expect("an error event ends the stream");
    assert_eq!(error["error"]["code"], "guard_pii_output");
    assert_eq!(error["error"]["type"], "guard_error");
    assert!(!events.join("\n").contains("jane"), "{events:?}");
    assert!("Sure. Write to ".starts_with(&text), "only what came before the value was sent: {text:?}");

    // Both accounted as blocked (their upstream cost stands) and audited.
    s.flush().await;
    let metrics = s.metrics().await;
    let blocked: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("cairn_model_calls_total") && l.contains(r#"status="blocked""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(blocked, 2, "{metrics}");
    let (_, log) = s.get("/v1/audit?tenant=acme&action=guard.block", &s.admin_key).await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(2), "{log}");
}

#[tokio::test]
async fn cached_answers_pass_a_stricter_keys_output_guards() {
    let (s, up) = setup().await;
    let lax = s.key("acme", "member", json!({})).await;
    let strict = s.key("acme", "member", json!({"guards": {"pii_output": "redact"}})).await;
    up.reply_with(&PIECES);
    let mut req = hello("cached_out");
    req["temperature"] = json!(0);
    let (status, _, body) = send(&s, &lax, &req).await;
    assert_eq!(status, 200);
    assert!(body["choices"][0]["message"]["content"].as_str().unwrap_or_default().contains("jane"));
    let resp = s.send_chat(&strict, &req).await;
    assert_eq!(resp.headers()["x-cairn-cache"], "hit");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], REDACTED, "a hit is redacted for a key that asks");
    assert_eq!(up.request_count(), 1);
}

fn json_ask(model: &str) -> Value {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"], "additionalProperties": false});
    let mut req = ask(model, json!([{"role": "user", "content": "The largest city in Norway, as JSON."}]));
    req["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema}});
    req
}

#[tokio::test]
async fn answers_failing_their_schema_are_reasked_with_the_error() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    up.script([
        Scripted::Text("Oslo, about 700,000 people.".into()),
        Scripted::Text(r#"{"city": "Oslo", "population": "about 700k"}"#.into()),
        Scripted::Text(r#"{"city": "Oslo", "population": 709037}"#.into()),
    ]);
    let (status, guards, body) = send(&s, &key, &json_ask("strict_json")).await;
    assert_eq!((status, guards.as_str()), (200, "output_schema=pass"), "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], r#"{"city": "Oslo", "population": 709037}"#);
    assert_eq!(up.request_count(), 3);
    let reasks = up.bodies();
    let last = reasks[2]["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(last.len(), 5, "the original turn, then each failed answer and its error");
    assert_eq!(last[3]["content"], r#"{"city": "Oslo", "population": "about 700k"}"#);
    let error = last[4]["content"].as_str().unwrap_or_default();
    assert!(error.contains("/population") && error.contains("integer"), "{error}");
    assert!(reasks[1]["messages"][2]["content"].as_str().unwrap_or_default().contains("not valid JSON"));
    // Every try is a call, charged: three calls of 11 input and 1 output tokens, $0.13 each.
    let (_, u) = crate::usage(&s, &key, "").await;
    assert_eq!(u["totals"]["requests"], 3, "{u}");
    assert!((u["totals"]["cost_usd"].as_f64().unwrap_or_default() - 0.39).abs() < 1e-9, "{u}");
}

#[tokio::test]
async fn exhausted_reasks_are_refused_and_validated_answers_stream_whole() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    up.script((0..3).map(|_| Scripted::Text("no JSON today".into())));
    let (status, _, body) = send(&s, &key, &json_ask("strict_json")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "guard_output_schema");
    assert_eq!(body["error"]["param"], "response_format");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("after 3 tries"), "{body}");
    assert_eq!(up.request_count(), 3, "the first try and two re-asks");

    // Streamed: produced whole, validated (after one re-ask), then streamed.
    up.script([Scripted::Text("{}".into()), Scripted::Text(r#"{"city": "Oslo", "population": 709037}"#.into())]);
    let mut req = json_ask("strict_json");
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let (status, events) = s.stream(&key, &req).await;
    assert_eq!(status, 200);
    let (text, error) = streamed(&events);
    assert_eq!((text.as_str(), error), (r#"{"city": "Oslo", "population": 709037}"#, None));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    // Flag mode reports a bad answer and returns it.
    up.script([Scripted::Text("not json".into())]);
    let (status, guards, body) = send(&s, &key, &json_ask("loose_json")).await;
    assert_eq!((status, guards.as_str()), (200, "output_schema=flagged"), "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "not json");
}
