//! `GET /v1/models`.

use axum::extract::State;
use axum::Json;
use cairn_core::openai::{ErrorBody, ModelList};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Lists the model names configured in Cairn.
#[utoipa::path(
    get, path = "/v1/models", tag = "gateway",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_models(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<ModelList>, ApiError> {
    Ok(Json(s.gateway.models(&p)?))
}
