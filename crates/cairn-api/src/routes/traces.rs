//! `/v1/traces`: every request's trace, listed with filters and read as a span tree. The trace
//! service checks roles and tenants; these handlers only translate HTTP.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use cairn_core::openai::ErrorBody;
use cairn_telemetry::stats::{Stats, StatsRequest};
use cairn_telemetry::traces::{TraceDetail, TraceList, TraceListRequest};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Traces of the caller's tenant (instance owners: any tenant's, or all), newest first.
#[utoipa::path(
    get, path = "/v1/traces", tag = "observability",
    params(TraceListRequest),
    responses((status = 200, body = TraceList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<TraceListRequest>, QueryRejection>,
) -> Result<Json<TraceList>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(Json(s.traces.list(&p, q).await?))
}

/// The overview's aggregates: totals, a series per hour or day, and breakdowns by model and
/// key, with latency and time-to-first-token percentiles.
#[utoipa::path(
    get, path = "/v1/traces/stats", tag = "observability",
    params(StatsRequest),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn stats(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<StatsRequest>, QueryRejection>,
) -> Result<Json<Stats>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(Json(s.traces.stats(&p, q).await?))
}

/// One trace: its summary and its spans as a tree.
#[utoipa::path(
    get, path = "/v1/traces/{id}", tag = "observability",
    params(("id" = String, Path, description = "Trace id (32 hex digits)")),
    responses((status = 200, body = TraceDetail), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<TraceDetail>, ApiError> {
    Ok(Json(s.traces.get(&p, &id).await?))
}
