//! The `Auth` extractor: resolves `Authorization: Bearer <key>` to the caller's principal.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cairn_core::tenancy::Principal;
use cairn_core::Error;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| Error::Unauthenticated("missing API key: send 'Authorization: Bearer <key>'".into()))?;
        let value = header.to_str().map_err(|_| Error::Unauthenticated("malformed Authorization header".into()))?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| Error::Unauthenticated("the Authorization header must be 'Bearer <key>'".into()))?;
        Ok(Auth(state.access.authenticate(secret).await?))
    }
}
