//! The one place where service errors become HTTP responses: status code, OpenAI error body,
//! and `retry-after` where it applies. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::openai::{ErrorBody, ErrorDetail};
use cairn_core::Error;

/// A service error on its way out as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// An error response with an explicit status (extractor rejections: 413, 415, ...).
pub(crate) fn error_response(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<String>,
    message: String,
) -> Response {
    let body = ErrorBody { error: ErrorDetail { message, kind: kind.into(), param, code: code.map(str::to_owned) } };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let mut retry_after = None;
        let (status, kind, code, param) = match &self.0 {
            Error::InvalidRequest { param, .. } => (S::BAD_REQUEST, "invalid_request_error", None, param.clone()),
            Error::Unauthenticated(_) => (S::UNAUTHORIZED, "authentication_error", Some("invalid_api_key"), None),
            Error::Forbidden(_) => (S::FORBIDDEN, "permission_error", Some("insufficient_permissions"), None),
            Error::ModelNotFound(_) => {
                (S::NOT_FOUND, "invalid_request_error", Some("model_not_found"), Some("model".into()))
            }
            Error::NotFound(_) => (S::NOT_FOUND, "invalid_request_error", Some("not_found"), None),
            Error::Conflict(_) => (S::CONFLICT, "invalid_request_error", Some("conflict"), None),
            Error::GuardBlocked { guard, param, .. } => {
                let status = if guard.on_output() { S::UNPROCESSABLE_ENTITY } else { S::BAD_REQUEST };
                (status, "guard_error", Some(guard.error_code()), param.clone())
            }
            Error::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("too_large"), None),
            Error::RateLimited { retry_after: ra, .. } => {
                retry_after = Some(*ra);
                (S::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded"), None)
            }
            Error::BudgetExceeded { retry_after: ra, .. } => {
                retry_after = Some(*ra);
                (S::TOO_MANY_REQUESTS, "insufficient_quota", Some("budget_exceeded"), None)
            }
            Error::Upstream { timeout: true, .. } => {
                (S::GATEWAY_TIMEOUT, "upstream_error", Some("upstream_timeout"), None)
            }
            Error::Upstream { .. } => (S::BAD_GATEWAY, "upstream_error", Some("upstream_failed"), None),
            Error::UpstreamRejected { status, .. } => (
                S::from_u16(*status).ok().filter(StatusCode::is_client_error).unwrap_or(S::BAD_REQUEST),
                "invalid_request_error",
                Some("upstream_rejected"),
                None,
            ),
            Error::Unavailable { retry_after: ra, .. } => {
                retry_after = *ra;
                (S::SERVICE_UNAVAILABLE, "service_unavailable", Some("unavailable"), None)
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                return error_response(
                    S::INTERNAL_SERVER_ERROR,
                    "server_error",
                    None,
                    None,
                    "internal server error".into(),
                );
            }
        };
        let mut resp = error_response(status, kind, code, param, self.0.to_string());
        if let Some(ra) = retry_after {
            let secs = ra.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
