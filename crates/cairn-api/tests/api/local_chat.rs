//! The in-process chat model (SmolLM2 GGUF) through the real HTTP API. Needs the model in the
//! cache (scripts/test.sh pulls it). One thread per engine: tests run side by side.

use std::time::Duration;

use cairn_testkit::TestServer;
use serde_json::{json, Value};

use crate::usage;

fn config(models_dir: Option<&str>, queue: usize) -> String {
    let dir = models_dir.map(|d| format!("models_dir = \"{d}\"\n")).unwrap_or_default();
    format!(
        "[local]\nthreads = 1\nqueue = {queue}\nchat_context = 2048\n{dir}\n[providers.local]\nkind = \"local\"\n\n\
         [models.\"local/smollm2\"]\ntargets = [{{ provider = \"local\", model = \"smollm2\" }}]\n"
    )
}

fn ask(max_tokens: u32) -> Value {
    json!({"model": "local/smollm2", "temperature": 0, "max_tokens": max_tokens,
           "messages": [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": "Name three colours of the rainbow."}]})
}

fn stream_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn deterministic_at_temperature_zero_in_both_modes() {
    let s = TestServer::start(&config(None, 8)).await;
    let (status, a) = s.post("/v1/chat/completions", &s.admin_key, &ask(24)).await;
    assert_eq!(status, 200, "{a}");
    let text = a["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    assert!(!text.trim().is_empty());
    let (_, b) = s.post("/v1/chat/completions", &s.admin_key, &ask(24)).await;
    assert_eq!(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"], "greedy decoding repeats");

    let mut body = ask(24);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(stream_text(&events), text, "streaming yields the same tokens");
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["usage"]["completion_tokens"], a["usage"]["completion_tokens"]);

    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["requests"], 3);
}

#[tokio::test]
async fn max_tokens_and_stop_sequences() {
    let s = TestServer::start(&config(None, 8)).await;
    let (_, long) = s.post("/v1/chat/completions", &s.admin_key, &ask(40)).await;
    let full = long["choices"][0]["message"]["content"].as_str().unwrap().to_owned();

    let (_, short) = s.post("/v1/chat/completions", &s.admin_key, &ask(5)).await;
    assert_eq!(short["choices"][0]["finish_reason"], "length", "{short}");
    assert_eq!(short["usage"]["completion_tokens"], 5);

    // Stop at the second word of the full answer: the output is what came before it.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() > 3, "{full}");
    let stop = words[2];
    let cut = &full[..full.find(stop).unwrap()];
    let mut body = ask(40);
    body["stop"] = json!([stop]);
    let (_, stopped) = s.post("/v1/chat/completions", &s.admin_key, &body).await;
    assert_eq!(stopped["choices"][0]["message"]["content"], cut, "full answer: {full:?}");
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    body["stream"] = json!(true);
    let (_, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(stream_text(&events), cut, "stops apply to streams too");
}

#[tokio::test]
async fn cancelling_a_stream_frees_the_model_at_once() {
    // A queue of one: a request waits only for the generation in front of it.
    let s = TestServer::start(&config(None, 1)).await;
    let mut long = ask(1500);
    long["stream"] = json!(true);
    long["messages"][1]["content"] = json!("Write a very long story about the sea.");
    let mut resp = s.send_chat(&s.admin_key, &long).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.chunk().await.unwrap().is_some());
    drop(resp);
    // Had generation gone on, this would wait behind ~1500 tokens (tens of seconds).
    let quick = s.client.post(format!("{}/v1/chat/completions", s.base)).bearer_auth(&s.admin_key).json(&ask(3));
    let answer =
        tokio::time::timeout(Duration::from_secs(10), quick.send()).await.expect("the model was freed").unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    // Queue of one: with a long generation running, of three more requests one waits and the
    // others are refused at once.
    let s = TestServer::start(&config(None, 1)).await;
    let mut long = ask(1500);
    long["stream"] = json!(true);
    long["messages"][1]["content"] = json!("Write a very long story about the sea.");
    let mut running = s.send_chat(&s.admin_key, &long).await;
    assert!(running.chunk().await.unwrap().is_some());
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (client, url, key) = (s.client.clone(), format!("{}/v1/chat/completions", s.base), s.admin_key.clone());
            tokio::spawn(async move { client.post(url).bearer_auth(key).json(&ask(2)).send().await.unwrap() })
        })
        .collect();
    while !tasks.iter().any(|t| t.is_finished()) {
        tokio::task::yield_now().await;
    }
    drop(running); // frees the model for the queued request
    let mut statuses = Vec::new();
    for t in tasks {
        let resp = t.await.unwrap();
        if resp.status() == 503 {
            assert!(resp.headers().contains_key("retry-after"));
            let body: Value = resp.json().await.unwrap();
            assert!(body["error"]["message"].as_str().unwrap().contains("busy"), "{body}");
            statuses.push(503);
        } else {
            statuses.push(resp.status().as_u16());
        }
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&200), "the queued request is served: {statuses:?}");
}

#[tokio::test]
async fn missing_and_corrupt_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&config(Some(dir.path().to_str().unwrap()), 8)).await;
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &ask(3)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("cairn models pull smollm2"), "{body}");

    let bad = dir.path().join("broken");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("model.gguf"), b"GGUF but not really a model").unwrap();
    let cfg = config(Some(dir.path().to_str().unwrap()), 8).replace("model = \"smollm2\"", "model = \"broken\"");
    let s = TestServer::start(&cfg).await;
    let (status, body) = s.post("/v1/chat/completions", &s.admin_key, &ask(3)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("cannot be loaded"), "{body}");
}

fn weather_tools(choice: Value) -> Value {
    json!({"model": "local/smollm2", "temperature": 0, "max_tokens": 60, "tool_choice": choice,
           "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
           "tools": [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                      "parameters": {"type": "object", "required": ["city", "days"],
                                     "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                                    "unit": {"enum": ["C", "F"]}}}}},
                     {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]})
}

#[tokio::test]
async fn a_required_call_follows_the_tools_schema_in_both_modes() {
    let s = TestServer::start(&config(None, 8)).await;
    let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &weather_tools(json!("required"))).await;
    assert_eq!(status, 200, "{resp}");
    let choice = &resp["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{resp}");
    let call = &choice["message"]["tool_calls"][0];
    let name = call["function"]["name"].as_str().unwrap();
    assert!(["get_weather", "noop"].contains(&name), "{resp}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    if name == "get_weather" {
        assert!(args["city"].is_string() && args["days"].is_i64(), "the grammar keeps to the schema: {args}");
    }

    // Naming the function forces that one; streamed, the call comes as one tool-call delta.
    let mut body = weather_tools(json!({"type": "function", "function": {"name": "get_weather"}}));
    body["stream"] = json!(true);
    let (status, events) = s.stream(&s.admin_key, &body).await;
    assert_eq!(status, 200);
    let chunks: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    let delta = chunks.iter().find_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned()).unwrap();
    assert_eq!(delta[0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(delta[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string() && args["days"].is_i64(), "{args}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    // With the call's result in the conversation and no tool required, the model answers
    // (or calls again); a function that is not offered is the client's error.
    let mut body = weather_tools(json!("none"));
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 1}"}}]}));
    messages.push(json!({"role": "tool", "tool_call_id": "c1", "content": "Sunny, 21 C"}));
    let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &body).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{resp}");
    let bad = weather_tools(json!({"type": "function", "function": {"name": "missing"}}));
    assert_eq!(s.post("/v1/chat/completions", &s.admin_key, &bad).await.0, 400);
}

#[tokio::test]
async fn a_json_schema_response_format_constrains_the_local_model() {
    let schema = json!({"type": "object", "required": ["colour", "count", "warm"], "additionalProperties": false,
        "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}, "warm": {"type": "boolean"},
                       "shade": {"enum": ["light", "dark"]}}});
    let cfg = format!("{}guards = {{ output_schema = \"block\" }}\n", config(None, 8));
    let s = TestServer::start(&cfg).await;
    for stream in [false, true] {
        let body = json!({"model": "local/smollm2", "temperature": 0, "max_tokens": 60, "stream": stream,
            "messages": [{"role": "user", "content": "Pick a colour of the rainbow and say how many letters it has."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}}});
        let text = if stream {
            let (status, events) = s.stream(&s.admin_key, &body).await;
            assert_eq!(status, 200);
            stream_text(&events)
        } else {
            let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &body).await;
            assert_eq!(status, 200, "{resp}");
            resp["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned()
        };
        // A 135M model left alone rarely writes this; under the grammar it always does.
        let doc: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(doc["colour"].is_string() && doc["count"].is_i64() && doc["warm"].is_boolean(), "{doc}");
        assert_eq!(doc.as_object().map(|o| o.len()), Some(3), "{doc}");
    }
    // A JSON object format: any object.
    let body = json!({"model": "local/smollm2", "temperature": 0, "max_tokens": 40,
        "messages": [{"role": "user", "content": "Describe a cat."}], "response_format": {"type": "json_object"}});
    let (status, resp) = s.post("/v1/chat/completions", &s.admin_key, &body).await;
    assert_eq!(status, 200, "{resp}");
    let text = resp["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    assert!(text.trim_start().starts_with('{'), "{text}");
}
