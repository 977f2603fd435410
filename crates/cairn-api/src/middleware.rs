//! Cross-cutting request handling: a request id for every request (echoed in `x-request-id`
//! and attached to every log line), per-route metrics, an access log line, and the deadline
//! for producing a response (streams only need to start within it).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::Error;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// The id of the current request, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

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
    let status = resp.status().as_u16();
    let m = &state.metrics;
    m.http_requests
        .get_or_create(&vec![("route", route.clone()), ("method", method.clone()), ("status", status.to_string())])
        .inc();
    m.http_duration.get_or_create(&vec![("route", route)]).observe(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request"));
    resp
}
