//! Admin endpoints: tenants and keys (admin role; the service checks it).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_access::NewKey;
use cairn_core::openai::ErrorBody;
use cairn_core::tenancy::{ApiKey, KeyLimits, Role, Tenant};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;

/// The calling key: who it is, whose data it sees, and what it may do.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// Always `key`.
    pub object: &'static str,
    /// The key's id.
    pub key_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its role (`owner` keys see every tenant).
    pub role: Role,
    /// Its limits.
    pub limits: KeyLimits,
}

/// The calling key (what the dashboard shows after login).
#[utoipa::path(
    get, path = "/v1/me", tag = "admin",
    responses((status = 200, body = Me)),
    security(("bearer" = []))
)]
pub async fn me(Auth(p): Auth) -> JsonOut<Me> {
    JsonOut(Me { object: "key", key_id: p.key_id, tenant_id: p.tenant_id, role: p.role, limits: p.limits })
}

/// Body of `POST /v1/admin/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Slug: 1-64 chars of a-z, 0-9, '-' and '_'.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub id: String,
    /// Display name (defaults to the id).
    pub name: Option<String>,
}

/// A list of items.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    /// Always `list`.
    pub object: &'static str,
    /// The items.
    pub data: Vec<T>,
}

/// Body of `POST /v1/admin/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Owning tenant.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub tenant_id: String,
    /// Label.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub name: String,
    /// `admin`, `member` (default) or `reader`.
    #[serde(default = "default_role")]
    pub role: Role,
    /// Per-key limits.
    #[serde(default)]
    pub limits: KeyLimits,
}

fn default_role() -> Role {
    Role::Member
}

/// A newly created key with its secret, shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key's record.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`. It is not stored and cannot be shown again.
    pub secret: String,
}

/// Filter for `GET /v1/admin/keys`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyFilter {
    /// Only keys of this tenant.
    pub tenant_id: Option<String>,
}

/// Creates a tenant.
#[utoipa::path(
    post, path = "/v1/admin/tenants", tag = "admin", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_tenant(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(body): Json<CreateTenant>,
) -> Result<(StatusCode, JsonOut<Tenant>), ApiError> {
    let t = s.access.create_tenant(&p, &body.id, body.name.as_deref()).await?;
    Ok((StatusCode::CREATED, JsonOut(t)))
}

/// Lists tenants (admins: all; others: their own).
#[utoipa::path(
    get, path = "/v1/admin/tenants", tag = "admin",
    responses((status = 200, body = List<Tenant>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_tenants(State(s): State<AppState>, Auth(p): Auth) -> Result<JsonOut<List<Tenant>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.access.list_tenants(&p).await? }))
}

/// Creates a key; the response holds its secret, shown this once.
#[utoipa::path(
    post, path = "/v1/admin/keys", tag = "admin", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, JsonOut<CreatedKey>), ApiError> {
    let new = NewKey { tenant_id: body.tenant_id, name: body.name, role: body.role, limits: body.limits };
    let (key, secret) = s.access.create_key(&p, new).await?;
    Ok((StatusCode::CREATED, JsonOut(CreatedKey { key, secret })))
}

/// Lists keys (never their secrets).
#[utoipa::path(
    get, path = "/v1/admin/keys", tag = "admin", params(KeyFilter),
    responses((status = 200, body = List<ApiKey>), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_keys(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(f): Query<KeyFilter>,
) -> Result<JsonOut<List<ApiKey>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.access.list_keys(&p, f.tenant_id.as_deref()).await? }))
}

/// Revokes a key; it stops working at once.
#[utoipa::path(
    delete, path = "/v1/admin/keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<ApiKey>, ApiError> {
    Ok(JsonOut(s.access.revoke_key(&p, &id).await?))
}
