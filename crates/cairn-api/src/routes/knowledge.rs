//! `/v1/collections`: collections, their documents, and search. The knowledge service checks
//! roles and tenants; these handlers only translate HTTP.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use cairn_core::knowledge::{Collection, Document};
use cairn_core::openai::ErrorBody;
use cairn_core::Error;
use cairn_knowledge::service::{
    Accepted, CreateCollection, DocumentPage, DocumentQuery, NewDocument, SearchHit, SearchRequest,
};
use cairn_knowledge::upload::{UploadOptions, UploadedFile};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{Auth, Work};
use crate::error::ApiError;
use crate::json::Json;
use crate::routes::admin::List;
use crate::state::AppState;

/// Body of `POST /v1/collections/{id}/documents`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocuments {
    /// Up to 1000 documents; all are checked before any is stored.
    #[schema(min_items = 1, max_items = 1000)]
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
    Work(ctx): Work,
    Json(req): Json<CreateCollection>,
) -> Result<(StatusCode, JsonOut<Collection>), ApiError> {
    Ok((StatusCode::CREATED, JsonOut(s.knowledge.create_collection(&ctx, req).await?)))
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
    Work(ctx): Work,
    Path(id): Path<String>,
    Json(req): Json<AddDocuments>,
) -> Result<(StatusCode, JsonOut<List<Accepted>>), ApiError> {
    let data = s.knowledge.add_documents(&ctx, &id, req.documents).await?;
    Ok((StatusCode::ACCEPTED, JsonOut(List { object: "list", data })))
}

/// A collection's documents, by id, with their ingestion state.
#[utoipa::path(
    get, path = "/v1/collections/{id}/documents", tag = "knowledge",
    params(("id" = String, Path, description = "Collection id"), DocumentQuery),
    responses((status = 200, body = DocumentPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_documents(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    query: Result<Query<DocumentQuery>, QueryRejection>,
) -> Result<JsonOut<DocumentPage>, ApiError> {
    let q = crate::routes::query(query)?;
    Ok(JsonOut(s.knowledge.documents(&p, &id, q).await?))
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
    Work(ctx): Work,
    Path(id): Path<String>,
    Json(req): Json<SearchRequest>,
) -> Result<JsonOut<List<SearchHit>>, ApiError> {
    Ok(JsonOut(List { object: "list", data: s.knowledge.search(&ctx, &id, req).await? }))
}

/// Uploads files as documents: multipart fields `file` (one or more; .txt, .md, .html, .pdf,
/// .json, .jsonl), and optionally `format`, `text_field`, `title_field` (JSON formats) and
/// `metadata` (a JSON object for every document). Every file is parsed before anything is
/// stored; answers at once with each document and its ingestion job.
#[utoipa::path(
    post, path = "/v1/collections/{id}/files", tag = "knowledge",
    request_body(content_type = "multipart/form-data", description = "Fields: file (repeatable), format, text_field, title_field, metadata"),
    params(("id" = String, Path, description = "Collection id")),
    responses(
        (status = 202, body = List<Accepted>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload_files(
    State(s): State<AppState>,
    Work(ctx): Work,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, JsonOut<List<Accepted>>), ApiError> {
    let multipart = multipart.map_err(|e| Error::invalid_param("content-type", e.body_text()))?;
    // Taken before the body is read: the uploads read at once are bounded.
    let _slot = s.knowledge.upload_slot()?;
    let (files, opts) = read_upload(multipart).await?;
    let data = s.knowledge.add_files(&ctx, &id, files, opts).await?;
    Ok((StatusCode::ACCEPTED, JsonOut(List { object: "list", data })))
}

/// The files and options of a multipart upload; only translation, the service checks content.
async fn read_upload(mut m: Multipart) -> Result<(Vec<UploadedFile>, UploadOptions), Error> {
    let mut files = Vec::new();
    let mut opts = UploadOptions::default();
    while let Some(field) = m.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(multipart_error)?.to_vec();
                files.push(UploadedFile { name: file_name, content_type, bytes });
            }
            "format" | "text_field" | "title_field" | "metadata" => {
                let text = field.text().await.map_err(multipart_error)?;
                match name.as_str() {
                    "format" => opts.format = Some(text),
                    "text_field" => opts.text_field = Some(text),
                    "title_field" => opts.title_field = Some(text),
                    _ => {
                        let v = serde_json::from_str(&text)
                            .map_err(|e| Error::invalid_param("metadata", format!("metadata is not JSON: {e}")))?;
                        opts.metadata = Some(v);
                    }
                }
            }
            other => {
                return Err(Error::invalid_param(
                    other,
                    format!("unknown field '{other}' (file, format, text_field, title_field, metadata)"),
                ))
            }
        }
    }
    Ok((files, opts))
}

fn multipart_error(e: MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge("the upload is larger than the server's limit (knowledge.max_upload_bytes)".into())
    } else {
        Error::invalid_param("file", format!("malformed multipart body: {}", e.body_text()))
    }
}
