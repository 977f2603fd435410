//! The run loop's edges through the HTTP API: client tools, bad arguments and unknown tools
//! read by the model, every cap ending a run gracefully, edits, rejections and expiring
//! approvals, busy threads, cancellation, the resumable event stream, and tools whose answer
//! never ends.

use std::time::Duration;

use cairn_testkit::{Scripted, StandIn, TestServer};
use serde_json::{json, Value};

use crate::runs::{agent, kinds, server, start, wait_run};

fn weather(extra: Value) -> Value {
    let mut tool = json!({
        "type": "client", "description": "The weather in a city.",
        "client": {"parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}},
    });
    if let (Some(t), Some(e)) = (tool.as_object_mut(), extra.as_object()) {
        t.extend(e.clone());
    }
    tool
}

pub fn spec(name: &str, tools: Value, limits: Value) -> Value {
    json!({"name": name, "model": "fast", "tools": tools, "limits": limits})
}

/// The tool results the model read in its last call.
pub fn last_tool_results(up: &StandIn) -> Vec<String> {
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
    let last = chats.last().unwrap();
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn client_tools_and_bad_calls(postgres: bool) {
    let up = StandIn::start().await;
    let s = server(&up, postgres).await;
    let key = s.key("acme", "member", json!({})).await;
    let id = agent(&s, &key, spec("w", json!({"weather": weather(json!({}))}), json!({}))).await;

    // Unknown tool and schema-invalid arguments go back to the model; the valid client call
    // pauses the run for the client's output.
    up.script([
        Scripted::Calls(vec![("teleport".into(), json!({})), ("weather".into(), json!({"city": 5}))]),
        Scripted::Calls(vec![("weather".into(), json!({"city": "Oslo"}))]),
        Scripted::Text("Rainy in Oslo.".into()),
    ]);
    let run = start(&s, &key, &id, "Weather?").await;
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    let errors = last_tool_results(&up);
    assert!(errors[0].contains("there is no tool 'teleport'"), "{errors:?}");
    assert!(errors[1].contains("do not match the tool's schema"), "{errors:?}");
    assert_eq!(waiting["pending"][0]["kind"], "client_output", "{waiting}");
    assert_eq!(waiting["pending"][0]["arguments"], "{\"city\":\"Oslo\"}");
    let call = waiting["pending"][0]["call_id"].as_str().unwrap().to_owned();

    // Approvals are not how a client tool is answered; its output is.
    let approve = json!({"answers": [{"call_id": call, "decision": "approve"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/approvals"), &key, &approve).await.0, 400);
    let dup = json!({"outputs": [{"call_id": call, "output": "a"}, {"call_id": call, "output": "b"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &dup).await.0, 400);
    let (status, _) = s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &json!({"outputs": []})).await;
    assert_eq!(status, 400);
    let outputs = json!({"outputs": [{"call_id": call, "output": "rain, 8 C"}]});
    let (status, body) = s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &outputs).await;
    assert_eq!(status, 200, "{body}");
    let done = wait_run(&s, &key, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["answer"], "Rainy in Oslo.", "{done}");
    assert_eq!(last_tool_results(&up).last().map(String::as_str), Some("rain, 8 C"));
}

#[tokio::test]
async fn client_tools_and_bad_calls_on_sqlite() {
    client_tools_and_bad_calls(false).await;
}

#[tokio::test]
async fn client_tools_and_bad_calls_on_postgres() {
    client_tools_and_bad_calls(true).await;
}

#[tokio::test]
async fn every_cap_ends_the_run_gracefully() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    // The stand-in calls the first offered tool forever unless scripted: an endless loop.
    let tools = json!({"weather": {"type": "http_request"}});
    let cases = [
        ("steps", json!({"max_steps": 2, "max_repeats": 50}), "step limit", 3),
        ("loop", json!({"max_repeats": 2}), "same tool call", 3),
        ("tools", json!({"max_tool_calls": 1, "max_repeats": 50}), "tool call limit", 2),
        ("tokens", json!({"max_output_tokens": 1, "max_repeats": 50}), "output token limit", 2),
        ("cost", json!({"max_cost_usd": 0.000001, "max_repeats": 50}), "cost limit", 1),
    ];
    for (name, limits, reason, calls) in cases {
        let before = up.bodies().iter().filter(|b| b.get("messages").is_some()).count();
        let id = agent(&s, &key, spec(name, tools.clone(), limits)).await;
        let run = start(&s, &key, &id, "Loop").await;
        let done = wait_run(&s, &key, &run, &["succeeded", "failed"]).await;
        assert_eq!(done["state"], "succeeded", "{name}: {done}");
        assert!(done["reason"].as_str().unwrap_or_default().contains(reason), "{name}: {done}");
        assert!(!done["answer"].as_str().unwrap().is_empty(), "{name}: a cap still ends with a message");
        let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
        assert_eq!(chats.len() - before, calls, "{name}: model calls");
        if name != "cost" {
            // The last call is offered no tools: the model writes the answer.
            assert!(chats.last().unwrap().get("tools").is_none(), "{name}");
        } else {
            assert!(done["answer"].as_str().unwrap().starts_with("The run stopped"), "{done}");
        }
        assert_eq!(kinds(&s, &key, &run).await.last().map(String::as_str), Some("ended"));
    }
}

#[tokio::test]
async fn approvals_reject_edit_and_expire() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    let pay = json!({
        "type": "client",
        "approval": {"when": {"field": "amount", "gt": 100}},
        "client": {"parameters": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}},
    });
    // The rule asks only about large amounts; reject tells the model why.
    let id = agent(&s, &key, spec("pay", json!({"pay": pay}), json!({"max_wait_secs": 1}))).await;
    up.script([Scripted::Calls(vec![("pay".into(), json!({"amount": 500}))]), Scripted::Text("Not paid.".into())]);
    let run = start(&s, &key, &id, "Pay 500").await;
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    assert_eq!(waiting["pending"][0]["kind"], "approval", "{waiting}");
    let call = waiting["pending"][0]["call_id"].as_str().unwrap().to_owned();
    let reject = json!({"answers": [{"call_id": call, "decision": "reject", "message": "too much"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/approvals"), &key, &reject).await.0, 200);
    let done = wait_run(&s, &key, &run, &["succeeded"]).await;
    assert_eq!(done["answer"], "Not paid.");
    assert_eq!(last_tool_results(&up), ["A person rejected this call: too much"]);

    // An edit replaces the arguments (then the client runs the call).
    up.script([Scripted::Calls(vec![("pay".into(), json!({"amount": 500}))]), Scripted::Text("Paid 50.".into())]);
    let run = start(&s, &key, &id, "Pay 500").await;
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    let call = waiting["pending"][0]["call_id"].as_str().unwrap().to_owned();
    let edit = json!({"answers": [{"call_id": call, "decision": "edit", "arguments": {"amount": 50}}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/approvals"), &key, &edit).await.0, 200);
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    assert_eq!(waiting["pending"][0]["kind"], "client_output", "{waiting}");
    let outputs = json!({"outputs": [{"call_id": call, "output": "paid 50"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &outputs).await.0, 200);
    assert_eq!(wait_run(&s, &key, &run, &["succeeded"]).await["answer"], "Paid 50.");

    // Nobody answers: after max_wait_secs the approval counts as rejected and the run goes on.
    up.script([Scripted::Calls(vec![("pay".into(), json!({"amount": 500}))]), Scripted::Text("Gave up.".into())]);
    let run = start(&s, &key, &id, "Pay 500").await;
    wait_run(&s, &key, &run, &["requires_action"]).await;
    let done = wait_run(&s, &key, &run, &["succeeded"]).await;
    assert_eq!(done["answer"], "Gave up.");
    assert_eq!(last_tool_results(&up), ["A person rejected this call: the approval expired"]);
    let (_, steps) = s.get(&format!("/v1/runs/{run}/steps"), &key).await;
    let taken = steps["data"].as_array().unwrap().iter().find(|st| st["kind"] == "action_taken").cloned().unwrap();
    assert_eq!(taken["data"]["by"], "system:expiry");

    // A client tool nobody answers ends the run `expired`.
    up.script([Scripted::Calls(vec![("pay".into(), json!({"amount": 5}))])]);
    let run = start(&s, &key, &id, "Pay 5").await;
    let done = wait_run(&s, &key, &run, &["expired"]).await;
    assert!(done["reason"].as_str().unwrap().contains("did not come in time"), "{done}");

    // Time spent waiting for a person is not the run's wall time: a pause longer than
    // max_wall_secs, then the run goes on and ends normally.
    let limits = json!({"max_wall_secs": 1, "max_wait_secs": 60});
    let id = agent(&s, &key, spec("slow-person", json!({"pay": pay}), limits)).await;
    up.script([Scripted::Calls(vec![("pay".into(), json!({"amount": 5}))]), Scripted::Text("Paid.".into())]);
    let run = start(&s, &key, &id, "Pay 5").await;
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    // What is under test is time passing: the person answers after the run's wall time.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let call = waiting["pending"][0]["call_id"].as_str().unwrap().to_owned();
    let outputs = json!({"outputs": [{"call_id": call, "output": "paid 5"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &outputs).await.0, 200);
    let done = wait_run(&s, &key, &run, &["succeeded"]).await;
    assert_eq!((done["answer"].as_str(), done["reason"].as_str()), (Some("Paid."), None), "{done}");
}

#[tokio::test]
async fn busy_threads_refuse_or_queue_and_runs_cancel() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    let id = agent(&s, &key, spec("w", json!({"weather": weather(json!({}))}), json!({}))).await;
    let (_, thread) = s.post("/v1/threads", &key, &json!({})).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    up.script([Scripted::Calls(vec![("weather".into(), json!({"city": "Oslo"}))])]);
    let on_thread = |text: &str, busy: &str| json!({"agent_id": id, "thread_id": thread, "if_busy": busy, "messages": [{"role": "user", "content": text}]});
    let (status, first) = s.post("/v1/runs", &key, &on_thread("one", "refuse")).await;
    assert_eq!(status, 202, "{first}");
    let first = first["id"].as_str().unwrap().to_owned();
    wait_run(&s, &key, &first, &["requires_action"]).await;
    let (status, err) = s.post("/v1/runs", &key, &on_thread("two", "refuse")).await;
    assert_eq!(status, 409, "{err}");
    let (status, second) = s.post("/v1/runs", &key, &on_thread("two", "queue")).await;
    assert_eq!(status, 202, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get(&format!("/v1/runs/{second}"), &key).await.1["state"], "queued");

    // Cancelling the first lets the second go; it sees the first's question, not its own twice.
    up.script([Scripted::Text("Second answer.".into())]);
    let reader = s.key("acme", "reader", json!({})).await;
    assert_eq!(s.post(&format!("/v1/runs/{first}/cancel"), &reader, &json!({})).await.0, 403);
    let (status, cancelled) = s.post(&format!("/v1/runs/{first}/cancel"), &key, &json!({})).await;
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let done = wait_run(&s, &key, &second, &["succeeded"]).await;
    assert_eq!(done["answer"], "Second answer.");
    let (_, messages) = s.get(&format!("/v1/threads/{thread}/messages"), &key).await;
    let texts: Vec<&str> =
        messages["data"].as_array().unwrap().iter().map(|m| m["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "two", "Second answer."]);
    // The output of a cancelled run's pending call is refused.
    let outputs = json!({"outputs": [{"call_id": "call_1", "output": "late"}]});
    assert_eq!(s.post(&format!("/v1/runs/{first}/tool_outputs"), &key, &outputs).await.0, 409);

    // Bad input: a one-off run needs input; unknown fields and agents are refused.
    assert_eq!(s.post("/v1/runs", &key, &json!({"agent_id": id})).await.0, 400);
    assert_eq!(s.post("/v1/runs", &key, &json!({"agent_id": id, "colour": 1})).await.0, 400);
    let unknown = json!({"agent_id": "agt_nope", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(s.post("/v1/runs", &key, &unknown).await.0, 404);
    let (_, other_thread) = s.post("/v1/threads", &s.key("globex", "member", json!({})).await, &json!({})).await;
    let theirs = json!({"agent_id": id, "thread_id": other_thread["id"]});
    assert_eq!(s.post("/v1/runs", &key, &theirs).await.0, 404, "another tenant's thread is as good as missing");
    assert_eq!(s.get("/v1/runs/run_nope", &key).await.0, 404);
    assert_eq!(s.get(&format!("/v1/runs/{second}/steps?limit=0"), &key).await.0, 400);
}

/// Reads SSE events (event name, id, data) from `path` until the stream ends.
async fn read_events(s: &TestServer, key: &str, path: &str, last_id: Option<&str>) -> Vec<(String, String, Value)> {
    let mut req = s.client.get(format!("{}{path}", s.base)).bearer_auth(key);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), req.send()).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(30), resp.text()).await.unwrap().unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
        .map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).map(|v| v.trim().to_owned())
            };
            let data = field("data").and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(Value::Null);
            (field("event").unwrap_or_default(), field("id").unwrap_or_default(), data)
        })
        .collect()
}

#[tokio::test]
async fn the_event_stream_resumes_after_the_last_event_id() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    let id = agent(&s, &key, spec("w", json!({"weather": weather(json!({}))}), json!({}))).await;
    up.script([Scripted::Calls(vec![("weather".into(), json!({"city": "Oslo"}))]), Scripted::Text("Sunny.".into())]);
    let run = start(&s, &key, &id, "Weather?").await;
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    let call = waiting["pending"][0]["call_id"].as_str().unwrap().to_owned();
    let outputs = json!({"outputs": [{"call_id": call, "output": "sun"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &outputs).await.0, 200);
    wait_run(&s, &key, &run, &["succeeded"]).await;

    let all = read_events(&s, &key, &format!("/v1/runs/{run}/events"), None).await;
    let names: Vec<&str> = all.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(
        names,
        ["run.started", "step.done", "approval.requested", "approval.answered", "step.done", "run.ended"],
        "{all:?}"
    );
    let ids: Vec<&str> = all.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6"]);
    // Resuming after event 3 gives exactly what followed it.
    let rest = read_events(&s, &key, &format!("/v1/runs/{run}/events"), Some("3")).await;
    assert_eq!(rest.iter().map(|(_, id, _)| id.as_str()).collect::<Vec<_>>(), ["4", "5", "6"]);
    assert_eq!(rest.last().unwrap().2["data"]["answer"], "Sunny.");
    // A Last-Event-ID that is not a number is a clear 400; another tenant sees nothing.
    let resp = s
        .client
        .get(format!("{}/v1/runs/{run}/events", s.base))
        .bearer_auth(&key)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let other = s.key("globex", "admin", json!({})).await;
    assert_eq!(s.get(&format!("/v1/runs/{run}/events"), &other).await.0, 404);
}

#[tokio::test]
async fn http_request_tools_keep_to_the_allow_list_and_their_limits() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let receiver = cairn_testkit::Receiver::start().await;
    let key = s.key("acme", "member", json!({})).await;
    let fetch = json!({"type": "http_request", "http_request": {"methods": ["GET", "POST"], "max_body_bytes": 16}});
    let id = agent(&s, &key, spec("fetcher", json!({"fetch": fetch}), json!({}))).await;
    let json_header = json!({"content-type": "application/json"});
    up.script([
        Scripted::Calls(vec![
            ("fetch".into(), json!({"url": "http://10.1.2.3/x"})),
            ("fetch".into(), json!({"method": "DELETE", "url": receiver.url()})),
            (
                "fetch".into(),
                json!({"method": "POST", "url": receiver.url(), "headers": json_header, "body": "{\"a\":1}"}),
            ),
            (
                "fetch".into(),
                json!({"method": "POST", "url": format!("{}/embeddings", up.openai_url()),
                "headers": json_header, "body": "{\"model\":\"embed-model\",\"input\":\"hello\"}"}),
            ),
            ("fetch".into(), json!({"method": "POST", "url": receiver.url(), "headers": {"Idempotency-Key": "mine"}})),
        ]),
        Scripted::Text("Fetched.".into()),
    ]);
    let run = start(&s, &key, &id, "Fetch").await;
    let done = wait_run(&s, &key, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["answer"], "Fetched.", "{done}");
    let results = last_tool_results(&up);
    let has = |needle: &str| results.iter().any(|r| r.contains(needle));
    assert!(has("is not allowed for this tenant"), "an address off the allow-list: {results:?}");
    assert!(has("\"DELETE\" is not one of"), "the schema offers only the tool's methods: {results:?}");
    assert!(has("header 'Idempotency-Key' cannot be set"), "{results:?}");
    let answered: Vec<Value> = results.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
    assert!(answered.iter().any(|a| a["status"] == 200 && a["truncated"] == false), "{results:?}");
    let cut = answered.iter().find(|a| a["truncated"] == true).expect("the long answer is cut");
    assert_eq!(cut["body"].as_str().map(str::len), Some(16));
    // The POST carried the call's idempotency key.
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].key.starts_with(&format!("{run}:1:")), "{}", deliveries[0].key);
    assert_eq!(deliveries[0].body, json!({"a": 1}));

    // A tool that takes longer than its time limit answers the model with a timeout.
    receiver.hold(Duration::from_secs(5));
    let slow = json!({"type": "http_request", "http_request": {"methods": ["POST"], "timeout_ms": 200}});
    let id = agent(&s, &key, spec("slow", json!({"fetch": slow}), json!({}))).await;
    up.script([
        Scripted::Calls(vec![(
            "fetch".into(),
            json!({"method": "POST", "url": receiver.url(), "headers": json_header, "body": "{}"}),
        )]),
        Scripted::Text("Too slow.".into()),
    ]);
    let run = start(&s, &key, &id, "Fetch slowly").await;
    assert_eq!(wait_run(&s, &key, &run, &["succeeded", "failed"]).await["answer"], "Too slow.");
    let results = last_tool_results(&up);
    assert!(results[0].contains("took longer than 200 ms") || results[0].contains("request failed"), "{results:?}");
}

#[tokio::test]
async fn tools_stop_reading_an_answer_that_never_ends() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let receiver = cairn_testkit::Receiver::start().await;
    receiver.answer_without_end();
    let key = s.key("acme", "member", json!({})).await;
    let hook = json!({"type": "webhook", "webhook": {"url": receiver.url(), "parameters": {"type": "object"}}});
    let fetch = json!({"type": "http_request", "http_request": {"methods": ["POST"], "max_body_bytes": 1000}});
    let id = agent(&s, &key, spec("flooded", json!({"hook": hook, "fetch": fetch}), json!({}))).await;
    let json_header = json!({"content-type": "application/json"});
    up.script([
        Scripted::Calls(vec![
            ("hook".into(), json!({})),
            ("fetch".into(), json!({"method": "POST", "url": receiver.url(), "headers": json_header, "body": "{}"})),
        ]),
        Scripted::Text("Read enough.".into()),
    ]);
    let run = start(&s, &key, &id, "Call both").await;
    let done = wait_run(&s, &key, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["answer"], "Read enough.", "{done}");
    let results = last_tool_results(&up);
    let hook = results.iter().find(|r| r.starts_with('x')).expect("the webhook's answer");
    assert!(hook.ends_with("[cut: the result was longer]"), "{}", &hook[hook.len().saturating_sub(80)..]);
    assert!(hook.len() < 70 * 1024, "{} bytes reached the model", hook.len());
    let fetched: Value = results.iter().find_map(|r| serde_json::from_str(r).ok()).expect("the request's answer");
    assert_eq!((fetched["truncated"].as_bool(), fetched["body"].as_str().map(str::len)), (Some(true), Some(1000)));
    // Each reader hung up once it had enough: the receiver wrote little beyond the sockets'
    // buffers, not the gigabytes it would have sent a reader that reads to the end.
    assert!(receiver.endless_bytes_sent() < 64 << 20, "{} bytes sent", receiver.endless_bytes_sent());
}

#[tokio::test]
async fn runs_call_tools_through_anthropic_too() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    let mut def = spec("claude-agent", json!({"weather": weather(json!({}))}), json!({"max_repeats": 2}));
    def["model"] = json!("claude");
    let id = agent(&s, &key, def).await;
    // The stand-in's Anthropic side always asks for the first tool: once for the output,
    // once more (a loop, so the run's last call is offered no tools and answers).
    let run = start(&s, &key, &id, "Weather in Oslo?").await;
    let waiting = wait_run(&s, &key, &run, &["requires_action"]).await;
    assert_eq!(waiting["pending"][0]["arguments"], "{\"city\":\"Oslo\"}", "{waiting}");
    let call = waiting["pending"][0]["call_id"].as_str().unwrap().to_owned();
    let outputs = json!({"outputs": [{"call_id": call, "output": "sunny, 21 C"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/tool_outputs"), &key, &outputs).await.0, 200);
    let done = wait_run(&s, &key, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("same tool call"), "{done}");
    let sent: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
    let second = sent[1].to_string();
    assert!(
        second.contains("tool_result") && second.contains("sunny, 21 C"),
        "the output went back as Anthropic's tool_result: {second}"
    );
}

#[tokio::test]
async fn racing_runs_and_hostile_callers_on_sqlite() {
    racing_runs_on_a_free_thread_and_hostile_callers(false).await;
}

#[tokio::test]
async fn racing_runs_and_hostile_callers_on_postgres() {
    racing_runs_on_a_free_thread_and_hostile_callers(true).await;
}

async fn racing_runs_on_a_free_thread_and_hostile_callers(postgres: bool) {
    let up = StandIn::start().await;
    let s = server(&up, postgres).await;
    let key = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;
    let id = agent(&s, &key, spec("w", json!({"weather": weather(json!({}))}), json!({}))).await;
    let (_, thread) = s.post("/v1/threads", &key, &json!({})).await;
    let body = json!({"agent_id": id, "thread_id": thread["id"], "messages": [{"role": "user", "content": "go"}]});

    // Eight runs race for a free thread, each asking to refuse if busy: exactly one starts.
    let racers = (0..8).map(|_| {
        let (s, key, body) = (&s, &key, &body);
        async move { s.post("/v1/runs", key, body).await.0 }
    });
    let mut codes = futures::future::join_all(racers).await;
    codes.sort_unstable();
    assert_eq!(codes, [202, 409, 409, 409, 409, 409, 409, 409]);

    // A reader cannot start runs; the largest input passes, one more message does not.
    assert_eq!(
        s.post("/v1/runs", &reader, &json!({"agent_id": id, "messages": [{"role": "user", "content": "x"}]})).await.0,
        403
    );
    let many = |n: usize| (0..n).map(|i| json!({"role": "user", "content": format!("m{i}")})).collect::<Vec<_>>();
    let (status, err) = s.post("/v1/runs", &key, &json!({"agent_id": id, "messages": many(101)})).await;
    assert_eq!(status, 400, "{err}");
    let huge = "x".repeat(262_145);
    let (status, _) =
        s.post("/v1/runs", &key, &json!({"agent_id": id, "messages": [{"role": "user", "content": huge}]})).await;
    assert!(status == 400 || status == 413, "{status}");
    let (status, run) = s.post("/v1/runs", &key, &json!({"agent_id": id, "messages": many(100)})).await;
    assert_eq!(status, 202, "{run}");
    let run = run["id"].as_str().unwrap().to_owned();

    // Another tenant's admin reads nothing of it; the instance owner reads it.
    assert_eq!(s.get(&format!("/v1/runs/{run}/steps"), &globex).await.0, 404);
    let outputs = json!({"outputs": [{"call_id": "call_1", "output": "x"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run}/tool_outputs"), &globex, &outputs).await.0, 404);
    assert_eq!(s.get(&format!("/v1/runs/{run}"), &s.admin_key).await.0, 200);
    assert_eq!(s.get(&format!("/v1/runs/{run}"), &reader).await.0, 200);
}
