//! A stand-in upstream: answers `/v1/chat/completions`, `/v1/embeddings` (OpenAI) and
//! `/v1/messages` (Anthropic) with deterministic content, and takes a queue of faults to
//! inject, one per request. It records what it received and notices when a client hangs up.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::Stream;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// The words the stand-in answers with, one per stream chunk.
pub const WORDS: [&str; 4] = ["Hello", " from", " the", " stand-in."];
/// Prompt tokens the stand-in reports.
pub const PROMPT_TOKENS: u64 = 11;

/// A fault for one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `retry-after` seconds, if given).
    Status(u16, Option<u64>),
    /// Wait this long before answering (before the first chunk when streaming).
    SlowFirstToken(Duration),
    /// Stream this many chunks, then break the connection.
    CutAfter(usize),
    /// Answer with a body that is not valid JSON.
    MalformedJson,
    /// Never answer.
    Hang,
    /// Wait this long between stream chunks.
    ChunkDelay(Duration),
    /// Answer with this status and a body that never ends (until the client hangs up).
    EndlessBody(u16),
}

#[derive(Default)]
struct Shared {
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    hung_up: AtomicUsize,
    /// Bytes of never-ending bodies written so far.
    endless_sent: Arc<std::sync::atomic::AtomicU64>,
    changed: tokio::sync::Notify,
    reply: Mutex<Option<Vec<String>>>,
    embed_dims: AtomicUsize,
    usage_every_chunk: std::sync::atomic::AtomicBool,
    script: Mutex<VecDeque<Scripted>>,
}

/// One scripted chat answer (OpenAI-style chat), used in order before the default answers.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// Answer with this text.
    Text(String),
    /// Call these tools (name, arguments), in parallel, as one assistant message.
    Calls(Vec<(String, Value)>),
}

/// A running stand-in provider.
#[derive(Clone)]
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Counts a client hang-up if dropped before `done` is set.
struct HangUpGuard {
    shared: Arc<Shared>,
    done: bool,
}

impl Drop for HangUpGuard {
    fn drop(&mut self) {
        if !self.done {
            self.shared.hung_up.fetch_add(1, Ordering::SeqCst);
            self.shared.changed.notify_waiters();
        }
    }
}

impl HangUpGuard {
    /// Marks the response as delivered in full.
    fn complete(mut self) {
        self.done = true;
    }
}

impl StandIn {
    /// Starts a stand-in on a free loopback port.
    pub async fn start() -> StandIn {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/v1/messages", post(anthropic_messages))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        StandIn { addr, shared }
    }

    /// Base URL for OpenAI-style config (`.../v1`).
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL for Anthropic-style config.
    pub fn anthropic_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues faults, used by the next requests in order.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.faults.lock().extend(faults);
    }

    /// Makes embeddings this long when the request names no `dimensions` (default 4), as a
    /// provider whose model was swapped would.
    pub fn embed_with_dimensions(&self, dims: usize) {
        self.shared.embed_dims.store(dims, Ordering::SeqCst);
    }

    /// Queues scripted chat answers: each chat request takes the next one (tool calls to make,
    /// or a text), streamed or not; when the script runs out, the default answers resume.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.shared.script.lock().extend(answers);
    }

    /// Puts the usage so far on every streamed content chunk, as in-process engines and
    /// upstreams streaming usage continuously do: ten completion tokens a word.
    pub fn stream_usage_on_every_chunk(&self) {
        self.shared.usage_every_chunk.store(true, Ordering::SeqCst);
    }

    /// Makes OpenAI-style chat answers these pieces (one per stream chunk) instead of `WORDS`.
    pub fn reply_with(&self, pieces: &[&str]) {
        *self.shared.reply.lock() = Some(pieces.iter().map(|p| (*p).to_owned()).collect());
    }

    /// The JSON bodies received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.shared.requests.lock().iter().map(|(_, b)| b.clone()).collect()
    }

    /// The headers of the requests received so far.
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.shared.requests.lock().iter().map(|(h, _)| h.clone()).collect()
    }

    /// Requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().len()
    }

    /// Bytes of never-ending bodies (`Fault::EndlessBody`) written so far: what the client
    /// read, plus at most the sockets' buffers.
    pub fn endless_bytes_sent(&self) -> u64 {
        self.shared.endless_sent.load(Ordering::Relaxed)
    }

    /// Responses abandoned by the client before they completed.
    pub fn hang_ups(&self) -> usize {
        self.shared.hung_up.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` hang-ups were seen (fails the test after 10 s).
    pub async fn wait_hang_ups(&self, n: usize) {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                if self.hang_ups() >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.expect("stand-in never saw the client hang up");
    }
}

fn next_fault(shared: &Shared, headers: &HeaderMap, body: &Value) -> Option<Fault> {
    shared.requests.lock().push((headers.clone(), body.clone()));
    shared.faults.lock().pop_front()
}

fn status_response(code: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp =
        (status, Json(json!({"error": {"message": format!("injected {code}"), "type": "stand_in"}}))).into_response();
    if let Some(s) = retry_after {
        resp.headers_mut().insert("retry-after", s.to_string().parse().expect("header value"));
    }
    resp
}

/// A body of `byte` repeated without end (until the client hangs up), counting into `sent`
/// the bytes handed to the connection.
pub(crate) fn endless_body(byte: u8, sent: Arc<std::sync::atomic::AtomicU64>) -> Body {
    let chunk = Bytes::from(vec![byte; 64 * 1024]);
    Body::from_stream(futures::stream::repeat_with(move || {
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::convert::Infallible>(chunk.clone())
    }))
}

/// Applies the request-level part of a fault; returns a response if the fault answers itself.
async fn apply(fault: &Option<Fault>, shared: &Arc<Shared>) -> Option<Response> {
    match fault {
        Some(Fault::Status(code, ra)) => Some(status_response(*code, *ra)),
        Some(Fault::SlowFirstToken(d)) => {
            let guard = HangUpGuard { shared: shared.clone(), done: false };
            tokio::time::sleep(*d).await;
            guard.complete();
            None
        }
        Some(Fault::Hang) => {
            let _guard = HangUpGuard { shared: shared.clone(), done: false };
            std::future::pending::<()>().await;
            None
        }
        Some(Fault::EndlessBody(code)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = endless_body(b' ', shared.endless_sent.clone());
            Some((status, [("content-type", "application/json")], body).into_response())
        }
        _ => None,
    }
}

fn tool_name(body: &Value) -> Option<String> {
    body.pointer("/tools/0/function/name")
        .or_else(|| body.pointer("/tools/0/name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// SSE frames from `events`, with the fault's cut and delays applied; counts hang-ups.
fn sse_body(events: Vec<String>, fault: Option<Fault>, shared: Arc<Shared>) -> Response {
    let cut_after = match fault {
        Some(Fault::CutAfter(n)) => Some(n),
        _ => None,
    };
    let delay = match fault {
        Some(Fault::ChunkDelay(d)) => Some(d),
        // Space frames out so the ones before the cut are really delivered (unflushed
        // frames would be lost with the connection, which looks like a failure before the
        // first byte).
        Some(Fault::CutAfter(_)) => Some(Duration::from_millis(20)),
        _ => None,
    };
    let guard = HangUpGuard { shared, done: false };
    let stream =
        futures::stream::unfold((events.into_iter().enumerate(), guard), move |(mut it, mut guard)| async move {
            let (i, frame) = match it.next() {
                Some(x) => x,
                None => {
                    guard.complete();
                    return None;
                }
            };
            if let Some(d) = delay {
                if i > 0 {
                    tokio::time::sleep(d).await;
                }
            }
            if cut_after == Some(i) {
                // Break the connection mid-body; nothing after this frame is sent.
                guard.done = true;
                let it = Vec::new().into_iter().enumerate();
                return Some((Err(std::io::Error::other("injected cut")), (it, guard)));
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(frame)), (it, guard)))
        });
    sse_response(stream)
}

fn sse_response(stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("valid response")
}

async fn openai_chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let fault = next_fault(&shared, &headers, &body);
    if let Some(resp) = apply(&fault, &shared).await {
        return resp;
    }
    let model = body["model"].as_str().unwrap_or("standin").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let tool = tool_name(&body);
    if matches!(fault, Some(Fault::MalformedJson)) {
        return if stream {
            sse_response(futures::stream::iter([Ok(Bytes::from("data: {broken\n\n"))]))
        } else {
            "{not json".into_response()
        };
    }
    let scripted = shared.script.lock().pop_front();
    // Tool calls to make: scripted ones, or the first offered tool (the default answer).
    let calls: Vec<(String, String, String)> = match &scripted {
        Some(Scripted::Calls(calls)) => calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| (format!("call_{}", i + 1), name.clone(), args.to_string()))
            .collect(),
        Some(Scripted::Text(_)) => Vec::new(),
        None => tool.iter().map(|name| ("call_1".to_owned(), name.clone(), "{\"city\":\"Oslo\"}".to_owned())).collect(),
    };
    let words: Vec<String> = match &scripted {
        Some(Scripted::Text(t)) => vec![t.clone()],
        _ => shared.reply.lock().clone().unwrap_or_else(|| WORDS.iter().map(|w| (*w).to_owned()).collect()),
    };
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": words.len(), "total_tokens": PROMPT_TOKENS + words.len() as u64});
    if !stream {
        let message = if calls.is_empty() {
            json!({"role": "assistant", "content": words.concat()})
        } else {
            let tool_calls: Vec<Value> = calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            json!({"role": "assistant", "content": null, "tool_calls": tool_calls})
        };
        let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
        return Json(json!({
            "id": "chatcmpl-standin", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
            "usage": usage, "system_fingerprint": "fp_standin"
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]});
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    match calls.is_empty() {
        false => {
            // Each call: its id and name first, then its arguments in two pieces.
            for (i, (id, name, args)) in calls.iter().enumerate() {
                let head =
                    json!({"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
                events.push(chunk(json!({"tool_calls": [head]}), Value::Null));
                let mid = args.char_indices().nth(args.chars().count() / 2).map_or(args.len(), |(at, _)| at);
                for part in [&args[..mid], &args[mid..]] {
                    events.push(chunk(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                        Value::Null,
                    ));
                }
            }
            events.push(chunk(json!({}), json!("tool_calls")));
        }
        true => {
            let every = shared.usage_every_chunk.load(Ordering::SeqCst);
            events.extend(words.iter().enumerate().map(|(i, w)| {
                let c = chunk(json!({"content": w}), Value::Null);
                if !every {
                    return c;
                }
                let so_far = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 10 * (i + 1)});
                let mut v: Value = serde_json::from_str(c.trim().trim_start_matches("data: ")).unwrap_or_default();
                v["usage"] = so_far;
                format!("data: {v}\n\n")
            }));
            events.push(chunk(json!({}), json!("stop")));
        }
    }
    if body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true) {
        let u = json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage});
        events.push(format!("data: {u}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());
    sse_body(events, fault, shared)
}

async fn openai_embeddings(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let fault = next_fault(&shared, &headers, &body);
    if let Some(resp) = apply(&fault, &shared).await {
        return resp;
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect(),
        _ => vec![],
    };
    let default_dims = match shared.embed_dims.load(Ordering::SeqCst) {
        0 => 4,
        n => n,
    };
    let dims = body["dimensions"].as_u64().map_or(default_dims, |d| d as usize);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v: Vec<f32> = (0..dims).map(|d| ((s.len() + d) as f32) / 10.0).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|s| s.split_whitespace().count().max(1)).sum();
    Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
        .into_response()
}

async fn anthropic_messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let fault = next_fault(&shared, &headers, &body);
    if let Some(resp) = apply(&fault, &shared).await {
        return resp;
    }
    let model = body["model"].as_str().unwrap_or("claude-standin").to_owned();
    let tool = tool_name(&body);
    let out_tokens = WORDS.len();
    if !body["stream"].as_bool().unwrap_or(false) {
        let content = match &tool {
            Some(name) => {
                json!([{"type": "tool_use", "id": "toolu_1", "name": name, "input": {"city": "Oslo"}}])
            }
            None => json!([{"type": "text", "text": WORDS.concat()}]),
        };
        let stop = if tool.is_some() { "tool_use" } else { "end_turn" };
        return Json(
            json!({"id": "msg_standin", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": out_tokens}}),
        )
        .into_response();
    }
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_standin", "model": model, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    match &tool {
        Some(name) => {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}})));
            events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})));
            events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}})));
        }
        None => {
            events.push(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            for w in WORDS {
                events.push(ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
                ));
            }
        }
    }
    events.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    let stop = if tool.is_some() { "tool_use" } else { "end_turn" };
    events.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": out_tokens}}),
    ));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    sse_body(events, fault, shared)
}
