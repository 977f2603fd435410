//! `/v1/agents`: agent definitions and their versions. The agents service checks roles,
//! tenants and definitions; these handlers only translate HTTP.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_agents::ports::MemoryItem;
use cairn_agents::{AgentPage, AgentSpec, AgentView};
use cairn_core::openai::ErrorBody;
use cairn_core::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::admin::List;
use crate::routes::query;
use crate::state::AppState;

/// Query of `POST /v1/agents`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    /// Tenant to create it for (owners only; default the caller's).
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub tenant_id: Option<String>,
}

/// Query of `POST /v1/agents/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    /// Update only if the agent's latest version is this one (else 409).
    #[param(minimum = 1, maximum = 4294967295_u64)]
    pub expected_version: Option<u32>,
}

/// Query of `GET /v1/agents`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `next_after` of the previous page.
    pub after: Option<String>,
    /// Page size, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Creates an agent (version 1).
#[utoipa::path(
    post, path = "/v1/agents", tag = "agents", request_body = AgentSpec, params(CreateQuery),
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<CreateQuery>, QueryRejection>,
    Json(spec): Json<AgentSpec>,
) -> Result<(StatusCode, JsonOut<AgentView>), ApiError> {
    let q = query(q)?;
    Ok((StatusCode::CREATED, JsonOut(s.agents.create(&p, q.tenant_id, spec).await?)))
}

/// The caller's tenant's agents, by id.
#[utoipa::path(
    get, path = "/v1/agents", tag = "agents", params(ListQuery),
    responses((status = 200, body = AgentPage), (status = 400, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<JsonOut<AgentPage>, ApiError> {
    let q = query(q)?;
    Ok(JsonOut(s.agents.list(&p, q.after.as_deref(), q.limit).await?))
}

/// An agent's latest version.
#[utoipa::path(
    get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<AgentView>, ApiError> {
    Ok(JsonOut(s.agents.get(&p, &id).await?))
}

/// Replaces an agent's definition: a new version (runs keep the version they started with).
#[utoipa::path(
    post, path = "/v1/agents/{id}", tag = "agents", request_body = AgentSpec,
    params(("id" = String, Path, description = "Agent id"), UpdateQuery),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: Result<Query<UpdateQuery>, QueryRejection>,
    Json(spec): Json<AgentSpec>,
) -> Result<JsonOut<AgentView>, ApiError> {
    let q = query(q)?;
    Ok(JsonOut(s.agents.update(&p, &id, spec, q.expected_version).await?))
}

/// Deletes an agent (its versions stay for the runs that used them).
#[utoipa::path(
    delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Agent id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn delete(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.agents.delete(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One version of an agent.
#[utoipa::path(
    get, path = "/v1/agents/{id}/versions/{version}", tag = "agents",
    params(("id" = String, Path, description = "Agent id"),
        ("version" = u32, Path, description = "Version, from 1", minimum = 1)),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn version(
    State(s): State<AppState>,
    Auth(p): Auth,
    path: Result<Path<(String, u32)>, PathRejection>,
) -> Result<JsonOut<AgentView>, ApiError> {
    let Path((id, version)) = path.map_err(|e| Error::invalid_param("version", e.body_text()))?;
    Ok(JsonOut(s.agents.version(&p, &id, version).await?))
}

/// Query of `GET /v1/agents/{id}/memories`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemoryQuery {
    /// Only this end user's memories.
    #[param(min_length = 1, max_length = 200)]
    pub end_user: Option<String>,
}

/// An agent's long-term memories (of one end user, when given), newest first.
#[utoipa::path(
    get, path = "/v1/agents/{id}/memories", tag = "agents",
    params(("id" = String, Path, description = "Agent id"), MemoryQuery),
    responses((status = 200, body = List<MemoryItem>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn memories(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: Result<Query<MemoryQuery>, QueryRejection>,
) -> Result<JsonOut<List<MemoryItem>>, ApiError> {
    let q = query(q)?;
    let data = s.runs.memories(&p, &id, q.end_user.as_deref()).await?;
    Ok(JsonOut(List { object: "list", data }))
}

/// Deletes one of an agent's memories.
#[utoipa::path(
    delete, path = "/v1/agents/{id}/memories/{memory_id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id"), ("memory_id" = String, Path, description = "Memory id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn forget(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, memory_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.runs.forget(&p, &id, &memory_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
