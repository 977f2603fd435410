//! Feedback on traces, RAG answers and agent runs, and stored answer evaluations. The feedback
//! service checks roles, tenants and targets; these handlers only translate HTTP.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_core::openai::ErrorBody;
use cairn_core::trace::{EvalRun, Feedback, FeedbackTarget};
use cairn_telemetry::feedback::{FeedbackRequest, NewEval};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::query;
use crate::state::AppState;

/// A target's feedback, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FeedbackList {
    /// Always `list`.
    pub object: &'static str,
    /// The feedback.
    pub data: Vec<Feedback>,
}

/// Evaluations, newest first (without their items).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EvalList {
    /// Always `list`.
    pub object: &'static str,
    /// The evaluations.
    pub data: Vec<EvalRun>,
}

/// Query of `GET /v1/evals`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EvalQuery {
    /// Evaluations per page, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Tenant (instance owners only).
    pub tenant: Option<String>,
}

async fn give(
    s: AppState,
    p: cairn_core::tenancy::Principal,
    target: FeedbackTarget,
    id: String,
    req: FeedbackRequest,
) -> Result<(StatusCode, JsonOut<Feedback>), ApiError> {
    Ok((StatusCode::CREATED, JsonOut(s.feedback.give(&p, target, &id, req).await?)))
}

async fn list(
    s: AppState,
    p: cairn_core::tenancy::Principal,
    target: FeedbackTarget,
    id: String,
) -> Result<JsonOut<FeedbackList>, ApiError> {
    Ok(JsonOut(FeedbackList { object: "list", data: s.feedback.list(&p, target, &id).await? }))
}

/// Scores a trace (a member key of its tenant; 404 for another tenant's).
#[utoipa::path(
    post, path = "/v1/traces/{id}/feedback", tag = "observability", request_body = FeedbackRequest,
    params(("id" = String, Path, description = "Trace id (32 hex digits)")),
    responses((status = 201, body = Feedback), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn trace_give(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<FeedbackRequest>,
) -> Result<(StatusCode, JsonOut<Feedback>), ApiError> {
    give(s, p, FeedbackTarget::Trace, id, req).await
}

/// A trace's feedback.
#[utoipa::path(
    get, path = "/v1/traces/{id}/feedback", tag = "observability",
    params(("id" = String, Path, description = "Trace id (32 hex digits)")),
    responses((status = 200, body = FeedbackList), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn trace_list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<FeedbackList>, ApiError> {
    list(s, p, FeedbackTarget::Trace, id).await
}

/// Scores a RAG answer, by the `id` its response carried.
#[utoipa::path(
    post, path = "/v1/answers/{id}/feedback", tag = "observability", request_body = FeedbackRequest,
    params(("id" = String, Path, description = "Answer id (`ans_...`)")),
    responses((status = 201, body = Feedback), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn answer_give(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<FeedbackRequest>,
) -> Result<(StatusCode, JsonOut<Feedback>), ApiError> {
    give(s, p, FeedbackTarget::Answer, id, req).await
}

/// A RAG answer's feedback.
#[utoipa::path(
    get, path = "/v1/answers/{id}/feedback", tag = "observability",
    params(("id" = String, Path, description = "Answer id (`ans_...`)")),
    responses((status = 200, body = FeedbackList), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn answer_list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<FeedbackList>, ApiError> {
    list(s, p, FeedbackTarget::Answer, id).await
}

/// Scores an agent run.
#[utoipa::path(
    post, path = "/v1/runs/{id}/feedback", tag = "observability", request_body = FeedbackRequest,
    params(("id" = String, Path, description = "Run id")),
    responses((status = 201, body = Feedback), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn run_give(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<FeedbackRequest>,
) -> Result<(StatusCode, JsonOut<Feedback>), ApiError> {
    give(s, p, FeedbackTarget::Run, id, req).await
}

/// An agent run's feedback.
#[utoipa::path(
    get, path = "/v1/runs/{id}/feedback", tag = "observability",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = FeedbackList), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn run_list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<FeedbackList>, ApiError> {
    list(s, p, FeedbackTarget::Run, id).await
}

/// Stores an answer evaluation (what `cairn eval answers` sends); averages are computed here.
#[utoipa::path(
    post, path = "/v1/evals", tag = "observability", request_body = NewEval,
    responses((status = 201, body = EvalRun), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn eval_create(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<NewEval>,
) -> Result<(StatusCode, JsonOut<EvalRun>), ApiError> {
    Ok((StatusCode::CREATED, JsonOut(s.feedback.record_eval(&p, req).await?)))
}

/// Evaluations of the caller's tenant, newest first.
#[utoipa::path(
    get, path = "/v1/evals", tag = "observability", params(EvalQuery),
    responses((status = 200, body = EvalList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn eval_list(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<EvalQuery>, QueryRejection>,
) -> Result<JsonOut<EvalList>, ApiError> {
    let q = query(q)?;
    Ok(JsonOut(EvalList { object: "list", data: s.feedback.evals(&p, q.tenant.as_deref(), q.limit).await? }))
}

/// One evaluation with every question's result.
#[utoipa::path(
    get, path = "/v1/evals/{id}", tag = "observability",
    params(("id" = String, Path, description = "Evaluation id")),
    responses((status = 200, body = EvalRun), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn eval_get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<EvalRun>, ApiError> {
    Ok(JsonOut(s.feedback.eval(&p, &id).await?))
}
