//! Operations endpoints: liveness and readiness (no auth), and Prometheus metrics (an owner key
//! or the scrape token unless `server.public_metrics`); none under `/v1`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: storage answers (and Redis, when rate limits live there); the body says what this node depends on and where its
/// shared state lives (`node`).
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: `{\"status\": \"ready\", \"node\": {...}}`", body = Object),
        (status = 503, description = "Storage or the rate limits' Redis unreachable: `reason` says which", body = Object)
    )
)]
pub async fn readyz(State(s): State<AppState>) -> Response {
    match s.gateway.ready().await {
        Ok(()) => Json(json!({ "status": "ready", "node": s.topology })).into_response(),
        Err((dependency, e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            let body = json!({ "status": "unavailable", "reason": dependency.unreachable(), "node": s.topology });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// Prometheus metrics in text exposition format. They show every tenant's spend, so they need
/// an owner key or the scrape token (`CAIRN_METRICS_TOKEN`) unless `server.public_metrics`.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)),
    security(("bearer" = []))
)]
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    s.metrics_gate.admit(&s.access, bearer(&headers)?).await?;
    Ok(render(&s.metrics))
}

/// The metrics response: every family in OpenMetrics text.
pub(crate) fn render(metrics: &cairn_telemetry::Metrics) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
        .into_response()
}
