//! `/v1/runs`: start agent runs, read them and their journals, follow them live, cancel them,
//! and answer what they wait on. The runs service checks roles and tenants; these handlers
//! only translate HTTP.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use cairn_agents::feed::{event_name, FeedItem};
use cairn_agents::runs::{Approvals, CreateRun, RunListRequest, RunPage, RunView, StepPage, ToolOutputs};
use cairn_core::openai::ErrorBody;
use cairn_core::Error;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{Auth, Caller};
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::query;
use crate::state::AppState;

/// Query of `GET /v1/runs/{id}/steps`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StepQuery {
    /// `next_after` of the previous page (an entry's `seq`).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub after: Option<i64>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Query of `GET /v1/runs/{id}/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Start after this journal entry (as `Last-Event-ID`, which wins when both are sent).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub after: Option<i64>,
}

/// Starts a run of an agent, on a thread or a one-off input; a worker steps it in the
/// background (`202`). With a thread that has a run in progress: 409, or queued behind it
/// with `if_busy: queue`.
#[utoipa::path(
    post, path = "/v1/runs", tag = "agents", request_body = CreateRun,
    responses(
        (status = 202, body = RunView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Json(req): Json<CreateRun>,
) -> Result<(StatusCode, JsonOut<RunView>), ApiError> {
    Ok((StatusCode::ACCEPTED, JsonOut(s.runs.create(&ctx, req).await?)))
}

/// Runs of the caller's tenant, newest first, optionally in one state (`requires_action`:
/// the runs waiting for a person).
#[utoipa::path(
    get, path = "/v1/runs", tag = "agents", params(RunListRequest),
    responses((status = 200, body = RunPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<RunListRequest>, QueryRejection>,
) -> Result<JsonOut<RunPage>, ApiError> {
    Ok(JsonOut(s.runs.list(&p, query(q)?).await?))
}

/// A run: its state, usage, what it waits on, and its answer once it ended.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "agents", params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<RunView>, ApiError> {
    Ok(JsonOut(s.runs.get(&p, &id).await?))
}

/// Cancels a run that has not ended (409 for one that has).
#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", tag = "agents", params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<RunView>, ApiError> {
    Ok(JsonOut(s.runs.cancel(&p, &id).await?))
}

/// A run's journal, in order: every model output, tool call, result, pause and answer.
#[utoipa::path(
    get, path = "/v1/runs/{id}/steps", tag = "agents",
    params(("id" = String, Path, description = "Run id"), StepQuery),
    responses((status = 200, body = StepPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn steps(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: Result<Query<StepQuery>, QueryRejection>,
) -> Result<JsonOut<StepPage>, ApiError> {
    let q = query(q)?;
    let after =
        q.after.map(u64::try_from).transpose().map_err(|_| Error::invalid_param("after", "after is at least 0"))?;
    Ok(JsonOut(s.runs.steps(&p, &id, after, q.limit).await?))
}

/// Server-sent events of a run, resumable with `Last-Event-ID`: each journal entry once, with
/// its `seq` as the event id (`run.started`, `step.done` (a model output, with its tool
/// calls), `tool.call`, `tool.result`, `approval.requested`, `approval.answered`, `summary`,
/// `run.ended`), and, not numbered, `model.delta` (text as the model streams it, on the node
/// stepping the run). The stream ends after `run.ended`.
#[utoipa::path(
    get, path = "/v1/runs/{id}/events", tag = "agents",
    params(("id" = String, Path, description = "Run id"), EventQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^[0-9]{0,19}$",
            description = "The last event id seen: the stream resumes after it (empty: from the start)")),
    responses(
        (status = 200, description = "text/event-stream of run events", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    // An empty id is no id (what an EventSource that saw no id would send).
    let header = headers.get("last-event-id").filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace));
    let from_header = match header {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::invalid_param("Last-Event-ID", "Last-Event-ID is a journal entry number"))?,
        ),
        None => None,
    };
    let from_query =
        q.after.map(u64::try_from).transpose().map_err(|_| Error::invalid_param("after", "after is at least 0"))?;
    let after = from_header.or(from_query).unwrap_or(0);
    let slot = s.gateway.stream_slot(&p)?;
    let feed = s.runs.watch(&p, &id, after).await?;
    let events = feed
        .map(move |item| {
            // The watcher holds its key's stream slot until the stream ends.
            let _held = &slot;
            let event = match item {
                FeedItem::Step(step) => Event::default()
                    .id(step.seq.to_string())
                    .event(event_name(step.kind))
                    .json_data(&step)
                    .unwrap_or_default(),
                FeedItem::Delta(text) => Event::default()
                    .event("model.delta")
                    .json_data(serde_json::json!({"text": text}))
                    .unwrap_or_default(),
                FeedItem::Ended(data) => Event::default().event("run.ended").json_data(&data).unwrap_or_default(),
            };
            Ok::<_, Infallible>(event)
        })
        .take_until(s.streams_cut.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// Answers the approvals (and calls a crash left unresolved) a run waits on: `approve`,
/// `reject` (with a message for the model), `edit` (new arguments, checked), `respond` (a
/// result in the tool's place). Each answer is journaled with the key that gave it; when none
/// is left the run goes on. 409 when the run is not waiting.
#[utoipa::path(
    post, path = "/v1/runs/{id}/approvals", tag = "agents", request_body = Approvals,
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = RunView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn approvals(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    Json(req): Json<Approvals>,
) -> Result<JsonOut<RunView>, ApiError> {
    Ok(JsonOut(s.runs.approve(&ctx, &id, req).await?))
}

/// Posts the outputs of client tools a run waits on; when none is left the run goes on.
/// 409 when the run is not waiting.
#[utoipa::path(
    post, path = "/v1/runs/{id}/tool_outputs", tag = "agents", request_body = ToolOutputs,
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = RunView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn tool_outputs(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    Json(req): Json<ToolOutputs>,
) -> Result<JsonOut<RunView>, ApiError> {
    Ok(JsonOut(s.runs.tool_outputs(&ctx, &id, req).await?))
}
