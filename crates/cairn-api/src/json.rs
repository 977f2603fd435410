//! A JSON body extractor whose failures are OpenAI-shaped 4xx errors: syntax and type errors
//! are 400 with serde's explanation (and the field path), oversize bodies are 413.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::error::error_response;

/// The parsed JSON body.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request body is larger than the server's limit (server.max_body_bytes)".to_string()
            } else {
                rejection.body_text()
            };
            error_response(status, "invalid_request_error", Some("invalid_body"), None, message)
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (param, message) = if inner.is_syntax() || inner.is_eof() || path == "." {
                (None, format!("invalid JSON body: {inner}"))
            } else {
                (Some(path.clone()), format!("invalid value at '{path}': {inner}"))
            };
            error_response(StatusCode::BAD_REQUEST, "invalid_request_error", Some("invalid_body"), param, message)
        })
    }
}
