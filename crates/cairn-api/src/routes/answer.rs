//! `POST /v1/collections/{id}/answer`: a RAG answer with citations, as JSON or as server-sent
//! events (`sources`, then `delta`s, then `done` with the whole answer and its citations, or
//! `error` if generation broke after it started).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use cairn_core::openai::ErrorBody;
use cairn_knowledge::answer::{Answer, AnswerEvent, AnswerRequest, AnswerStream};
use futures::StreamExt;
use serde_json::json;

use super::{event_stream, interrupted, routed_opt};
use crate::auth::Work;
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;

/// Answers a question from the collection (and `also`) with numbered citations. With
/// `stream: true` the response is `text/event-stream`: `event: sources`, `event: delta` (text),
/// then `event: done` (the `Answer`), or `event: error`.
#[utoipa::path(
    post, path = "/v1/collections/{id}/answer", tag = "knowledge", request_body = AnswerRequest,
    params(("id" = String, Path, description = "Collection id")),
    responses(
        (status = 200, description = "The answer; or, when stream is true, SSE events ending with the answer", body = Answer),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn answer(
    State(s): State<AppState>,
    Work(ctx): Work,
    Path(id): Path<String>,
    Json(req): Json<AnswerRequest>,
) -> Result<Response, ApiError> {
    let (resp, routed) = if req.stream == Some(true) {
        let (events, routed) = s.answers.answer_stream(&ctx, &id, req).await?;
        (sse(events), routed)
    } else {
        let (answer, routed) = s.answers.answer(&ctx, &id, req).await?;
        (axum::Json(answer).into_response(), routed)
    };
    Ok(routed_opt(resp, routed))
}

fn sse(events: AnswerStream) -> Response {
    event_stream(events.map(|ev| {
        let (name, data) = match ev {
            AnswerEvent::Sources(sources) => ("sources", json!({ "sources": sources })),
            AnswerEvent::Delta(text) => ("delta", json!({ "text": text })),
            AnswerEvent::Done(answer) => ("done", json!(answer)),
            AnswerEvent::Error(message) => ("error", json!(interrupted(message))),
        };
        format!("event: {name}\ndata: {data}\n\n")
    }))
}
