//! `/v1/threads`: conversations and their messages. The thread service checks roles and
//! tenants; these handlers only translate HTTP.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_agents::threads::{AddMessages, MessagePage, MessageView, NewThread, ThreadView};
use cairn_core::openai::ErrorBody;
use cairn_core::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::admin::List;
use crate::state::AppState;

/// Query of `GET /v1/threads/{id}/messages`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// `next_after` of the previous page (a message's `seq`).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub after: Option<i64>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Creates a thread, with its first messages if any (in one transaction).
#[utoipa::path(
    post, path = "/v1/threads", tag = "agents", request_body = NewThread,
    responses((status = 201, body = ThreadView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<NewThread>,
) -> Result<(StatusCode, JsonOut<ThreadView>), ApiError> {
    let (thread, _) = s.threads.create(&p, req).await?;
    Ok((StatusCode::CREATED, JsonOut(thread)))
}

/// One thread.
#[utoipa::path(
    get, path = "/v1/threads/{id}", tag = "agents", params(("id" = String, Path, description = "Thread id")),
    responses((status = 200, body = ThreadView), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<ThreadView>, ApiError> {
    Ok(JsonOut(s.threads.get(&p, &id).await?))
}

/// Adds messages to a thread, in order; answers with them as stored (numbered).
#[utoipa::path(
    post, path = "/v1/threads/{id}/messages", tag = "agents", request_body = AddMessages,
    params(("id" = String, Path, description = "Thread id")),
    responses((status = 201, body = List<MessageView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_messages(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<AddMessages>,
) -> Result<(StatusCode, JsonOut<List<MessageView>>), ApiError> {
    let data = s.threads.add(&p, &id, req).await?;
    Ok((StatusCode::CREATED, JsonOut(List { object: "list", data })))
}

/// A thread's messages, oldest first.
#[utoipa::path(
    get, path = "/v1/threads/{id}/messages", tag = "agents",
    params(("id" = String, Path, description = "Thread id"), MessageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn messages(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: Result<Query<MessageQuery>, QueryRejection>,
) -> Result<JsonOut<MessagePage>, ApiError> {
    let q = crate::routes::query(q)?;
    let after =
        q.after.map(u64::try_from).transpose().map_err(|_| Error::invalid_param("after", "after is at least 0"))?;
    Ok(JsonOut(s.threads.messages(&p, &id, after, q.limit).await?))
}
