//! `DELETE /v1/cache`, and reading what a request asks of the response cache.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use cairn_core::cache::CacheControl;
use cairn_core::openai::ErrorBody;
use cairn_gateway::{CachePurgeRequest, CachePurged};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Removes cached responses of the caller's tenant: all, or one namespace's (`namespace=`,
/// empty for the default one) or one model's. Admin keys; owners may name any `tenant`.
#[utoipa::path(
    delete, path = "/v1/cache", tag = "gateway",
    params(CachePurgeRequest),
    responses(
        (status = 200, description = "Entries removed", body = CachePurged),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin of that tenant", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn purge(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<CachePurgeRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CachePurged>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(Json(s.gateway.purge_cache(&p, q).await?))
}

/// What the request's `Cache-Control` headers ask of the response cache (several headers
/// read as one list, as HTTP says).
pub(crate) fn requested(headers: &HeaderMap) -> Result<CacheControl, ApiError> {
    let mut directives = Vec::new();
    for value in headers.get_all(axum::http::header::CACHE_CONTROL) {
        let value = value
            .to_str()
            .map_err(|_| cairn_core::Error::invalid_param("Cache-Control", "the header is not visible ASCII"))?;
        directives.push(value);
    }
    Ok(CacheControl::from_header(&directives.join(","))?)
}
