//! Chat on an in-process GGUF model: OpenAI requests become engine requests, and engine events
//! become a chat completion or a stream of OpenAI chunks (role first, then text, then the
//! finish reason, then usage). Dropping the stream drops the receiver, which stops generation.
//! With tools (see `local_tools`) the output is held until it ends: only then is it known to
//! be a call or an answer.

use cairn_core::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ChatRole, Choice, ChunkChoice, Delta, Extra,
    FunctionCallDelta, ToolCall, ToolCallDelta, Usage, UsageField,
};
use cairn_core::time::now_secs;
use cairn_llama::{EngineError, Event, Finish, GenerateRequest, Message};
use tokio::sync::mpsc::Receiver;

use super::local_tools;
use super::{ChunkStream, ProviderError};

/// Names of the tools a generation may call (`None`: no tools, the output is the answer).
pub(crate) type Callable = Option<Vec<String>>;

/// Output cap when the request sets none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Translates an OpenAI request, with the tools it may call.
pub(crate) fn to_engine(req: &ChatRequest) -> Result<(GenerateRequest, Callable), ProviderError> {
    let plan = local_tools::plan(req.tools.as_deref().unwrap_or_default(), req.tool_choice.as_ref())
        .map_err(|m| client_error(&m))?;
    let mut messages: Vec<Message> =
        local_tools::render(&req.messages).into_iter().map(|(role, content)| Message { role, content }).collect();
    if let Some(p) = &plan {
        match messages.first_mut().filter(|m| m.role == "system") {
            Some(first) => first.content = format!("{}\n\n{}", first.content, p.system),
            None => messages.insert(0, Message { role: "system".into(), content: p.system.clone() }),
        }
    }
    let request = GenerateRequest {
        messages,
        max_tokens: req.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: req.temperature.unwrap_or(1.0) as f32,
        top_p: req.top_p.unwrap_or(1.0) as f32,
        // Without a seed every call draws its own; with one, output is reproducible.
        seed: req.seed.map(|s| s as u32).unwrap_or_else(rand::random),
        stop: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        // A required call's grammar, else the response format's: the output is then only
        // JSON of the asked shape.
        grammar: plan.as_ref().and_then(|p| p.grammar.clone()).or_else(|| response_grammar(req)),
    };
    Ok((request, plan.map(|p| p.names)))
}

/// The grammar of `req`'s response format: a document of its schema, or any object.
fn response_grammar(req: &ChatRequest) -> Option<String> {
    let rf = req.response_format.as_ref()?;
    match rf.get("type").and_then(serde_json::Value::as_str)? {
        "json_schema" => rf.pointer("/json_schema/schema").map(super::grammar::json_schema),
        "json_object" => Some(super::grammar::json_object()),
        _ => None,
    }
}

/// The finished output as a message: a call of one of `tools` when it reads as one.
fn message(text: String, tools: &Callable) -> (ChatMessage, Option<ToolCall>) {
    match tools.as_ref().and_then(|names| local_tools::parse_call(&text, names)) {
        Some(call) => {
            let mut m = ChatMessage::text(ChatRole::Assistant, String::new());
            m.content = None;
            m.tool_calls = Some(vec![call.clone()]);
            (m, Some(call))
        }
        None => (ChatMessage::text(ChatRole::Assistant, text), None),
    }
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
pub(crate) async fn complete(
    mut events: Receiver<Event>,
    model: &str,
    tools: Callable,
) -> Result<ChatCompletion, ProviderError> {
    let mut text = String::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Started { .. } => {}
            Event::Text { text: t, .. } => text.push_str(&t),
            Event::Failed(m) => return Err(client_error(&m)),
            Event::Done { finish, prompt_tokens, completion_tokens } => {
                let (message, call) = message(std::mem::take(&mut text), &tools);
                let finish = if call.is_some() { "tool_calls" } else { finish_reason(finish) };
                return Ok(ChatCompletion {
                    id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                    object: "chat.completion".into(),
                    created: now_secs(),
                    model: model.into(),
                    choices: vec![Choice { index: 0, message, finish_reason: Some(finish.into()), logprobs: None }],
                    usage: Some(Usage::new(prompt_tokens.into(), completion_tokens.into())),
                    system_fingerprint: None,
                    extra: Extra::new(),
                });
            }
        }
    }
    Err(ProviderError::Unavailable { message: "the chat engine stopped mid-request".into(), retry_after: None })
}

/// Streams a generation as OpenAI chunks; with `tools`, the output comes whole at the end
/// (as text or as a call), and the chunks before it carry only the usage so far.
pub(crate) fn stream(events: Receiver<Event>, model: &str, tools: Callable) -> ChunkStream {
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
    let chunk = move |delta: Delta, finish: Option<&str>| ChatChunk {
        choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish.map(Into::into), logprobs: None }],
        ..template.clone()
    };
    // Every text chunk carries the usage so far, so a stream cut anywhere is charged the
    // tokens it generated (the gateway shows clients usage only on the last chunk).
    let start = (events, Vec::<ChatChunk>::new(), 0u32, String::new());
    Box::pin(futures::stream::unfold(start, move |(mut events, mut queued, mut prompt, mut held)| {
        let chunk = chunk.clone();
        let tools = tools.clone();
        async move {
            if let Some(c) = queued.pop() {
                return Some((Ok(c), (events, queued, prompt, held)));
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
                    let delta = if tools.is_some() {
                        held.push_str(&text);
                        Delta::default()
                    } else {
                        Delta { content: Some(text), ..Default::default() }
                    };
                    let mut c = chunk(delta, None);
                    c.usage = UsageField::Some(Usage::new(prompt.into(), generated.into()));
                    Ok(c)
                }
                Event::Failed(m) => Err(client_error(&m)),
                Event::Done { finish, prompt_tokens, completion_tokens } => {
                    let mut last = chunk(Delta::default(), None);
                    last.choices.clear();
                    last.usage = UsageField::Some(Usage::new(prompt_tokens.into(), completion_tokens.into()));
                    queued.push(last);
                    match tools.is_some().then(|| message(std::mem::take(&mut held), &tools)) {
                        None => Ok(chunk(Delta::default(), Some(finish_reason(finish)))),
                        Some((_, Some(call))) => {
                            queued.push(chunk(Delta::default(), Some("tool_calls")));
                            let delta = ToolCallDelta {
                                index: 0,
                                id: Some(call.id),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(call.function.name),
                                    arguments: Some(call.function.arguments),
                                }),
                            };
                            Ok(chunk(Delta { tool_calls: Some(vec![delta]), ..Default::default() }, None))
                        }
                        Some((m, None)) => {
                            queued.push(chunk(Delta::default(), Some(finish_reason(finish))));
                            Ok(chunk(Delta { content: Some(m.text_content()), ..Default::default() }, None))
                        }
                    }
                }
            };
            Some((item, (events, queued, prompt, held)))
        }
    }))
}
