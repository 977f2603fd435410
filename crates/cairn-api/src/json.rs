//! A JSON body extractor whose failures are OpenAI-shaped 4xx errors: syntax and type errors
//! are 400 with serde's explanation (and the field path), oversize bodies are 413.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::error::error_response;

/// `v` with every float that holds a whole number (within 64 bits) written as an integer.
fn whole_numbers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, whole_numbers(v))).collect()),
        other => other,
    }
}

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
        // JSON has one number type: `3.0` is as much an integer as `3` (JSON Schema agrees), so
        // whole floats are read as integers before the body meets the Rust types.
        let value = serde_json::from_slice::<serde_json::Value>(&bytes).map(whole_numbers).map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invalid_body"),
                None,
                format!("invalid JSON body: {e}"),
            )
        })?;
        // Every body Cairn takes is an object; serde would also read a struct from an array.
        if !value.is_object() {
            let message = "the body must be a JSON object".to_string();
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invalid_body"),
                None,
                message,
            ));
        }
        serde_path_to_error::deserialize(crate::strict::Strict(value)).map(Json).map_err(|e| {
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
