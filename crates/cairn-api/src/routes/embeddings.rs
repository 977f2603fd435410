//! `POST /v1/embeddings`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cairn_core::openai::{EmbeddingRequest, EmbeddingResponse, ErrorBody};

use super::with_routed;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;

/// Creates embeddings (OpenAI-compatible; `encoding_format` float or base64).
#[utoipa::path(
    post, path = "/v1/embeddings", tag = "gateway",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "One embedding per input, in order", body = EmbeddingResponse),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked key", body = ErrorBody),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 429, description = "Rate limit or budget exhausted", body = ErrorBody),
        (status = 502, description = "Every upstream target failed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn embeddings(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Json(req): Json<EmbeddingRequest>,
) -> Result<Response, ApiError> {
    let (resp, routed) = s.gateway.embeddings(&ctx, req).await?;
    Ok(with_routed(axum::Json(resp).into_response(), &routed))
}
