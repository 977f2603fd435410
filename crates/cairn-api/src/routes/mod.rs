//! Route handlers, one module per API area.

pub mod admin;
pub mod answer;
pub mod chat;
pub mod embeddings;
pub mod jobs;
pub mod knowledge;
pub mod models;
pub mod ops;
pub mod usage;

use axum::http::HeaderValue;
use axum::response::Response;
use cairn_gateway::Routed;

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
    resp
}

/// `with_routed` when a target served the call; Cairn's own replies carry no routing headers.
pub(crate) fn routed_opt(resp: Response, routed: Option<Routed>) -> Response {
    match routed {
        Some(r) => with_routed(resp, &r),
        None => resp,
    }
}
