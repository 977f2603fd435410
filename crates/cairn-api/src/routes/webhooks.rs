//! `/v1/webhooks/secret`: the key a tenant's webhook receivers verify signatures with. Tenant
//! admins read and rotate their own tenant's; owners any tenant's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json as JsonOut;
use cairn_core::openai::ErrorBody;
use cairn_jobs::{SecretQuery, WebhookSecret};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::routes::query;
use crate::state::AppState;

/// The tenant's webhook signing secret (created on first use).
#[utoipa::path(
    get, path = "/v1/webhooks/secret", tag = "jobs", params(SecretQuery),
    responses(
        (status = 200, body = WebhookSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<SecretQuery>, QueryRejection>,
) -> Result<JsonOut<WebhookSecret>, ApiError> {
    Ok(JsonOut(s.jobs.webhook_secret(&p, query(q)?).await?))
}

/// Replaces the tenant's webhook signing secret; deliveries are signed with the new one at once.
#[utoipa::path(
    post, path = "/v1/webhooks/secret", tag = "jobs", params(SecretQuery),
    responses(
        (status = 200, body = WebhookSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<SecretQuery>, QueryRejection>,
) -> Result<JsonOut<WebhookSecret>, ApiError> {
    Ok(JsonOut(s.jobs.rotate_webhook_secret(&p, query(q)?).await?))
}
