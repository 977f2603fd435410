//! `GET /v1/audit` and `GET /v1/audit/export`.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_access::audit::{AuditPage, AuditRequest, MAX_AUDIT_PAGE};
use cairn_core::openai::ErrorBody;
use futures::StreamExt;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;

/// A page of the audit log, in chain order: key, tenant and role changes, deletions, job
/// replays and purges, cache purges. Admins read their tenant's; owners any tenant's or all.
#[utoipa::path(
    get, path = "/v1/audit", tag = "accounting",
    params(AuditRequest),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<AuditRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(Json(s.access.audit(&p, q).await?))
}

/// Every matching entry as JSON lines (`application/x-ndjson`), in chain order, streamed page
/// by page from `after` (the same filters as `GET /v1/audit`; `limit` sets the page size).
#[utoipa::path(
    get, path = "/v1/audit/export", tag = "accounting",
    params(AuditRequest),
    responses(
        (status = 200, description = "One AuditEntry per line", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn export(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<AuditRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let mut q = crate::routes::query(query)?;
    q.limit = Some(q.limit.unwrap_or(MAX_AUDIT_PAGE));
    // The first page is read here, so a refused request is an error response, not a stream.
    let first = s.access.audit(&p, q.clone()).await?;
    let pages = futures::stream::unfold(Some(first), move |page| {
        let (s, p, q) = (s.clone(), p.clone(), q.clone());
        async move {
            let page = page?;
            let mut lines = String::new();
            for e in &page.data {
                lines.push_str(&serde_json::to_string(e).unwrap_or_default());
                lines.push('\n');
            }
            let next = match page.next_after {
                Some(after) => {
                    match s.access.audit(&p, cairn_access::audit::AuditRequest { after: Some(after), ..q }).await {
                        Ok(next) => Some(next),
                        Err(e) => {
                            tracing::error!(error = %e, "audit export stopped early");
                            None
                        }
                    }
                }
                None => None,
            };
            Some((lines, next))
        }
    });
    let body = axum::body::Body::from_stream(pages.map(Ok::<_, std::convert::Infallible>));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
