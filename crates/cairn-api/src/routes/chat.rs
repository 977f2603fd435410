//! `POST /v1/chat/completions`: JSON, or server-sent events when `stream` is true.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cairn_core::openai::{ChatCompletion, ChatRequest, ErrorBody};
use cairn_gateway::{ChatStream, StreamEvent};
use cairn_knowledge::grounded_chat::{take_options, ChatReply};
use futures::StreamExt;

use super::{event_stream, interrupted, refused, routed_opt, with_routed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;

/// Creates a chat completion (OpenAI-compatible). With `stream: true` the response is
/// `text/event-stream` of `chat.completion.chunk` objects ending with `data: [DONE]`. With
/// `"cairn": {"knowledge": {"collections": [...]}}` it answers from those collections and adds
/// `cairn.citations` and `cairn.sources` (on the completion, or on a last chunk without choices).
/// Models with a response cache answer repeated requests from it: `x-cairn-cache` says `hit`,
/// `miss` or `bypass`; `cairn.cache` and `Cache-Control` control it per request. A model with a
/// semantic cache also answers a question asked in other words (`x-cairn-cache: hit` with
/// `x-cairn-cache-similarity`); answers from knowledge are dropped when a collection changes. The alias's and
/// the key's guards run on every call (`x-cairn-guards` says what they did); a blocked call is
/// a 400 (input) or 422 (output) of type `guard_error` with code `guard_<name>`. A routed model
/// picks its small or large model per request (`x-cairn-route` in the response says which and
/// why; the request's `x-cairn-route` header or `cairn.route` may choose).
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "gateway",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The completion; or, when stream is true, an SSE stream of ChatChunk", body = ChatCompletion),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked key", body = ErrorBody),
        (status = 403, description = "Role does not allow model calls", body = ErrorBody),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A guard refused the answer (personal data, or no answer matching the schema)", body = ErrorBody),
        (status = 429, description = "Rate limit or budget exhausted", body = ErrorBody),
        (status = 502, description = "Every upstream target failed", body = ErrorBody),
        (status = 503, description = "Every target's circuit is open", body = ErrorBody),
        (status = 504, description = "Upstream timed out", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn chat_completions(
    State(s): State<AppState>,
    Caller(mut ctx): Caller,
    headers: HeaderMap,
    Json(mut req): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let options = take_options(&mut req)?;
    let (knowledge, asked, route) = options.map(|o| (o.knowledge, o.cache, o.route)).unwrap_or_default();
    if let Some(asked) = &asked {
        asked.validate("cairn.cache")?;
    }
    ctx.cache = asked.unwrap_or_default().merge(super::cache::requested(&headers)?);
    ctx.route = match route {
        Some(size) => Some(size),
        None => requested_route(&headers)?,
    };
    if let Some(knowledge) = knowledge {
        // A search and a generation: one request against the key's rate, like the answer route.
        s.gateway.admit_request(&mut ctx).await?;
        return Ok(match s.answers.chat(&ctx, req, knowledge).await? {
            ChatReply::Completion(c, routed) => routed_opt(axum::Json(c).into_response(), routed),
            ChatReply::Stream(stream, routed) => routed_opt(sse(stream), routed),
        });
    }
    if req.is_stream() {
        let (stream, routed) = s.gateway.chat_stream(&ctx, req, s.streams_cut.clone()).await?;
        Ok(with_routed(sse(stream), &routed))
    } else {
        let (completion, routed) = s.gateway.chat(&ctx, req).await?;
        Ok(with_routed(axum::Json(completion).into_response(), &routed))
    }
}

/// The model size a request's `x-cairn-route` header asks for (`small`, `large`; `auto` or
/// none: the router decides).
fn requested_route(headers: &HeaderMap) -> Result<Option<cairn_core::config::ModelSize>, ApiError> {
    use cairn_core::config::ModelSize;
    let Some(v) = headers.get("x-cairn-route") else { return Ok(None) };
    match v.to_str().map(str::trim) {
        Ok("small") => Ok(Some(ModelSize::Small)),
        Ok("large") => Ok(Some(ModelSize::Large)),
        Ok("auto") => Ok(None),
        _ => {
            Err(cairn_core::Error::invalid_param("x-cairn-route", "x-cairn-route must be small, large or auto").into())
        }
    }
}

/// Encodes the event stream exactly as OpenAI does: `data: <json>\n\n`, then `data: [DONE]`.
fn sse(stream: ChatStream) -> Response {
    event_stream(stream.map(|ev| {
        let line = match ev {
            StreamEvent::Chunk(chunk) => serde_json::to_string(&chunk).map(|j| format!("data: {j}\n\n")),
            StreamEvent::Error(message) => {
                serde_json::to_string(&interrupted(message)).map(|j| format!("data: {j}\n\n"))
            }
            StreamEvent::Refused { guard, message } => {
                serde_json::to_string(&refused(guard, message)).map(|j| format!("data: {j}\n\n"))
            }
            StreamEvent::Done => Ok("data: [DONE]\n\n".to_string()),
        };
        line.unwrap_or_default()
    }))
}
