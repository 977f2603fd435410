//! OTLP export: Cairn's spans arrive at a real collector (Arize Phoenix, started by the test)
//! with their GenAI attributes and parent links; a failing collector is retried, a refusing or
//! stalled one costs only exported spans, never a request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cairn_testkit::{Fault, Phoenix, StandIn, TestServer};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::traces::flatten;
use crate::{chat, config};

const PROJECT: &str = "cairn-otlp-test";

/// An attribute of a span as Phoenix returns it: flat (`a.b.c`) or nested (`a: {b: {c}}`).
fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    let attrs = &span["attributes"];
    if let Some(v) = attrs.get(key) {
        return v;
    }
    key.split('.').fold(attrs, |v, part| &v[part])
}

#[tokio::test]
async fn spans_reach_phoenix_with_genai_attributes_and_parent_links() {
    let phoenix = Phoenix::start().await;
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let extra = format!(
        r#"
[tracing]
capture = "full"

[tracing.otlp]
endpoint = "{}"
flush_ms = 50
openinference = true
resource = {{ "openinference.project.name" = "{PROJECT}" }}
"#,
        phoenix.otlp_endpoint()
    );
    let s = TestServer::start(&format!("{}\n{extra}", config(&up, &backup))).await;
    up.push([Fault::Status(503, None), Fault::Status(503, None), Fault::Status(503, None)]);
    let mut body = chat("chain");
    body["stream"] = json!(true);
    body["messages"] = json!([{"role": "user", "content": "Mail jane.doe@example.com a greeting"}]);
    let resp = s.send_chat(&s.admin_key, &body).await;
    assert_eq!(resp.status(), 200);
    let trace_id = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    assert!(resp.text().await.unwrap().contains("[DONE]"));

    // What Cairn stored is what Phoenix received: same spans, same parents.
    let stored = flatten(&s.trace(&trace_id, &s.admin_key, 6).await["spans"]);
    s.traces.flush().await;
    let got = phoenix.spans(PROJECT, &trace_id, stored.len()).await;
    assert_eq!(got.len(), stored.len(), "{got:#?}");
    let by_id: BTreeMap<&str, &Value> = got.iter().map(|g| (g["context"]["span_id"].as_str().unwrap(), g)).collect();
    for span in &stored {
        let id = span["span_id"].as_str().unwrap();
        let g = by_id.get(id).unwrap_or_else(|| panic!("span {id} ({}) not in Phoenix", span["name"]));
        assert_eq!(g["context"]["trace_id"], trace_id.as_str());
        assert_eq!(g["name"], span["name"]);
        assert_eq!(g["parent_id"], span["parent_id"], "parent of {}", span["name"]);
        let want = match span["status"].as_str() {
            Some("ok") => "OK",
            Some("error") => "ERROR",
            _ => "UNSET",
        };
        assert_eq!(g["status_code"], want, "{g}");
        assert_eq!(attr(g, "cairn.tenant.id"), "default", "{g}");
    }
    let root = got.iter().find(|g| g["name"] == "POST /v1/chat/completions").expect("the HTTP span");
    assert_eq!(attr(root, "http.response.status_code"), 200);
    let call = got.iter().find(|g| g["name"] == "chat chain").expect("the model call span");
    assert_eq!(call["parent_id"], root["context"]["span_id"]);
    assert_eq!(attr(call, "gen_ai.operation.name"), "chat");
    assert_eq!(call["span_kind"], "LLM", "Phoenix reads the OpenInference kind");
    assert_eq!(attr(call, "gen_ai.request.model"), "chain");
    assert_eq!(attr(call, "gen_ai.provider.name"), "backup");
    assert_eq!(attr(call, "gen_ai.usage.input_tokens"), 11, "integers stay integers");
    assert_eq!(attr(call, "gen_ai.usage.output_tokens"), 4);
    assert_eq!(attr(call, "cairn.cost_usd"), 0.19, "doubles stay doubles");
    assert_eq!(attr(call, "cairn.streamed"), true, "booleans stay booleans");
    let attempts: Vec<&Value> = got.iter().filter(|g| g["name"] == "chat up-model").collect();
    assert_eq!(attempts.len(), 3);
    for a in attempts {
        assert_eq!(a["parent_id"], call["context"]["span_id"]);
        assert_eq!(a["status_code"], "ERROR");
        assert_eq!(attr(a, "error.type"), "status_5xx");
    }
    // Content was captured, and redacted before it left Cairn.
    let everything = serde_json::to_string(&got).unwrap();
    assert!(everything.contains("a greeting"), "full capture exports the prompt");
    assert!(!everything.contains("jane.doe@example.com"), "the raw address never leaves Cairn");
    let metrics = s.metrics().await;
    assert!(metrics.contains("cairn_otlp_spans_dropped_total 0"), "{metrics}");
}

/// A collector that answers queued statuses (then 200), or holds every answer while `stall`
/// is set, and records what it was sent.
#[derive(Default)]
struct Collector {
    answers: Mutex<VecDeque<u16>>,
    requests: Mutex<Vec<(String, String, usize)>>,
    stall: Mutex<bool>,
    arrived: tokio::sync::Notify,
}

async fn collect(State(c): State<Arc<Collector>>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    c.requests.lock().push((h("content-type"), h("authorization"), body.len()));
    c.arrived.notify_waiters();
    if *c.stall.lock() {
        std::future::pending::<()>().await;
    }
    let status = c.answers.lock().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

async fn collector() -> (Arc<Collector>, String) {
    let c = Arc::new(Collector::default());
    let app = axum::Router::new().route("/v1/traces", post(collect)).with_state(c.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (c, url)
}

async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = s.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn server_exporting_to(url: &str, otlp: &str) -> TestServer {
    std::env::set_var("CAIRN_TEST_OTLP_HEADERS", "authorization=Bearer otlp-secret");
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let extra = format!(
        "[tracing.otlp]\nendpoint = \"{url}\"\nheaders_env = \"CAIRN_TEST_OTLP_HEADERS\"\nflush_ms = 20\n{otlp}"
    );
    // The stand-ins must outlive the server's requests: leak them for the test's life.
    let s = TestServer::start(&format!("{}\n{extra}", config(&up, &backup))).await;
    std::mem::forget((up, backup));
    s
}

#[tokio::test]
async fn transient_collector_failures_are_retried_and_refusals_dropped() {
    let (c, url) = collector().await;
    c.answers.lock().extend([503, 429]);
    let s = server_exporting_to(&url, "").await;
    assert_eq!(s.send_chat(&s.admin_key, &chat("fast")).await.status(), 200);
    s.flush().await;
    let exported = metric(&s, "cairn_otlp_spans_exported_total").await;
    assert!(exported >= 2, "the HTTP and model call spans, after two retries: {exported}");
    assert_eq!(metric(&s, "cairn_otlp_spans_dropped_total").await, 0);
    let requests = c.requests.lock().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.iter().all(|(ct, _, _)| ct == "application/x-protobuf"));
    assert!(requests.iter().all(|(_, auth, _)| auth == "Bearer otlp-secret"), "headers from headers_env");
    assert!(requests.windows(2).all(|w| w[0].2 == w[1].2), "the same batch each time");

    // A refusal (400) is final: the batch is dropped and counted, the request unaffected.
    c.answers.lock().push_back(400);
    assert_eq!(s.send_chat(&s.admin_key, &chat("fast")).await.status(), 200);
    s.flush().await;
    assert_eq!(c.requests.lock().len(), 4, "not retried");
    assert!(metric(&s, "cairn_otlp_spans_dropped_total").await >= 2);
    assert_eq!(metric(&s, "cairn_otlp_export_failures_total").await, 1);
    // Stored traces do not depend on the collector.
    assert_eq!(metric(&s, "cairn_spans_dropped_total").await, 0);
}

#[tokio::test]
async fn a_stalled_collector_never_slows_requests() {
    let (c, url) = collector().await;
    *c.stall.lock() = true;
    let s = server_exporting_to(&url, "queue = 2\nbatch = 1\ntimeout_ms = 300000").await;
    // The first batch is stuck at the collector; two more wait; everything after is dropped.
    let first = c.arrived.notified();
    assert_eq!(s.send_chat(&s.admin_key, &chat("fast")).await.status(), 200);
    first.await;
    for _ in 0..10 {
        assert_eq!(s.send_chat(&s.admin_key, &chat("fast")).await.status(), 200);
    }
    let dropped = metric(&s, "cairn_otlp_spans_dropped_total").await;
    assert!(dropped >= 10, "spans past the export queue are dropped and counted: {dropped}");
    assert_eq!(c.requests.lock().len(), 1, "one export in flight at a time");
    assert_eq!(metric(&s, "cairn_spans_dropped_total").await, 0, "storage has its own queue");
}
