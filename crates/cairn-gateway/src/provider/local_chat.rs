//! Chat on an in-process GGUF model: OpenAI requests become engine requests, and engine events
//! become a chat completion or a stream of OpenAI chunks (role first, then text, then the
//! finish reason, then usage). Dropping the stream drops the receiver, which stops generation.

use cairn_core::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ChatRole, Choice, ChunkChoice, Delta, Extra, Usage, UsageField,
};
use cairn_core::time::now_secs;
use cairn_llama::{EngineError, Event, Finish, GenerateRequest, Message};
use tokio::sync::mpsc::Receiver;

use super::{ChunkStream, ProviderError};

/// Output cap when the request sets none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Translates an OpenAI request; tool use is refused (small local models do not call tools).
pub(crate) fn to_engine(req: &ChatRequest) -> Result<GenerateRequest, ProviderError> {
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(client_error("local chat models do not support tools; route tool calls to a remote model"));
    }
    let messages = req
        .messages
        .iter()
        .map(|m| Message {
            role: match m.role {
                ChatRole::System | ChatRole::Developer => "system",
                ChatRole::User => "user",
                ChatRole::Assistant => "assistant",
                ChatRole::Tool => "tool",
            }
            .into(),
            content: m.text_content(),
        })
        .collect();
    Ok(GenerateRequest {
        messages,
        max_tokens: req.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: req.temperature.unwrap_or(1.0) as f32,
        top_p: req.top_p.unwrap_or(1.0) as f32,
        // Without a seed every call draws its own; with one, output is reproducible.
        seed: req.seed.map(|s| s as u32).unwrap_or_else(rand::random),
        stop: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    })
}

fn client_error(message: &str) -> ProviderError {
    ProviderError::Status { status: 400, message: message.into(), retry_after: None }
}

/// Maps engine errors: a full queue is a 503 with retry-after; a bad prompt is the client's.
pub(crate) fn engine_error(e: EngineError) -> ProviderError {
    match e {
        EngineError::Overloaded => {
            ProviderError::Unavailable { message: e.to_string(), retry_after: Some(std::time::Duration::from_secs(1)) }
        }
        EngineError::Invalid(m) => client_error(&m),
        other => ProviderError::Unavailable { message: other.to_string(), retry_after: None },
    }
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

/// Collects a whole generation into a chat completion.
pub(crate) async fn complete(mut events: Receiver<Event>, model: &str) -> Result<ChatCompletion, ProviderError> {
    let mut text = String::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Started { .. } => {}
            Event::Text { text: t, .. } => text.push_str(&t),
            Event::Failed(m) => return Err(client_error(&m)),
            Event::Done { finish, prompt_tokens, completion_tokens } => {
                return Ok(ChatCompletion {
                    id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                    object: "chat.completion".into(),
                    created: now_secs(),
                    model: model.into(),
                    choices: vec![Choice {
                        index: 0,
                        message: ChatMessage::text(ChatRole::Assistant, text),
                        finish_reason: Some(finish_reason(finish).into()),
                        logprobs: None,
                    }],
                    usage: Some(Usage::new(prompt_tokens.into(), completion_tokens.into())),
                    system_fingerprint: None,
                    extra: Extra::new(),
                });
            }
        }
    }
    Err(ProviderError::Unavailable { message: "the chat engine stopped mid-request".into(), retry_after: None })
}

/// Streams a generation as OpenAI chunks.
pub(crate) fn stream(events: Receiver<Event>, model: &str) -> ChunkStream {
    let template = ChatChunk {
        id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        object: "chat.completion.chunk".into(),
        created: now_secs(),
        model: model.into(),
        choices: vec![],
        usage: UsageField::Absent,
        system_fingerprint: None,
        extra: Extra::new(),
    };
    let chunk = move |delta: Delta, finish: Option<Finish>| ChatChunk {
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(|f| finish_reason(f).into()),
            logprobs: None,
        }],
        ..template.clone()
    };
    // Every text chunk carries the usage so far, so a stream cut anywhere is charged the
    // tokens it generated (the gateway shows clients usage only on the last chunk).
    let start = (events, Vec::<ChatChunk>::new(), 0u32);
    Box::pin(futures::stream::unfold(start, move |(mut events, mut queued, mut prompt)| {
        let chunk = chunk.clone();
        async move {
            if let Some(c) = queued.pop() {
                return Some((Ok(c), (events, queued, prompt)));
            }
            let item = match events.recv().await? {
                Event::Started { prompt_tokens } => {
                    prompt = prompt_tokens;
                    Ok(chunk(
                        Delta { role: Some(ChatRole::Assistant), content: Some(String::new()), ..Default::default() },
                        None,
                    ))
                }
                Event::Text { text, generated } => {
                    let mut c = chunk(Delta { content: Some(text), ..Default::default() }, None);
                    c.usage = UsageField::Some(Usage::new(prompt.into(), generated.into()));
                    Ok(c)
                }
                Event::Failed(m) => Err(client_error(&m)),
                Event::Done { finish, prompt_tokens, completion_tokens } => {
                    let mut last = chunk(Delta::default(), None);
                    last.choices.clear();
                    last.usage = UsageField::Some(Usage::new(prompt_tokens.into(), completion_tokens.into()));
                    queued.push(last);
                    Ok(chunk(Delta::default(), Some(finish)))
                }
            };
            Some((item, (events, queued, prompt)))
        }
    }))
}
