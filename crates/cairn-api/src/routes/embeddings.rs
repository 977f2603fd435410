//! `POST /v1/embeddings`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cairn_core::cache::CacheControl;
use cairn_core::openai::{EmbeddingRequest, EmbeddingResponse, ErrorBody};

use super::with_routed;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;

/// The `cairn` field of an embeddings request.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingOptions {
    /// What this request asks of the response cache.
    cache: Option<CacheControl>,
}

/// Creates embeddings (OpenAI-compatible; `encoding_format` float or base64). Models with a
/// response cache answer repeated inputs from it (`x-cairn-cache`; `Cache-Control` and
/// `cairn.cache` control it).
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
    Caller(mut ctx): Caller,
    headers: HeaderMap,
    Json(mut req): Json<EmbeddingRequest>,
) -> Result<Response, ApiError> {
    let asked = match req.extra.remove("cairn") {
        Some(v) => serde_json::from_value::<EmbeddingOptions>(v)
            .map_err(|e| cairn_core::Error::invalid_param("cairn", e.to_string()))?
            .cache
            .unwrap_or_default(),
        None => CacheControl::default(),
    };
    asked.validate("cairn.cache")?;
    ctx.cache = asked.merge(super::cache::requested(&headers)?);
    let (resp, routed) = s.gateway.embeddings(&ctx, req).await?;
    Ok(with_routed(axum::Json(resp).into_response(), &routed))
}
