//! Tool calling through the gateway with a scripted upstream: parallel calls arrive whole,
//! streamed or not, and the tool results go back to the model in the next call.

use cairn_testkit::{Scripted, StandIn, TestServer};
use serde_json::{json, Value};

fn with_tools(stream: bool) -> Value {
    json!({
        "model": "fast",
        "stream": stream,
        "messages": [{"role": "user", "content": "Weather in Oslo and Bergen?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    })
}

fn two_calls() -> Scripted {
    Scripted::Calls(vec![
        ("weather".into(), json!({"city": "Oslo"})),
        ("weather".into(), json!({"city": "Bergen, Vestland"})),
    ])
}

#[tokio::test]
async fn parallel_tool_calls_arrive_whole_and_their_results_go_back() {
    let up = StandIn::start().await;
    let s = TestServer::start(&crate::config(&up, &up)).await;
    up.script([two_calls(), Scripted::Text("Rain in both.".into()), two_calls()]);

    // Not streamed: both calls in one assistant message.
    let (status, done) = s.post("/v1/chat/completions", &s.admin_key, &with_tools(false)).await;
    assert_eq!(status, 200, "{done}");
    let calls = done["choices"][0]["message"]["tool_calls"].as_array().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(done["choices"][0]["finish_reason"], "tool_calls");
    let args: Value = serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Bergen, Vestland");

    // The results go back as tool messages; the model answers.
    let mut follow = with_tools(false);
    let messages = follow["messages"].as_array_mut().unwrap();
    messages.push(done["choices"][0]["message"].clone());
    for c in &calls {
        messages.push(json!({"role": "tool", "tool_call_id": c["id"], "content": "rain"}));
    }
    let (status, answer) = s.post("/v1/chat/completions", &s.admin_key, &follow).await;
    assert_eq!((status, answer["choices"][0]["message"]["content"].as_str()), (200, Some("Rain in both.")), "{answer}");
    let sent = up.bodies().last().cloned().unwrap();
    assert_eq!(sent["messages"].as_array().map(Vec::len), Some(4), "the upstream saw the results: {sent}");

    // Streamed: the argument pieces of each call, by index, add up to its arguments.
    let (status, events) = s.stream(&s.admin_key, &with_tools(true)).await;
    assert_eq!(status, 200);
    let mut args = [String::new(), String::new()];
    for e in events.iter().filter_map(|e| serde_json::from_str::<Value>(e).ok()) {
        for tc in e["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            args[i].push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    let parsed: Vec<Value> = args.iter().map(|a| serde_json::from_str(a).unwrap()).collect();
    assert_eq!(parsed, [json!({"city": "Oslo"}), json!({"city": "Bergen, Vestland"})]);
}
