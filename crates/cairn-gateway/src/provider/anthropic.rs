//! Anthropic's Messages API, translated to and from OpenAI's shapes: system prompt, multi-turn,
//! images, tools and tool results, stop reasons and usage. Streaming is in `anthropic_stream`.

use async_trait::async_trait;
use cairn_core::openai::{
    ChatCompletion, ChatMessage, ChatRequest, ChatRole, Choice, EmbeddingRequest, EmbeddingResponse, Extra,
    FunctionCall, MessageContent, ToolCall, Usage,
};
use cairn_core::time::now_secs;
use futures::StreamExt;
use serde_json::{json, Value};

use super::anthropic_stream::StreamTranslator;
use super::http::{json as read_json, send};
use super::{ChunkStream, Provider, ProviderError};
use crate::sse;

/// API version header Anthropic requires.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the client sets none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A provider speaking Anthropic's Messages API.
pub struct AnthropicProvider {
    client: reqwest::Client,
    url: String,
}

impl AnthropicProvider {
    /// A provider at `base_url` (e.g. `https://api.anthropic.com`).
    pub fn new(client: reqwest::Client, base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/').trim_end_matches("/v1");
        Self { client, url: format!("{base}/v1/messages") }
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        self.client.post(&self.url).header("anthropic-version", ANTHROPIC_VERSION).json(body)
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    async fn chat(&self, request: &ChatRequest, model: &str) -> Result<ChatCompletion, ProviderError> {
        let body = to_anthropic(request, model, false)?;
        let resp: Value = read_json(send(self.post(&body)).await?).await?;
        from_anthropic(&resp)
    }

    async fn chat_stream(&self, request: &ChatRequest, model: &str) -> Result<ChunkStream, ProviderError> {
        let body = to_anthropic(request, model, true)?;
        let resp = send(self.post(&body)).await?;
        let events = Box::pin(sse::decode(resp.bytes_stream().map(|r| r.map_err(reqwest::Error::without_url))));
        let state = (events, StreamTranslator::new(model), std::collections::VecDeque::new(), false);
        let chunks = futures::stream::unfold(state, |(mut events, mut translator, mut queue, mut over)| async move {
            loop {
                if let Some(item) = queue.pop_front() {
                    return Some((item, (events, translator, queue, over)));
                }
                if over {
                    return None;
                }
                match events.next().await {
                    Some(Ok(ev)) => queue.extend(translator.on_event(ev.event.as_deref(), &ev.data)),
                    Some(Err(e)) => {
                        queue.push_back(Err(e));
                        over = true;
                    }
                    None => {
                        // Ending before `message_stop` means the stream was cut.
                        if !translator.stopped() {
                            queue.push_back(Err(ProviderError::Protocol("stream ended before message_stop".into())));
                        }
                        over = true;
                    }
                }
            }
        });
        Ok(Box::pin(chunks))
    }

    async fn embed(&self, _: &EmbeddingRequest, _: &str) -> Result<EmbeddingResponse, ProviderError> {
        Err(ProviderError::Unsupported("Anthropic has no embeddings API".into()))
    }
}

/// Builds a Messages API request from an OpenAI chat request.
pub(crate) fn to_anthropic(req: &ChatRequest, model: &str, stream: bool) -> Result<Value, ProviderError> {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role {
            ChatRole::System | ChatRole::Developer => {
                system.push(m.text_content());
                continue;
            }
            ChatRole::User => ("user", content_blocks(m)),
            ChatRole::Assistant => ("assistant", assistant_blocks(m)?),
            ChatRole::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.text_content(),
                })],
            ),
        };
        // Anthropic wants alternating roles: merge consecutive same-role turns (e.g. several
        // tool results answering one assistant turn become one user message).
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(arr) = last["content"].as_array_mut() {
                    arr.extend(blocks);
                }
            }
            _ => messages.push(json!({ "role": role, "content": blocks })),
        }
    }
    if let Some(instruction) = json_instruction(req) {
        system.push(instruction);
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": req.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
    });
    let obj = body.as_object_mut().ok_or_else(|| ProviderError::Protocol("unreachable".into()))?;
    if !system.is_empty() {
        obj.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = req.temperature {
        // Anthropic's range is 0-1; OpenAI's is 0-2.
        obj.insert("temperature".into(), json!((t / 2.0).clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        obj.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        obj.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
    if let Some(user) = &req.user {
        obj.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = &req.tools {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.function.name,
                    "description": t.function.description.clone().unwrap_or_default(),
                    "input_schema": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
                })
            })
            .collect();
        obj.insert("tools".into(), json!(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let mapped = match choice {
            Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
            Value::String(s) if s == "required" => Some(json!({"type": "any"})),
            Value::String(s) if s == "none" => Some(json!({"type": "none"})),
            v => v.pointer("/function/name").map(|name| json!({"type": "tool", "name": name})),
        };
        if let Some(m) = mapped {
            obj.insert("tool_choice".into(), m);
        }
    }
    if stream {
        obj.insert("stream".into(), json!(true));
    }
    Ok(body)
}

/// OpenAI's JSON modes have no Anthropic switch: they become a system instruction.
fn json_instruction(req: &ChatRequest) -> Option<String> {
    let rf = req.response_format.as_ref()?;
    match rf.get("type")?.as_str()? {
        "json_object" => Some("Respond with a single JSON object and nothing else.".into()),
        "json_schema" => Some(format!(
            "Respond with a single JSON object and nothing else, valid against this JSON Schema: {}",
            rf.pointer("/json_schema/schema").cloned().unwrap_or(Value::Null)
        )),
        _ => None,
    }
}

fn content_blocks(m: &ChatMessage) -> Vec<Value> {
    match &m.content {
        None => vec![],
        Some(MessageContent::Text(t)) => vec![json!({"type": "text", "text": t})],
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(json!({"type": "text", "text": p.text.clone().unwrap_or_default()})),
                "image_url" => {
                    let url = p.extra.get("image_url")?.get("url")?.as_str()?;
                    Some(image_block(url))
                }
                _ => None,
            })
            .collect(),
    }
}

fn image_block(url: &str) -> Value {
    // data:image/png;base64,AAAA -> an inline base64 source; anything else by URL.
    if let Some((meta, data)) = url.strip_prefix("data:").and_then(|r| r.split_once(',')) {
        let media_type = meta.trim_end_matches(";base64");
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

fn assistant_blocks(m: &ChatMessage) -> Result<Vec<Value>, ProviderError> {
    let mut blocks: Vec<Value> =
        content_blocks(m).into_iter().filter(|b| b["text"].as_str().is_none_or(|t| !t.is_empty())).collect();
    for call in m.tool_calls.iter().flatten() {
        // Arguments arrive as a JSON string; Anthropic wants the object.
        let input: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|_| ProviderError::Status {
                status: 400,
                message: format!("tool call {} has arguments that are not valid JSON", call.id),
                retry_after: None,
            })?
        };
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}));
    }
    Ok(blocks)
}

/// Maps Anthropic's stop reason to OpenAI's finish reason.
pub(crate) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

/// Prompt tokens as OpenAI counts them: Anthropic reports cached input separately.
pub(crate) fn input_tokens(usage: &Value) -> u64 {
    ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|k| usage.get(*k).and_then(Value::as_u64))
        .sum()
}

/// Converts a Messages API response to an OpenAI chat completion.
pub(crate) fn from_anthropic(resp: &Value) -> Result<ChatCompletion, ProviderError> {
    let bad = |what: &str| ProviderError::Protocol(format!("Anthropic response without {what}"));
    let blocks = resp.get("content").and_then(Value::as_array).ok_or_else(|| bad("content"))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).unwrap_or_default().into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: b.get("name").and_then(Value::as_str).unwrap_or_default().into(),
                    arguments: b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            }),
            _ => {}
        }
    }
    let usage = resp.get("usage").ok_or_else(|| bad("usage"))?;
    let output = usage.get("output_tokens").and_then(Value::as_u64).unwrap_or(0);
    let stop = resp.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let mut message = ChatMessage::text(ChatRole::Assistant, text);
    if !calls.is_empty() {
        if message.text_content().is_empty() {
            message.content = None;
        }
        message.tool_calls = Some(calls);
    }
    Ok(ChatCompletion {
        id: format!("chatcmpl-{}", resp.get("id").and_then(Value::as_str).unwrap_or("anthropic")),
        object: "chat.completion".into(),
        created: now_secs(),
        model: resp.get("model").and_then(Value::as_str).unwrap_or_default().into(),
        choices: vec![Choice { index: 0, message, finish_reason: Some(finish_reason(stop).into()), logprobs: None }],
        usage: Some(Usage::new(input_tokens(usage), output)),
        system_fingerprint: None,
        extra: Extra::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn translates_system_tools_and_tool_results() {
        let r = req(json!({
            "model": "x", "max_tokens": 50, "temperature": 1.0, "stop": "END",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "cold"},
                {"role": "tool", "tool_call_id": "c2", "content": "warm"}
            ],
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        }));
        let a = to_anthropic(&r, "claude", false).unwrap();
        assert_eq!(a["system"], "be brief");
        assert_eq!(a["temperature"], 0.5);
        assert_eq!(a["stop_sequences"], json!(["END"]));
        assert_eq!(a["tool_choice"], json!({"type": "any"}));
        let msgs = a["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "tool results merge into one user turn: {msgs:?}");
        assert_eq!(msgs[1]["content"][1]["input"]["city"], "Rome");
        assert_eq!(msgs[2]["content"][1]["tool_use_id"], "c2");
    }

    #[test]
    fn bad_tool_arguments_are_a_client_error() {
        let r = req(json!({"model": "x", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}]}
        ]}));
        assert!(to_anthropic(&r, "m", false).unwrap_err().is_client_error());
    }

    #[test]
    fn converts_tool_use_response() {
        let resp = json!({
            "id": "msg_1", "model": "claude", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Oslo"}}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}
        });
        let c = from_anthropic(&resp).unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert!(c.choices[0].message.content.is_none());
        let call = &c.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(serde_json::from_str::<Value>(&call.function.arguments).unwrap()["city"], "Oslo");
        assert_eq!(c.usage.unwrap().prompt_tokens, 15);
    }
}
