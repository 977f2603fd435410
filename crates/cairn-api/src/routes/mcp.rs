//! `/v1/mcp_servers`: a tenant's MCP servers and their tools. The MCP service checks roles,
//! tenants and allow-lists; these handlers only translate HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_agents::mcp::{CreateMcpServer, McpServerView, McpToolView};
use cairn_core::openai::ErrorBody;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::admin::List;
use crate::state::AppState;

/// Adds a Streamable HTTP MCP server to the caller's tenant (admins).
#[utoipa::path(
    post, path = "/v1/mcp_servers", tag = "agents", request_body = CreateMcpServer,
    responses((status = 201, body = McpServerView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateMcpServer>,
) -> Result<(StatusCode, JsonOut<McpServerView>), ApiError> {
    Ok((StatusCode::CREATED, JsonOut(s.mcp.create(&p, req).await?)))
}

/// The caller's tenant's MCP servers: the operator's stdio servers, then its own.
#[utoipa::path(
    get, path = "/v1/mcp_servers", tag = "agents",
    responses((status = 200, body = List<McpServerView>)), security(("bearer" = []))
)]
pub async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<JsonOut<List<McpServerView>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.mcp.list(&p).await? }))
}

/// One MCP server (header values are never shown).
#[utoipa::path(
    get, path = "/v1/mcp_servers/{name}", tag = "agents",
    params(("name" = String, Path, description = "Server name")),
    responses((status = 200, body = McpServerView), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> Result<JsonOut<McpServerView>, ApiError> {
    Ok(JsonOut(s.mcp.get(&p, &name).await?))
}

/// Removes one of the tenant's own MCP servers (admins).
#[utoipa::path(
    delete, path = "/v1/mcp_servers/{name}", tag = "agents",
    params(("name" = String, Path, description = "Server name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.mcp.delete(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tools an MCP server offers, asked of the server now (members).
#[utoipa::path(
    get, path = "/v1/mcp_servers/{name}/tools", tag = "agents",
    params(("name" = String, Path, description = "Server name")),
    responses((status = 200, body = List<McpToolView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 504, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn tools(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> Result<JsonOut<List<McpToolView>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.mcp.tools(&p, &name).await? }))
}
