//! HTTP plumbing shared by providers: the client (auth and extra headers preset), and the
//! mapping of transport failures and error statuses to `ProviderError`.

use std::time::Duration;

use cairn_core::body::{read_capped, Capped};
use cairn_core::config::{ProviderConfig, ProviderKind};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::ProviderError;

tokio::task_local! {
    /// The W3C `traceparent` of the attempt being made, sent with every upstream request the
    /// attempt makes (set by the router around each attempt).
    pub(crate) static TRACEPARENT: String;
}

/// A client for one provider: its key (read from the environment now, never logged) and its
/// extra headers are default headers; the connect timeout is the target's.
pub(crate) fn client(name: &str, cfg: &ProviderConfig, connect_timeout: Duration) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    if let Some(var) = &cfg.api_key_env {
        if let Ok(key) = std::env::var(var) {
            let (header, value) = match cfg.kind {
                ProviderKind::Openai | ProviderKind::Local => ("authorization", format!("Bearer {key}")),
                ProviderKind::Anthropic => ("x-api-key", key),
            };
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| format!("provider {name}: {var} holds characters not allowed in a header"))?;
            v.set_sensitive(true);
            headers.insert(header, v);
        }
    }
    for (k, v) in &cfg.headers {
        let name_ok =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("provider {name}: bad header name '{k}'"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("provider {name}: bad value for header '{k}'"))?;
        headers.insert(name_ok, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("provider {name}: {e}"))
}

/// Maps a transport error. The client's copy names no URL (provider hosts are often internal);
/// the full text, URL included, goes to the log.
pub(crate) fn transport(e: reqwest::Error) -> ProviderError {
    tracing::warn!(error = %e, "upstream request failed");
    let (connect, timeout, decode) = (e.is_connect(), e.is_timeout(), e.is_decode());
    let message = without_url(e);
    if connect {
        ProviderError::Connect(message)
    } else if timeout {
        ProviderError::Timeout("connect")
    } else if decode {
        ProviderError::Protocol(message)
    } else {
        ProviderError::Connect(message)
    }
}

/// The error and its causes, without the request's URL.
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Sends `req` and returns the response if its status is 2xx; otherwise reads the error body
/// into a `Status` error, keeping `retry-after` (seconds, or `retry-after-ms`).
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    // The router runs each attempt inside its span's scope: the upstream sees it as the parent.
    let req = match TRACEPARENT.try_with(Clone::clone) {
        Ok(tp) => req.header("traceparent", tp),
        Err(_) => req,
    };
    let resp = req.send().await.map_err(transport)?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let retry_after = header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
        .or_else(|| {
            header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.max(0.0)))
        });
    // Only the message is kept: an error body is read no further than that could need.
    let body = capped(resp, MAX_ERROR_BODY_BYTES).await.map(Capped::into_bytes).unwrap_or_default();
    let body = String::from_utf8_lossy(&body);
    Err(ProviderError::Status { status, message: error_message(&body), retry_after })
}

/// Largest answer body read from an upstream (2,048 embeddings of 3,072 floats as JSON text are
/// about 130 MB), so a broken upstream that never stops sending cannot exhaust memory.
const MAX_BODY_BYTES: usize = 256 << 20;
/// Largest part of an error body read (its message is all that is kept).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Reads `resp`'s body up to `limit` bytes (see `cairn_core::body`).
async fn capped(resp: reqwest::Response, limit: usize) -> Result<Capped, ProviderError> {
    read_capped(resp.bytes_stream(), limit).await.map_err(transport)
}

/// Pulls the human message out of an OpenAI or Anthropic error body, or a short raw excerpt.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// Parses a JSON body (at most `MAX_BODY_BYTES`), mapping failures to `Protocol`.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, ProviderError> {
    let bytes = match capped(resp, MAX_BODY_BYTES).await? {
        Capped::Whole(b) => b,
        Capped::Cut(_) => return Err(ProviderError::Protocol(format!("an answer over {MAX_BODY_BYTES} bytes"))),
    };
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::Protocol(format!("invalid JSON: {e}")))
}
