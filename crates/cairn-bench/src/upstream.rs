//! A deliberately cheap upstream: canned OpenAI answers (JSON, or a short SSE stream) without
//! parsing the request, so the benchmark measures Cairn, not the stand-in.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream."},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#;

fn stream_body() -> String {
    let mut out = String::new();
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish},"logprobs":null}}]}}"#
        ) + "\n\n"
    };
    out += &chunk(r#"{"role":"assistant","content":""}"#, "null");
    for w in ["Hello", " from", " the", " benchmark", " upstream", "."] {
        out += &chunk(&format!(r#"{{"content":"{w}"}}"#), "null");
    }
    out += &chunk("{}", "\"stop\"");
    out += r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#;
    out += "\n\ndata: [DONE]\n\n";
    out
}

async fn chat(body: Bytes) -> Response {
    const NEEDLE: &[u8] = b"\"stream\":true";
    let streaming = body.windows(NEEDLE.len()).any(|w| w == NEEDLE);
    let (ctype, payload) = if streaming {
        ("text/event-stream", Body::from(stream_body()))
    } else {
        ("application/json", Body::from(COMPLETION))
    };
    Response::builder().header("content-type", ctype).body(payload).unwrap_or_default()
}

/// Starts the upstream on a free loopback port, on a thread and runtime of its own: a remote
/// provider answers whatever the load generator is doing, so it must not wait for the
/// generator's runtime (which would bill the generator's own scheduling to the path through
/// Cairn, whose call to the upstream comes from another process).
pub async fn start() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("bench-upstream".into()).spawn(move || {
        runtime.block_on(async move {
            let app = Router::new().route("/v1/chat/completions", post(chat));
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    let _ = axum::serve(listener, app).await;
                }
                Err(e) => eprintln!("bench upstream: {e}"),
            }
        })
    })?;
    Ok(addr)
}
