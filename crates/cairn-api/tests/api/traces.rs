//! Traces through the HTTP API: the span tree of a streamed chat with retries and a fallback
//! (W3C `traceparent` honoured coming in and sent upstream), content capture, a full span
//! queue, retention, tenants kept apart, and bad queries.

use cairn_testkit::{Fault, StandIn, TestServer};
use serde_json::{json, Value};

use crate::{chat, config};

/// Every span of a trace's tree, depth first, with its parent's id.
pub fn flatten(nodes: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = nodes.as_array().map(|a| a.iter().rev().collect()).unwrap_or_default();
    while let Some(n) = stack.pop() {
        out.push(n.clone());
        if let Some(kids) = n["children"].as_array() {
            stack.extend(kids.iter().rev());
        }
    }
    out
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

async fn start(extra: &str, postgres: bool) -> (TestServer, StandIn, StandIn) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let url = if postgres { Some(cairn_store::conformance::fresh_pg_database().await) } else { None };
    let server = TestServer::start_with(&format!("{}\n{extra}", config(&up, &backup)), url).await;
    (server, up, backup)
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn streamed_chat_with_retries_and_a_fallback(postgres: bool) {
    let (s, up, backup) = start("", postgres).await;
    up.push([Fault::Status(503, None), Fault::Status(503, None), Fault::Status(503, None)]);
    let mut body = chat("chain");
    body["stream"] = json!(true);
    body["user"] = json!("end-user-7");
    let resp = s
        .client
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&s.admin_key)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-session-id", "session-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cairn-trace-id"], TRACE, "the caller's trace is continued");
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");

    let trace = s.trace(TRACE, &s.admin_key, 6).await;
    let summary = &trace["trace"];
    assert_eq!(summary["name"], "POST /v1/chat/completions");
    assert_eq!(summary["status"], "error", "failed attempts are failed spans");
    assert_eq!(summary["model"], "chain");
    assert_eq!(summary["user"], "end-user-7");
    assert_eq!(summary["session_id"], "session-42");
    assert_eq!(summary["cost_usd"], 0.19);
    let roots = trace["spans"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{trace}");
    let root = &roots[0];
    assert_eq!(root["parent_id"], CALLER_SPAN, "the root's parent is the caller's span");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["status"], "ok");
    assert_eq!(root["attributes"]["http.response.status_code"], 200);
    assert_eq!(root["attributes"]["session.id"], "session-42");

    let spans = flatten(&trace["spans"]);
    assert_eq!(spans.len(), 6, "{trace}");
    let call = named(&spans, "chat chain");
    assert_eq!(call.len(), 1);
    let call = call[0];
    assert_eq!(call["parent_id"], root["span_id"]);
    let a = &call["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.request.model"], "chain");
    assert_eq!(a["gen_ai.provider.name"], "backup");
    assert_eq!(a["gen_ai.response.model"], "backup-model");
    assert_eq!(
        (a["gen_ai.usage.input_tokens"].as_i64(), a["gen_ai.usage.output_tokens"].as_i64()),
        (Some(11), Some(4))
    );
    assert_eq!((a["cairn.retries"].as_i64(), a["cairn.fallbacks"].as_i64()), (Some(2), Some(1)));
    assert_eq!(a["cairn.streamed"], true);
    assert_eq!(a["enduser.id"], "end-user-7");
    assert_eq!(a["cairn.limit.decision"], "admitted");
    assert!(a["cairn.ttft_ms"].as_i64().is_some(), "{call}");
    assert!(a.get("gen_ai.input.messages").is_none(), "no content under metadata capture");
    assert!(a.get("gen_ai.output.messages").is_none(), "no content under metadata capture");
    assert_eq!(call["status"], "ok");

    let failed = named(&spans, "chat up-model");
    assert_eq!(failed.len(), 3, "three attempts at the first target");
    for (i, f) in failed.iter().enumerate() {
        assert_eq!(f["parent_id"], call["span_id"]);
        assert_eq!(f["kind"], "client");
        assert_eq!(f["status"], "error");
        assert_eq!(f["attributes"]["cairn.attempt"], i as i64);
        assert_eq!(f["attributes"]["error.type"], "status_5xx");
        assert_eq!(f["attributes"]["gen_ai.provider.name"], "up");
    }
    let served = named(&spans, "chat backup-model");
    assert_eq!((served.len(), &served[0]["status"]), (1, &json!("ok")));

    // Each upstream request carried the trace, with its own attempt as the parent.
    let sent: Vec<String> = up
        .headers()
        .iter()
        .chain(backup.headers().iter())
        .map(|h| h["traceparent"].to_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = failed
        .iter()
        .chain(served.iter())
        .map(|f| format!("00-{TRACE}-{}-01", f["span_id"].as_str().unwrap()))
        .collect();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    expected.sort();
    assert_eq!(sent_sorted, expected);

    // The list finds it by model, key, user, session and status, and not by another model.
    let key_id = root["attributes"]["cairn.key.id"].as_str().unwrap();
    for q in [
        "model=chain".to_owned(),
        "model=backup-model".to_owned(),
        format!("key_id={key_id}"),
        "user=end-user-7".into(),
        "session_id=session-42".into(),
        "status=error".into(),
        "min_cost_usd=0.19".into(),
    ] {
        let (status, list) = s.get(&format!("/v1/traces?{q}"), &s.admin_key).await;
        assert_eq!(status, 200, "{q}: {list}");
        assert!(list["data"].as_array().unwrap().iter().any(|t| t["trace_id"] == TRACE), "{q}: {list}");
    }
    for q in ["model=fast", "status=ok", "min_cost_usd=0.2", "user=someone-else", "min_latency_ms=600000"] {
        let (_, list) = s.get(&format!("/v1/traces?{q}"), &s.admin_key).await;
        assert!(!list["data"].as_array().unwrap().iter().any(|t| t["trace_id"] == TRACE), "{q}: {list}");
    }
}

#[tokio::test]
async fn a_streamed_chat_with_retries_and_a_fallback_is_one_span_tree_sqlite() {
    streamed_chat_with_retries_and_a_fallback(false).await;
}

#[tokio::test]
async fn a_streamed_chat_with_retries_and_a_fallback_is_one_span_tree_postgres() {
    streamed_chat_with_retries_and_a_fallback(true).await;
}

#[tokio::test]
async fn content_is_kept_only_under_full_capture_and_then_redacted() {
    let (s, up, _) = start("[tracing]\ncapture = \"full\"", false).await;
    up.reply_with(&["Write to ", "bob@example.com", " today"]);
    let body = json!({"model": "fast", "messages": [{"role": "user", "content": "Mail alice@example.com or call +1 415 555 0100"}]});
    let resp = s.send_chat(&s.admin_key, &body).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    let trace = s.trace(&id, &s.admin_key, 3).await;
    let spans = flatten(&trace["spans"]);
    let call = named(&spans, "chat fast")[0];
    let input = call["attributes"]["gen_ai.input.messages"].as_str().expect("prompt kept under full capture");
    let output = call["attributes"]["gen_ai.output.messages"].as_str().expect("completion kept under full capture");
    assert!(input.contains("[EMAIL]") && input.contains("Mail"), "{input}");
    assert!(!input.contains("alice@example.com") && !input.contains("555 0100"), "{input}");
    assert!(output.contains("[EMAIL]") && !output.contains("bob@example.com"), "{output}");
    let stored = serde_json::to_string(&trace).unwrap();
    assert!(!stored.contains("alice@") && !stored.contains("bob@"), "nothing raw anywhere: {stored}");
}

#[tokio::test]
async fn capture_off_records_nothing() {
    let (s, _, _) = start("[tracing]\ncapture = \"off\"", false).await;
    let resp = s.send_chat(&s.admin_key, &chat("fast")).await;
    assert_eq!(resp.status(), 200);
    s.flush().await;
    let (status, list) = s.get("/v1/traces", &s.admin_key).await;
    assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 0), "{list}");
}

#[tokio::test]
async fn tenants_never_read_each_others_traces() {
    let (s, _, _) = start("", false).await;
    let a = s.key("acme", "admin", json!({})).await;
    let b = s.key("globex", "admin", json!({})).await;
    let b_reader = s.key("globex", "reader", json!({})).await;
    let resp = s.send_chat(&a, &chat("fast")).await;
    let a_trace = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    let before = s.trace(&a_trace, &a, 3).await["trace"]["span_count"].clone();

    // B joins A's trace id through traceparent: its spans go to a trace of its own tenant.
    let resp = s
        .client
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&b)
        .header("traceparent", format!("00-{a_trace}-{CALLER_SPAN}-01"))
        .json(&chat("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b_view = s.trace(&a_trace, &b_reader, 3).await;
    assert_eq!(b_view["trace"]["tenant_id"], "globex");
    let a_view = s.trace(&a_trace, &a, 3).await;
    assert_eq!(a_view["trace"]["span_count"], before, "A's trace is untouched");
    assert_eq!(a_view["trace"]["tenant_id"], "acme");

    // A's other traces are invisible to B: unknown, not forbidden.
    let resp = s.send_chat(&a, &chat("fast")).await;
    let private = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    s.trace(&private, &a, 3).await;
    let (status, body) = s.get(&format!("/v1/traces/{private}"), &b).await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = s.get("/v1/traces?limit=1000", &b).await;
    assert!(list["data"].as_array().unwrap().iter().all(|t| t["tenant_id"] == "globex"), "{list}");
    let (status, _) = s.get("/v1/traces?tenant=acme", &b).await;
    assert_eq!(status, 403, "only the instance owner reads another tenant's");
    // The instance owner sees both tenants'.
    let (_, all) = s.get("/v1/traces?limit=1000", &s.admin_key).await;
    let tenants: std::collections::BTreeSet<_> =
        all["data"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap().to_owned()).collect();
    assert!(tenants.contains("acme") && tenants.contains("globex"), "{all}");
}

#[tokio::test]
async fn bad_queries_and_unknown_ids_are_clear_4xx() {
    let (s, _, _) = start("", false).await;
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "from_ms=-1",
        "to_ms=99999999999999999",
        "status=maybe",
        "min_cost_usd=-1",
        "min_latency_ms=NaN",
        "min_latency_ms=inf",
        "after=garbage",
        "after=12_nothex",
        "colour=blue",
    ] {
        let (status, body) = s.get(&format!("/v1/traces?{q}"), &s.admin_key).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{q}: {body}");
    }
    for id in ["nothex", "4bf92f3577b34da6a3ce929d0e0e4736", "00000000000000000000000000000000", &"a".repeat(5000)] {
        let (status, body) = s.get(&format!("/v1/traces/{id}"), &s.admin_key).await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, _) =
        s.client.get(format!("{}/v1/traces", s.base)).send().await.map(|r| (r.status().as_u16(), ())).unwrap();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let (s, _, _) = start("", false).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let resp = s.send_chat(&s.admin_key, &chat("fast")).await;
        ids.push(resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned());
    }
    s.flush().await;
    let mut seen = Vec::new();
    let mut path = "/v1/traces?limit=2&model=fast".to_owned();
    loop {
        let (status, page) = s.get(&path, &s.admin_key).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["data"].as_array().unwrap().iter().map(|t| t["trace_id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/traces?limit=2&model=fast&after={next}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
}

#[tokio::test]
async fn retention_removes_old_traces_per_tenant() {
    let (s, _, _) = start("[tracing]\nretention_days = 7\ntenant_retention_days = { keeper = 0 }", false).await;
    let short = s.key("acme", "admin", json!({})).await;
    let keeper = s.key("keeper", "admin", json!({})).await;
    let gone = s.send_chat(&short, &chat("fast")).await.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    let kept = s.send_chat(&keeper, &chat("fast")).await.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    s.trace(&gone, &short, 3).await;
    s.trace(&kept, &keeper, 3).await;
    // Six days on, nothing has expired; eight days on, acme's trace has.
    let day_ns = 86_400_000_000_000i64;
    let now = cairn_core::trace::now_ns();
    assert_eq!(s.traces.sweep(now + 6 * day_ns).await.unwrap(), 0);
    let (_, all) = s.get("/v1/traces?limit=1000", &s.admin_key).await;
    let expiring = all["data"].as_array().unwrap().iter().filter(|t| t["tenant_id"] != "keeper").count();
    assert!(expiring >= 1, "{all}");
    assert_eq!(s.traces.sweep(now + 8 * day_ns).await.unwrap(), expiring as u64);
    assert_eq!(s.get(&format!("/v1/traces/{gone}"), &short).await.0, 404);
    assert_eq!(s.get(&format!("/v1/traces/{kept}"), &keeper).await.0, 200, "retention 0 keeps forever");
}

/// `cairn_spans_dropped_total` as `/metrics` shows it.
async fn spans_dropped(s: &TestServer) -> u64 {
    let text = s.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("cairn_spans_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no spans_dropped metric in {text}"))
}

#[tokio::test]
async fn a_full_span_queue_drops_spans_and_requests_still_succeed() {
    use sqlx::Connection;
    let (s, _, _) = start("[tracing]\nqueue = 2\nbatch = 1", true).await;
    assert_eq!(spans_dropped(&s).await, 0);
    // Another session holds the spans table: the span writer waits on it while requests go on.
    let mut holder = sqlx::PgConnection::connect(&s.database_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE spans IN EXCLUSIVE MODE").execute(&mut holder).await.unwrap();
    for _ in 0..10 {
        let resp = s.send_chat(&s.admin_key, &chat("fast")).await;
        assert_eq!(resp.status(), 200, "tracing never fails a request");
    }
    let dropped = spans_dropped(&s).await;
    assert!(dropped >= 20, "30 spans into a queue of 2 behind a stuck writer: {dropped} dropped");
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    s.flush().await;
    // Usage is never traded away: every call is accounted.
    let (_, usage) = crate::usage(&s, &s.admin_key, "").await;
    assert_eq!(usage["totals"]["requests"], 10, "{usage}");
    // What was kept is stored once the writer moves again.
    let (_, list) = s.get("/v1/traces?model=fast", &s.admin_key).await;
    assert!(!list["data"].as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test]
async fn stats_aggregate_model_calls_by_model_key_and_hour() {
    let (s, _, _) = start("", false).await;
    let a = s.key("acme", "member", json!({})).await;
    let b = s.key("acme", "member", json!({})).await;
    let other = s.key("globex", "admin", json!({})).await;
    for _ in 0..3 {
        assert_eq!(s.send_chat(&a, &chat("fast")).await.status(), 200);
    }
    let mut streamed = chat("chain");
    streamed["stream"] = json!(true);
    assert_eq!(s.stream(&b, &streamed).await.0, 200);
    assert_eq!(s.send_chat(&other, &chat("fast")).await.status(), 200);
    s.flush().await;

    let (status, st) = s.get("/v1/traces/stats", &a).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["object"], "trace.stats");
    assert_eq!(st["totals"]["calls"], 4, "only acme's calls: {st}");
    assert_eq!(st["totals"]["errors"], 0);
    assert_eq!(st["totals"]["cost_usd"], 0.76, "4 calls at $0.19: {st}");
    assert_eq!(st["totals"]["input_tokens"], 44);
    assert!(st["totals"]["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{st}");
    let series = st["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "one hour: {st}");
    assert_eq!(series[0]["calls"], 4);
    assert_eq!(series[0]["bucket_ms"].as_i64().unwrap() % 3_600_000, 0);
    let models: Vec<(&str, i64)> = st["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["model"].as_str().unwrap(), m["calls"].as_i64().unwrap()))
        .collect();
    assert_eq!(models, [("fast", 3), ("chain", 1)]);
    assert!(st["by_model"][0]["ttft_ms"]["p50"].is_null(), "no streamed calls to fast: {st}");
    assert!(st["by_model"][1]["ttft_ms"]["p50"].as_f64().is_some(), "{st}");
    let keys = st["by_key"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0]["calls"].as_i64(), keys[0]["cost_usd"].as_f64()), (Some(3), Some(0.57)), "dearest first");

    // Daily buckets, the owner's view of every tenant, another tenant's own view.
    let (_, daily) = s.get("/v1/traces/stats?bucket=day", &a).await;
    assert_eq!(daily["series"][0]["bucket_ms"].as_i64().unwrap() % 86_400_000, 0, "{daily}");
    let (_, all) = s.get("/v1/traces/stats", &s.admin_key).await;
    assert_eq!(all["totals"]["calls"], 5, "{all}");
    let (_, theirs) = s.get("/v1/traces/stats", &other).await;
    assert_eq!(theirs["totals"]["calls"], 1, "{theirs}");
    assert_eq!(s.get("/v1/traces/stats?tenant=acme", &other).await.0, 403);
    // An empty window has no percentiles, not zeros.
    let (_, empty) = s.get("/v1/traces/stats?from_ms=0&to_ms=3600000", &a).await;
    assert_eq!(empty["totals"]["calls"], 0);
    assert!(empty["totals"]["latency_ms"]["p50"].is_null(), "{empty}");

    // A window that ends before it starts holds nothing.
    let (status, backwards) = s.get("/v1/traces/stats?from_ms=10000000&to_ms=5", &a).await;
    assert_eq!((status, &backwards["totals"]["calls"]), (200, &json!(0)), "{backwards}");
    for q in ["bucket=week", "from_ms=-1", "to_ms=x", "to_ms=9223372036855", "x=1"] {
        let (status, body) = s.get(&format!("/v1/traces/stats?{q}"), &a).await;
        assert_eq!(status, 400, "{q}: {body}");
    }
}
