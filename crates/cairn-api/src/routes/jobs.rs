//! `/v1/jobs`: enqueue, list, inspect, watch (SSE), cancel, replay and purge durable jobs.
//! The job service checks roles and tenants; these handlers only translate HTTP.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use cairn_core::jobs::Job;
use cairn_core::openai::ErrorBody;
use cairn_jobs::{
    BulkResult, EnqueueRequest, JobDetail, JobPage, JobType, ListRequest, PurgeRequest, RetryDeadRequest,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Auth, Work};
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::admin::List;
use crate::state::AppState;

/// Body of `POST /v1/jobs/batch`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBatch {
    /// Up to 1000 jobs, accepted all together or not at all.
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<EnqueueRequest>,
}

/// One enqueued job of a batch.
#[derive(Serialize, ToSchema)]
pub struct Enqueued {
    /// The job (an existing one when its idempotency key was seen before).
    #[serde(flatten)]
    pub job: Job,
    /// False when the idempotency key returned an existing job.
    pub created: bool,
}

/// Enqueues a job. 201 when created; 200 with the first job when its idempotency key was
/// used before.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs", request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Enqueued", body = Job),
        (status = 200, description = "The job enqueued earlier with this idempotency key", body = Job),
        (status = 400, description = "Unknown type, invalid payload or option", body = ErrorBody),
        (status = 403, description = "Role does not allow enqueueing", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn enqueue(
    State(s): State<AppState>,
    Work(ctx): Work,
    Json(mut req): Json<EnqueueRequest>,
) -> Result<(StatusCode, JsonOut<Job>), ApiError> {
    req.trace = Some(ctx.trace);
    let (job, created) = s.jobs.enqueue(&ctx.principal, req).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, JsonOut(job)))
}

/// Enqueues up to 1000 jobs in one transaction: all or none.
#[utoipa::path(
    post, path = "/v1/jobs/batch", tag = "jobs", request_body = EnqueueBatch,
    responses(
        (status = 201, description = "Enqueued, in request order", body = List<Enqueued>),
        (status = 400, description = "A job is invalid (`param` says which); none was stored", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn enqueue_batch(
    State(s): State<AppState>,
    Work(ctx): Work,
    Json(req): Json<EnqueueBatch>,
) -> Result<(StatusCode, JsonOut<List<Enqueued>>), ApiError> {
    let jobs = req.jobs.into_iter().map(|j| EnqueueRequest { trace: Some(ctx.trace), ..j }).collect();
    let out = s.jobs.enqueue_batch(&ctx.principal, jobs).await?;
    let data = out.into_iter().map(|(job, created)| Enqueued { job, created }).collect();
    Ok((StatusCode::CREATED, JsonOut(List { object: "list", data })))
}

/// Lists jobs, newest first (the caller's tenant; admins: any or all).
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs", params(ListRequest),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<ListRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<JsonOut<JobPage>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(JsonOut(s.jobs.list(&p, q).await?))
}

/// The job types this server runs.
#[utoipa::path(
    get, path = "/v1/jobs/types", tag = "jobs",
    responses((status = 200, body = List<JobType>)),
    security(("bearer" = []))
)]
pub async fn types(State(s): State<AppState>, _auth: Auth) -> JsonOut<List<JobType>> {
    JsonOut(List { object: "list", data: s.jobs.types() })
}

/// A job with every attempt and its error.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<JobDetail>, ApiError> {
    Ok(JsonOut(s.jobs.get(&p, &id).await?))
}

/// Server-sent events: `event: job` with the job now, then again on every change of state or
/// progress; the stream ends after the job reaches a final state.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "text/event-stream of `job` events, each a Job", content_type = "text/event-stream", body = Job),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn events(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<Response, ApiError> {
    let slot = s.gateway.stream_slot(&p)?;
    let stream = s.jobs.watch(&p, &id).await?;
    let events = stream
        .map(move |job| {
            // The watcher holds its key's stream slot until the stream ends.
            let _held = &slot;
            Ok::<_, Infallible>(Event::default().event("job").json_data(&job).unwrap_or_default())
        })
        .take_until(s.streams_cut.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// Cancels a queued job, or asks a running one to stop; 409 for a final job.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<Job>, ApiError> {
    Ok(JsonOut(s.jobs.cancel(&p, &id).await?))
}

/// Replays a dead or cancelled job with a fresh set of attempts; 409 for any other state.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn retry(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<JsonOut<Job>, ApiError> {
    Ok(JsonOut(s.jobs.retry(&p, &id).await?))
}

/// Replays every dead job of the caller's tenant (admins: a named tenant, or all).
#[utoipa::path(
    post, path = "/v1/jobs/dead/retry", tag = "jobs", request_body = RetryDeadRequest,
    responses((status = 200, body = BulkResult), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn retry_dead(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<RetryDeadRequest>,
) -> Result<JsonOut<BulkResult>, ApiError> {
    Ok(JsonOut(s.jobs.retry_dead(&p, req).await?))
}

/// Deletes finished jobs older than the given age (admins).
#[utoipa::path(
    post, path = "/v1/jobs/purge", tag = "jobs", request_body = PurgeRequest,
    responses((status = 200, body = BulkResult), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn purge(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<PurgeRequest>,
) -> Result<JsonOut<BulkResult>, ApiError> {
    Ok(JsonOut(s.jobs.purge(&p, req).await?))
}
