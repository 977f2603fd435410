//! `POST /v1/chat/completions` request, response and streaming chunk types, in OpenAI's
//! exact shapes (fields that OpenAI always sends as `null` are serialised as `null`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Extra;
use crate::Error;

/// A chat completion request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// Model name (an alias from Cairn's config).
    #[schema(min_length = 1, pattern = "[^\\s\\u0085]")]
    pub model: String,
    /// The conversation.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Legacy output-token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Output-token cap (preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, 0-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// Number of choices; only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    /// Up to four stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// End-user id, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `none`, `auto`, `required`, or a named function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub tool_choice: Option<Value>,
    /// `{"type":"text"|"json_object"|"json_schema", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub response_format: Option<Value>,
    /// Other OpenAI fields, passed through to OpenAI-compatible upstreams.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

/// Streaming options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a final chunk with token usage (and `"usage": null` on every other chunk).
    #[serde(default)]
    pub include_usage: bool,
}

/// One stop sequence or several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// Instructions (newer name for system).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// Author.
    pub role: ChatRole,
    /// Text, or content parts; may be null on assistant messages that only call tools.
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by the assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For `tool` messages: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Other fields (e.g. `refusal`), passed through.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

impl ChatMessage {
    /// A plain text message.
    pub fn text(role: ChatRole, text: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Extra::new(),
        }
    }

    /// The message's text: the string, or its text parts joined.
    pub fn text_content(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(MessageContent::Text(s)) => s.clone(),
            Some(MessageContent::Parts(parts)) => {
                parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join("")
            }
        }
    }
}

/// Message content: a string or a list of parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts (text, image_url, ...).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContentPart {
    /// `text`, `image_url`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Other fields of the part (e.g. `image_url`).
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    #[schema(pattern = "^function$")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A callable function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDef {
    /// Function name.
    #[schema(min_length = 1)]
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// Call id, echoed in the tool result message.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Function and arguments.
    pub function: FunctionCall,
}

/// The function part of a tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
}

/// A non-streaming chat completion.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// Completion id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// Model that answered.
    pub model: String,
    /// The choices (one).
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Backend fingerprint, if the upstream sent one.
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// Other fields, passed through.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

/// One choice of a completion.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Choice {
    /// Position.
    pub index: u32,
    /// The assistant message.
    pub message: ChatMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`.
    pub finish_reason: Option<String>,
    /// Log probabilities, if requested.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub logprobs: Option<Value>,
}

/// Token usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Sum of both (some upstreams leave it out).
    #[serde(default)]
    pub total_tokens: u64,
    /// Details (cached tokens, reasoning tokens), passed through.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

impl Usage {
    /// Usage from input and output counts.
    pub fn new(prompt: u64, completion: u64) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            extra: Extra::new(),
        }
    }
}

/// One streamed chunk (`chat.completion.chunk`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatChunk {
    /// Completion id (same on every chunk).
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// Model that answers.
    pub model: String,
    /// Deltas (empty on the final usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Usage: `null` on content chunks and a value on the last one, when requested.
    #[serde(default, skip_serializing_if = "UsageField::is_absent")]
    #[schema(value_type = Option<Usage>)]
    pub usage: UsageField,
    /// Backend fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Other fields, passed through.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

/// The `usage` field of a chunk: absent, explicitly `null`, or present.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum UsageField {
    /// Not sent (the client did not ask for usage).
    #[default]
    Absent,
    /// Sent as `null`.
    Null,
    /// Sent with values.
    Some(Usage),
}

impl UsageField {
    /// True when the field is not serialised at all.
    pub fn is_absent(&self) -> bool {
        matches!(self, UsageField::Absent)
    }

    /// The usage, if present.
    pub fn as_ref(&self) -> Option<&Usage> {
        match self {
            UsageField::Some(u) => Some(u),
            _ => None,
        }
    }
}

impl Serialize for UsageField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UsageField::Some(u) => u.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for UsageField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<Usage>::deserialize(d)? {
            Some(u) => UsageField::Some(u),
            None => UsageField::Null,
        })
    }
}

/// One choice's delta in a chunk.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    /// Position.
    pub index: u32,
    /// What was added.
    pub delta: Delta,
    /// Set on the last content chunk.
    pub finish_reason: Option<String>,
    /// Log probabilities, if requested.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub logprobs: Option<Value>,
}

/// The incremental part of a streamed message.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Delta {
    /// Sent on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ChatRole>,
    /// Text added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool-call fragments added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Other fields (e.g. `refusal`), passed through.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

/// A fragment of a tool call in a stream; `id`, `type` and `name` come on its first fragment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallDelta {
    /// Which tool call (position in `tool_calls`).
    pub index: u32,
    /// Call id (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first fragment).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// A fragment of a function call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallDelta {
    /// Function name (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Arguments fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl ChatRequest {
    /// The effective output-token cap (`max_completion_tokens` wins over `max_tokens`).
    pub fn output_cap(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// True when the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// True when the client asked for the final usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    /// A rough prompt token count, for rate limits and for estimates when upstreams report none.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| {
                m.text_content().chars().count()
                    + m.tool_calls.iter().flatten().map(|c| c.function.arguments.len()).sum::<usize>()
                    + 4
            })
            .sum();
        (chars as u64).div_ceil(4).max(1)
    }

    /// An upper bound on the prompt's tokens without a tokenizer: every token of a byte-level
    /// BPE covers at least one byte, plus a few framing tokens per message. Budget
    /// reservations use it, so a call never costs more than it reserved.
    pub fn prompt_token_bound(&self) -> u64 {
        let messages: usize = self
            .messages
            .iter()
            .map(|m| {
                m.text_content().len()
                    + m.tool_calls
                        .iter()
                        .flatten()
                        .map(|c| c.function.name.len() + c.function.arguments.len())
                        .sum::<usize>()
                    + 8
            })
            .sum();
        let tools = self.tools.as_ref().map_or(0, |t| serde_json::to_string(t).map_or(0, |s| s.len()));
        (messages + tools) as u64 + 8
    }

    /// Checks ranges and combinations the type system cannot express.
    pub fn validate(&self) -> crate::Result<()> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid_param("model", "model must not be empty"));
        }
        if self.messages.is_empty() {
            return Err(Error::invalid_param("messages", "messages must contain at least one message"));
        }
        if let Some(n) = self.n {
            if n != 1 {
                return Err(Error::invalid_param("n", "only n=1 is supported"));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(Error::invalid_param("temperature", "temperature must be between 0 and 2"));
            }
        }
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid_param("top_p", "top_p must be between 0 and 1"));
            }
        }
        if self.output_cap() == Some(0) {
            return Err(Error::invalid_param("max_tokens", "max_tokens must be at least 1"));
        }
        if let Some(stop) = &self.stop {
            let v = stop.to_vec();
            if v.len() > 4 || v.iter().any(String::is_empty) {
                return Err(Error::invalid_param("stop", "stop takes up to 4 non-empty sequences"));
            }
        }
        if self.stream_options.is_some() && !self.is_stream() {
            return Err(Error::invalid_param("stream_options", "stream_options is only allowed when stream is true"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role == ChatRole::Tool && m.tool_call_id.is_none() {
                return Err(Error::invalid_param(
                    format!("messages[{i}].tool_call_id"),
                    "tool messages must have a tool_call_id",
                ));
            }
            if m.content.is_none() && m.tool_calls.is_none() {
                return Err(Error::invalid_param(
                    format!("messages[{i}].content"),
                    "content is required unless the message has tool_calls",
                ));
            }
        }
        for (i, t) in self.tools.iter().flatten().enumerate() {
            if t.kind != "function" || t.function.name.is_empty() {
                return Err(Error::invalid_param(
                    format!("tools[{i}]"),
                    "each tool must be {\"type\":\"function\",\"function\":{\"name\":...}}",
                ));
            }
        }
        if let Some(rf) = &self.response_format {
            match rf.get("type").and_then(Value::as_str) {
                Some("text" | "json_object") => {}
                Some("json_schema") if rf.get("json_schema").is_some_and(Value::is_object) => {}
                _ => {
                    return Err(Error::invalid_param(
                        "response_format",
                        "response_format.type must be text, json_object or json_schema (with a json_schema object)",
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
