//! Route handlers, one module per API area.

pub mod admin;
pub mod agents;
pub mod answer;
pub mod audit;
pub mod cache;
pub mod chat;
pub mod embeddings;
pub mod feedback;
pub mod jobs;
pub mod knowledge;
pub mod mcp;
pub mod models;
pub mod ops;
pub mod runs;
pub mod threads;
pub mod traces;
pub mod usage;
pub mod webhooks;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use cairn_core::openai::{ErrorBody, ErrorDetail};
use cairn_gateway::Routed;
use futures::{Stream, StreamExt};

/// A query string, or a 400 in the usual error body when it does not read.
pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, cairn_core::Error> {
    q.map(|axum::extract::Query(v)| v).map_err(|e| cairn_core::Error::invalid(e.body_text()))
}

/// Adds `x-cairn-*` headers saying which target served the call and how routing went.
pub(crate) fn with_routed(mut resp: Response, routed: &Routed) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-cairn-provider", routed.provider.clone()),
        ("x-cairn-upstream-model", routed.model.clone()),
        ("x-cairn-retries", routed.retries.to_string()),
        ("x-cairn-fallbacks", routed.fallbacks.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Some(cache) = routed.cache {
        h.insert("x-cairn-cache", HeaderValue::from_static(cache.as_str()));
    }
    if let Some(Ok(v)) = routed.cache_similarity.map(|s| HeaderValue::from_str(&format!("{s:.4}"))) {
        h.insert("x-cairn-cache-similarity", v);
    }
    if let Some(Ok(v)) = routed.route.as_ref().map(|d| HeaderValue::from_str(&d.header())) {
        h.insert("x-cairn-route", v);
    }
    if let Ok(v) = HeaderValue::from_str(&routed.guards.header()) {
        if !v.is_empty() {
            h.insert("x-cairn-guards", v);
        }
    }
    resp
}

/// `with_routed` when a target served the call; Cairn's own replies carry no routing headers.
pub(crate) fn routed_opt(resp: Response, routed: Option<Routed>) -> Response {
    match routed {
        Some(r) => with_routed(resp, &r),
        None => resp,
    }
}

/// A `text/event-stream` response of already-encoded events, unbuffered by proxies.
pub(crate) fn event_stream(events: impl Stream<Item = String> + Send + 'static) -> Response {
    let body = events.map(|e| Ok::<_, Infallible>(Bytes::from(e)));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The in-band error event of a stream a guard stopped.
pub(crate) fn refused(guard: cairn_core::guard::GuardKind, message: String) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail { message, kind: "guard_error".into(), param: None, code: Some(guard.error_code().into()) },
    }
}

/// The in-band error event of a stream that broke after it started.
pub(crate) fn interrupted(message: String) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            message,
            kind: "upstream_error".into(),
            param: None,
            code: Some("stream_interrupted".into()),
        },
    }
}
