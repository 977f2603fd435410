//! The extractors that say who is calling: `Auth` resolves `Authorization: Bearer <key>` to
//! the caller's principal; `Caller` adds the request's id (a `CallContext` for the services);
//! `Work` also takes one request from the key's request rate, for routes that cost work.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cairn_core::tenancy::Principal;
use cairn_core::{CallContext, Error};

use crate::error::ApiError;
use crate::middleware::{RequestId, RequestTrace};
use crate::state::AppState;

/// The authenticated caller.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = bearer(&parts.headers)?
            .ok_or_else(|| Error::Unauthenticated("missing API key: send 'Authorization: Bearer <key>'".into()))?;
        let principal = state.access.authenticate(secret).await?;
        if let Some(trace) = parts.extensions.get::<RequestTrace>() {
            trace.identify(&principal.tenant_id, &principal.key_id);
        }
        Ok(Auth(principal))
    }
}

/// The bearer credential in `headers`: None when there is no `Authorization` header, an error
/// when there is one of another form.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<Option<&str>, Error> {
    let Some(header) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = header.to_str().map_err(|_| Error::Unauthenticated("malformed Authorization header".into()))?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| Error::Unauthenticated("the Authorization header must be 'Bearer <key>'".into()))?;
    Ok(Some(secret))
}

/// The authenticated caller with the request's id: what services take to make model calls.
pub struct Caller(pub CallContext);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        let mut ctx = CallContext::new(principal, request_id);
        if let Some(trace) = parts.extensions.get::<RequestTrace>() {
            ctx.trace = trace.at;
        }
        Ok(Caller(ctx))
    }
}

/// A caller of a route that costs work (search, uploads, answers, jobs): one request is taken
/// from its key's request rate here, and the model calls made for it take no second one.
pub struct Work(pub CallContext);

impl FromRequestParts<AppState> for Work {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Caller(mut ctx) = Caller::from_request_parts(parts, state).await?;
        state.gateway.admit_request(&mut ctx).await?;
        Ok(Work(ctx.within(state.request_timeout)))
    }
}
