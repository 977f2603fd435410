//! `GET /v1/usage`.

use axum::extract::{Query, State};
use axum::Json;
use cairn_core::openai::ErrorBody;
use cairn_gateway::{UsageReport, UsageRequest};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Usage by day, model and key for the caller's tenant (admins: `tenant=` any, or all).
#[utoipa::path(
    get, path = "/v1/usage", tag = "accounting",
    params(UsageRequest),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn usage(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<UsageRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(Json(s.gateway.usage(&p, q).await?))
}
