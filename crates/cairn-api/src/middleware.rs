//! Cross-cutting request handling: a request id for every request (echoed in `x-request-id`
//! and attached to every log line), its trace's root span (continuing an incoming W3C
//! `traceparent`), per-route metrics, an access log line, and the deadline for producing a
//! response (streams only need to start within it).

use std::time::Instant;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::trace::{attrs, ActiveSpan, SpanKind, TraceContext};
use cairn_core::Error;
use futures::StreamExt;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// The id of the current request, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The request's place in its trace, and who turned out to be calling (filled in by the
/// `Auth` extractor): the root span is stored under the caller's tenant, or not at all for
/// requests nobody authenticated.
#[derive(Clone, Debug)]
pub struct RequestTrace {
    /// Work for this request runs under its root span.
    pub at: TraceContext,
    caller: Arc<Mutex<Option<(String, String)>>>,
}

impl RequestTrace {
    /// Notes the authenticated caller (tenant and key).
    pub fn identify(&self, tenant_id: &str, key_id: &str) {
        if let Ok(mut c) = self.caller.lock() {
            *c = Some((tenant_id.to_owned(), key_id.to_owned()));
        }
    }

    fn caller(&self) -> Option<(String, String)> {
        self.caller.lock().ok().and_then(|c| c.clone())
    }
}

/// Longest session id kept from `x-session-id`.
const MAX_SESSION_ID: usize = 256;

/// A bounded metric label for `m`: the standard methods by name, anything invented as `other`
/// (each made-up method would otherwise become a new time series).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Assigns the request id, times the request, records metrics and logs it.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::now_v7().simple());
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method()).to_owned();
    let timeout = state.request_timeout;
    req.extensions_mut().insert(RequestId(id.clone()));
    let incoming =
        req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceContext::from_traceparent);
    let tracer = state.traces.tracer();
    let mut root =
        tracer.start(&incoming.unwrap_or_else(TraceContext::fresh), "", format!("{method} {route}"), SpanKind::Server);
    let trace = RequestTrace { at: root.context(), caller: Arc::default() };
    if root.recording() {
        root.set(attrs::HTTP_METHOD, method.clone());
        root.set(attrs::HTTP_ROUTE, route.clone());
        root.set(attrs::REQUEST_ID, id.clone());
        let session = req.headers().get("x-session-id").and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(session) = session.filter(|s| !s.is_empty() && s.len() <= MAX_SESSION_ID) {
            root.set(attrs::SESSION, session.to_owned());
        }
    }
    req.extensions_mut().insert(trace.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let start = Instant::now();
    let mut resp = match tokio::time::timeout(timeout, next.run(req).instrument(span.clone())).await {
        Ok(resp) => resp,
        Err(_) => {
            ApiError(Error::Upstream { message: format!("no response within {}s", timeout.as_secs()), timeout: true })
                .into_response()
        }
    };
    let elapsed = start.elapsed();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&trace.at.trace_id.to_string()) {
        resp.headers_mut().insert("x-cairn-trace-id", v);
    }
    let status = resp.status().as_u16();
    match trace.caller() {
        Some((tenant, key)) if root.recording() => {
            root.set_tenant(tenant);
            root.set(attrs::KEY_ID, key);
            root.set(attrs::HTTP_STATUS, i64::from(status));
            if status >= 500 {
                root.set(attrs::ERROR_TYPE, status.to_string());
                root.fail(format!("answered {status}"));
            } else {
                root.ok();
            }
            resp = end_with_body(resp, root);
        }
        _ => root.discard(),
    }
    let m = &state.metrics;
    m.http_requests
        .get_or_create(&vec![("route", route.clone()), ("method", method.clone()), ("status", status.to_string())])
        .inc();
    m.http_duration.get_or_create(&vec![("route", route)]).observe(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request"));
    resp
}

/// A streamed response's root span ends when its body does (the client has read the last
/// event, or went away); other responses' spans end now.
fn end_with_body(resp: Response, span: ActiveSpan) -> Response {
    let streamed = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _open = &span;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}
