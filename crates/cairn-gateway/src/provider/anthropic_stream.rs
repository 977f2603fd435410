//! Translates Anthropic's streaming events (`message_start`, `content_block_*`,
//! `message_delta`, `message_stop`, `error`) into OpenAI `chat.completion.chunk`s.

use cairn_core::openai::{
    ChatChunk, ChatRole, ChunkChoice, Delta, Extra, FunctionCallDelta, ToolCallDelta, Usage, UsageField,
};
use cairn_core::time::now_secs;
use serde_json::Value;

use super::anthropic::{finish_reason, input_tokens};
use super::ProviderError;

/// Per-stream state: ids, which content blocks are tool calls, and usage so far.
pub(crate) struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    /// Anthropic content-block index -> OpenAI tool-call index.
    tool_blocks: Vec<(u64, u32)>,
    input_tokens: u64,
    output_tokens: u64,
    stopped: bool,
}

impl StreamTranslator {
    /// A translator for a stream from `model`.
    pub(crate) fn new(model: &str) -> Self {
        Self {
            id: "chatcmpl-anthropic".into(),
            model: model.into(),
            created: now_secs(),
            tool_blocks: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish.map(str::to_owned), logprobs: None }],
            usage: UsageField::Absent,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }

    /// True once `message_stop` arrived: the stream is complete.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    /// Handles one SSE event; returns the chunks it produces (often none).
    pub(crate) fn on_event(&mut self, event: Option<&str>, data: &str) -> Vec<Result<ChatChunk, ProviderError>> {
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => return vec![Err(ProviderError::Protocol(format!("invalid JSON in stream: {e}")))],
        };
        let kind = event.or_else(|| v.get("type").and_then(Value::as_str)).unwrap_or_default();
        match kind {
            "message_start" => {
                let msg = &v["message"];
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    self.model = m.into();
                }
                self.input_tokens = input_tokens(&msg["usage"]);
                self.output_tokens = msg["usage"]["output_tokens"].as_u64().unwrap_or(0);
                let delta =
                    Delta { role: Some(ChatRole::Assistant), content: Some(String::new()), ..Default::default() };
                vec![Ok(self.chunk(delta, None))]
            }
            "content_block_start" => {
                let block = &v["content_block"];
                if block["type"] != "tool_use" {
                    return vec![];
                }
                let tool_index = self.tool_blocks.len() as u32;
                self.tool_blocks.push((v["index"].as_u64().unwrap_or(0), tool_index));
                let call = ToolCallDelta {
                    index: tool_index,
                    id: block["id"].as_str().map(str::to_owned),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: block["name"].as_str().map(str::to_owned),
                        arguments: Some(String::new()),
                    }),
                };
                vec![Ok(self.chunk(Delta { tool_calls: Some(vec![call]), ..Default::default() }, None))]
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let text = d["text"].as_str().unwrap_or_default().to_owned();
                        vec![Ok(self.chunk(Delta { content: Some(text), ..Default::default() }, None))]
                    }
                    Some("input_json_delta") => {
                        let block = v["index"].as_u64().unwrap_or(0);
                        let Some(&(_, tool_index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) else {
                            return vec![Err(ProviderError::Protocol("tool input for an unknown block".into()))];
                        };
                        let call = ToolCallDelta {
                            index: tool_index,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(d["partial_json"].as_str().unwrap_or_default().to_owned()),
                            }),
                            ..Default::default()
                        };
                        vec![Ok(self.chunk(Delta { tool_calls: Some(vec![call]), ..Default::default() }, None))]
                    }
                    _ => vec![], // thinking and signature deltas have no OpenAI equivalent
                }
            }
            "message_delta" => {
                if let Some(out) = v["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = out;
                }
                match v["delta"]["stop_reason"].as_str() {
                    Some(reason) => {
                        vec![Ok(self.chunk(Delta::default(), Some(finish_reason(reason))))]
                    }
                    None => vec![],
                }
            }
            "message_stop" => {
                self.stopped = true;
                let mut last = self.chunk(Delta::default(), None);
                last.choices.clear();
                last.usage = UsageField::Some(Usage::new(self.input_tokens, self.output_tokens));
                vec![Ok(last)]
            }
            "error" => {
                let err = &v["error"];
                let status = if err["type"] == "overloaded_error" { 529 } else { 502 };
                let message = err["message"].as_str().unwrap_or("upstream error in stream").to_owned();
                vec![Err(ProviderError::Status { status, message, retry_after: None })]
            }
            _ => vec![], // ping, content_block_stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_a_tool_use_stream() {
        let mut t = StreamTranslator::new("claude");
        let events = [
            (
                "message_start",
                r#"{"message":{"id":"m1","model":"claude-x","usage":{"input_tokens":12,"output_tokens":1}}}"#,
            ),
            ("content_block_start", r#"{"index":0,"content_block":{"type":"text","text":""}}"#),
            ("content_block_delta", r#"{"index":0,"delta":{"type":"text_delta","text":"Let me check."}}"#),
            ("content_block_start", r#"{"index":1,"content_block":{"type":"tool_use","id":"tu1","name":"get"}}"#),
            ("content_block_delta", r#"{"index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}}"#),
            ("content_block_delta", r#"{"index":1,"delta":{"type":"input_json_delta","partial_json":"ty\":1}"}}"#),
            ("message_delta", r#"{"delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}"#),
            ("message_stop", r#"{}"#),
        ];
        let chunks: Vec<ChatChunk> =
            events.iter().flat_map(|(e, d)| t.on_event(Some(e), d)).map(Result::unwrap).collect();
        assert_eq!(chunks[0].id, "chatcmpl-m1");
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Let me check."));
        let first_call = &chunks[2].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!((first_call.index, first_call.id.as_deref()), (0, Some("tu1")));
        let args: String = chunks[3..5]
            .iter()
            .map(|c| {
                c.choices[0].delta.tool_calls.as_ref().unwrap()[0].function.as_ref().unwrap().arguments.clone().unwrap()
            })
            .collect();
        assert_eq!(args, "{\"city\":1}");
        assert_eq!(chunks[5].choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(chunks[6].usage.as_ref().unwrap(), &Usage::new(12, 30));
    }

    #[test]
    fn error_events_become_errors() {
        let mut t = StreamTranslator::new("c");
        let out = t.on_event(Some("error"), r#"{"error":{"type":"overloaded_error","message":"busy"}}"#);
        assert!(matches!(&out[0], Err(ProviderError::Status { status: 529, .. })));
        assert!(t.on_event(None, "{not json").pop().unwrap().is_err());
    }
}
