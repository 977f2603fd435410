//! `/v1/collections`: collections, their documents, and search. The knowledge service checks
//! roles and tenants; these handlers only translate HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_core::knowledge::{Collection, Document};
use cairn_core::openai::ErrorBody;
use cairn_knowledge::service::{Accepted, CreateCollection, NewDocument, SearchHit, SearchRequest};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::admin::List;
use crate::state::AppState;

/// Body of `POST /v1/collections/{id}/documents`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocuments {
    /// Up to 1000 documents; all are checked before any is stored.
    pub documents: Vec<NewDocument>,
}

/// Creates a collection; the embedding model's vector size is measured here.
#[utoipa::path(
    post, path = "/v1/collections", tag = "knowledge", request_body = CreateCollection,
    responses((status = 201, body = Collection), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateCollection>,
) -> Result<(StatusCode, JsonOut<Collection>), ApiError> {
    Ok((StatusCode::CREATED, JsonOut(s.knowledge.create_collection(&p, req).await?)))
}

/// The caller's collections.
#[utoipa::path(get, path = "/v1/collections", tag = "knowledge", responses((status = 200, body = List<Collection>)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<JsonOut<List<Collection>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.knowledge.collections(&p).await? }))
}

/// One collection.
#[utoipa::path(
    get, path = "/v1/collections/{id}", tag = "knowledge", params(("id" = String, Path, description = "Collection id")),
    responses((status = 200, body = Collection), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<JsonOut<Collection>, ApiError> {
    Ok(JsonOut(s.knowledge.collection(&p, &id).await?))
}

/// Deletes a collection and everything in it.
#[utoipa::path(
    delete, path = "/v1/collections/{id}", tag = "knowledge", params(("id" = String, Path, description = "Collection id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn delete(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.knowledge.delete_collection(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds documents; answers at once with each document (pending) and its ingestion job.
#[utoipa::path(
    post, path = "/v1/collections/{id}/documents", tag = "knowledge", request_body = AddDocuments,
    params(("id" = String, Path, description = "Collection id")),
    responses((status = 202, body = List<Accepted>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_documents(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<AddDocuments>,
) -> Result<(StatusCode, JsonOut<List<Accepted>>), ApiError> {
    let data = s.knowledge.add_documents(&p, &id, req.documents).await?;
    Ok((StatusCode::ACCEPTED, JsonOut(List { object: "list", data })))
}

/// One document.
#[utoipa::path(
    get, path = "/v1/collections/{id}/documents/{doc}", tag = "knowledge",
    params(("id" = String, Path, description = "Collection id"), ("doc" = String, Path, description = "Document id")),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get_document(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, doc)): Path<(String, String)>,
) -> Result<JsonOut<Document>, ApiError> {
    Ok(JsonOut(s.knowledge.document(&p, &id, &doc).await?))
}

/// Deletes a document from every index.
#[utoipa::path(
    delete, path = "/v1/collections/{id}/documents/{doc}", tag = "knowledge",
    params(("id" = String, Path, description = "Collection id"), ("doc" = String, Path, description = "Document id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn delete_document(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, doc)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.knowledge.delete_document(&p, &id, &doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keyword, vector or hybrid search with metadata filters, over this collection and `also`.
#[utoipa::path(
    post, path = "/v1/collections/{id}/search", tag = "knowledge", request_body = SearchRequest,
    params(("id" = String, Path, description = "Collection id")),
    responses((status = 200, body = List<SearchHit>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn search(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Json(req): Json<SearchRequest>,
) -> Result<JsonOut<List<SearchHit>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.knowledge.search(&p, &id, req).await? }))
}
