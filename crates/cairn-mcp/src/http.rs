//! The Streamable HTTP transport: each message is POSTed to the server's endpoint; a request
//! is answered with one JSON message or a short SSE stream that carries the response (and
//! perhaps notifications first). The session id the server gives at `initialize` goes back
//! on every later message. Redirects are not followed: the endpoint was checked against the
//! tenant's allow-list and a redirect could leave it.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::protocol::answers;
use crate::{McpError, Transport, MAX_MESSAGE_BYTES};

/// Header carrying the session id.
const SESSION: &str = "mcp-session-id";
/// Header carrying the agreed protocol version.
const VERSION: &str = "mcp-protocol-version";
/// Most bytes one request's answer may stream (notifications before the response included).
const MAX_ANSWER_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// A server at an HTTP endpoint.
pub struct Http {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
}

impl Http {
    /// A transport to `url`, sending `headers` (credentials, say) with every message.
    pub fn new(url: Url, headers: HeaderMap) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { client, url, headers, session: Mutex::new(None), version: Mutex::new(None) }
    }

    async fn post(&self, message: &Value) -> Result<reqwest::Response, McpError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_string());
        if let Some(session) = self.session.lock().clone() {
            req = req.header(SESSION, session);
        }
        if let Some(version) = self.version.lock().clone() {
            req = req.header(VERSION, version);
        }
        let resp = req.send().await.map_err(|e| McpError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && self.session.lock().is_some() {
            return Err(McpError::SessionEnded);
        }
        if !status.is_success() {
            return Err(McpError::Unreachable(format!("HTTP {}", status.as_u16())));
        }
        if let Some(session) = resp.headers().get(SESSION).and_then(|v| v.to_str().ok()) {
            if session.len() <= 256 {
                *self.session.lock() = Some(session.to_owned());
            }
        }
        Ok(resp)
    }
}

/// Reads `resp`'s body whole, refusing more than `max` bytes.
async fn body(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, McpError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| McpError::Unreachable(e.without_url().to_string()))?;
        if out.len() + chunk.len() > max {
            return Err(McpError::Protocol(format!("an answer over {max} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The message in a JSON body (or batch) that answers `id`.
fn pick(body: &[u8], id: u64) -> Result<Value, McpError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| McpError::Protocol(format!("bad JSON: {e}")))?;
    let found = match value {
        Value::Array(items) => items.into_iter().find(|m| answers(m, id)),
        one => Some(one).filter(|m| answers(m, id)),
    };
    found.ok_or_else(|| McpError::Protocol("the answer does not respond to the request".into()))
}

/// Reads an SSE stream until an event's data is the response to `id`; a request the server
/// sends on the way (a `ping`, say) is answered, since the server may wait for it.
async fn from_events(http: &Http, resp: reqwest::Response, id: u64) -> Result<Value, McpError> {
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    // No blank line starts before this offset of `buf`: each chunk is searched from there, so
    // an event sent in many small pieces costs its length, not its length squared.
    let mut clean = 0usize;
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| McpError::Unreachable(e.without_url().to_string()))?;
        total += chunk.len();
        if total > MAX_ANSWER_BYTES {
            return Err(McpError::Protocol(format!("an event stream over {MAX_ANSWER_BYTES} bytes")));
        }
        buf.extend_from_slice(&chunk);
        // Events end at a blank line (LF or CRLF line ends).
        while let Some((end, skip)) = event_end(&buf, clean) {
            clean = 0;
            let event: Vec<u8> = buf.drain(..end + skip).take(end).collect();
            let text = String::from_utf8_lossy(&event);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d)))
                .collect();
            if data.is_empty() {
                continue;
            }
            if let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) {
                if answers(&message, id) {
                    return Ok(message);
                }
                if let (Some(asked), Some(method)) = (message.get("id"), message.get("method")) {
                    http.post(&reply(asked, method)).await?;
                }
            }
        }
        // A separator is at most 4 bytes: one may yet end in the next chunk.
        clean = buf.len().saturating_sub(3);
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(McpError::Protocol(format!("an event over {MAX_MESSAGE_BYTES} bytes")));
        }
    }
    Err(McpError::Unreachable("the event stream ended before the response".into()))
}

/// The client's answer to a server's request: `ping` is answered, anything else is not a
/// method this client has (it offers no sampling, roots or elicitation).
fn reply(id: &Value, method: &Value) -> Value {
    if method == "ping" {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})
    }
}

/// Where the first event in `buf` that ends at or after `from` ends, and the length of the
/// blank line after it.
fn event_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = buf.get(from..)?;
    let lf = rest.windows(2).position(|w| w == b"\n\n").map(|at| (from + at, 2));
    let crlf = rest.windows(4).position(|w| w == b"\r\n\r\n").map(|at| (from + at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A closed connection ends its session on the server (a DELETE with the session id), so the
/// server can free what it holds for it; best effort, in the background.
impl Drop for Http {
    fn drop(&mut self) {
        let (Some(session), Ok(runtime)) = (self.session.lock().take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let req = self.client.delete(self.url.clone()).headers(self.headers.clone()).header(SESSION, session);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), req.send()).await;
        });
    }
}

#[async_trait]
impl Transport for Http {
    async fn request(&self, id: u64, message: Value) -> Result<Value, McpError> {
        let resp = self.post(&message).await?;
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            from_events(self, resp, id).await
        } else {
            pick(&body(resp, MAX_MESSAGE_BYTES).await?, id)
        }
    }

    async fn notify(&self, message: Value) -> Result<(), McpError> {
        self.post(&message).await.map(drop)
    }

    fn set_protocol_version(&self, version: &str) {
        *self.version.lock() = Some(version.to_owned());
    }

    fn is_closed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines() {
        assert_eq!(event_end(b"data: x\n\nrest", 0), Some((7, 2)));
        assert_eq!(event_end(b"data: x\r\n\r\n", 0), Some((7, 4)));
        assert_eq!(event_end(b"data: x\n", 0), None);
        // Searching on from the last chunk's end, less 3 bytes, still finds a separator split
        // across the two chunks.
        assert_eq!(event_end(b"data: x\r\n\r\n", b"data: x\r\n\r".len() - 3), Some((7, 4)));
        assert_eq!(event_end(b"data: x\n\n", b"data: x\n".len() - 3), Some((7, 2)));
    }

    #[test]
    fn json_answers_are_picked_by_id() {
        let batch = br#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":7,"result":{}}]"#;
        assert!(pick(batch, 7).is_ok());
        assert!(pick(br#"{"jsonrpc":"2.0","id":8,"result":{}}"#, 7).is_err());
    }
}
