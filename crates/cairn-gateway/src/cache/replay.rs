//! Turning a stored completion into a stream and a stream into a completion: a streamed miss
//! is stored whole (so a later non-streaming request can hit it), and a streamed request that
//! hits gets the stored completion back as server-sent chunks in OpenAI's shape.

use std::collections::BTreeMap;

use cairn_core::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRole, ChatStream, Choice, ChunkChoice, Delta, Extra, FunctionCall,
    FunctionCallDelta, MessageContent, StreamEvent, ToolCall, ToolCallDelta, Usage, UsageField,
};

/// The stored completion `c` as a stream: per choice one chunk with the whole message, one
/// with its finish reason, then (when asked) the usage chunk, then `[DONE]`.
pub(crate) fn replay(c: ChatCompletion, wants_usage: bool) -> ChatStream {
    let chunk = |choices: Vec<ChunkChoice>, usage: UsageField| ChatChunk {
        id: c.id.clone(),
        object: "chat.completion.chunk".into(),
        created: c.created,
        model: c.model.clone(),
        choices,
        usage,
        system_fingerprint: c.system_fingerprint.clone(),
        extra: Extra::new(),
    };
    let on_content = if wants_usage { UsageField::Null } else { UsageField::Absent };
    let mut events = Vec::new();
    for choice in &c.choices {
        let m = &choice.message;
        let tool_calls = m.tool_calls.as_ref().map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, tc)| ToolCallDelta {
                    index: i as u32,
                    id: Some(tc.id.clone()),
                    kind: Some(tc.kind.clone()),
                    function: Some(FunctionCallDelta {
                        name: Some(tc.function.name.clone()),
                        arguments: Some(tc.function.arguments.clone()),
                    }),
                })
                .collect()
        });
        let content = m.content.is_some().then(|| m.text_content());
        let delta = Delta { role: Some(ChatRole::Assistant), content, tool_calls, extra: m.extra.clone() };
        let body = ChunkChoice { index: choice.index, delta, finish_reason: None, logprobs: None };
        events.push(chunk(vec![body], on_content.clone()));
        let end = ChunkChoice {
            index: choice.index,
            delta: Delta::default(),
            finish_reason: choice.finish_reason.clone(),
            logprobs: None,
        };
        events.push(chunk(vec![end], on_content.clone()));
    }
    if wants_usage {
        let usage = c.usage.clone().unwrap_or_default();
        events.push(chunk(Vec::new(), UsageField::Some(usage)));
    }
    let events = events.into_iter().map(|c| StreamEvent::Chunk(Box::new(c))).chain([StreamEvent::Done]);
    Box::pin(futures::stream::iter(events))
}

/// Builds the completion a stream amounts to, chunk by chunk. Streams it cannot rebuild
/// faithfully (log probabilities, fields of deltas it does not know) are marked unstorable.
#[derive(Default)]
pub(crate) struct Assembler {
    first: Option<ChatChunk>,
    choices: BTreeMap<u32, Partial>,
    usage: Option<Usage>,
    unstorable: bool,
}

#[derive(Default)]
struct Partial {
    content: Option<String>,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<String>,
}

impl Assembler {
    /// Adds one upstream chunk.
    pub(crate) fn push(&mut self, chunk: &ChatChunk) {
        if self.first.is_none() {
            self.first = Some(ChatChunk { choices: Vec::new(), usage: UsageField::Absent, ..chunk.clone() });
        }
        if let Some(u) = chunk.usage.as_ref() {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let known_extra = c.delta.extra.values().all(serde_json::Value::is_null);
            if c.logprobs.as_ref().is_some_and(|l| !l.is_null()) || !known_extra {
                self.unstorable = true;
            }
            let p = self.choices.entry(c.index).or_default();
            if let Some(text) = &c.delta.content {
                p.content.get_or_insert_with(String::new).push_str(text);
            }
            for d in c.delta.tool_calls.iter().flatten() {
                let tc = p.tool_calls.entry(d.index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    kind: "function".into(),
                    function: FunctionCall { name: String::new(), arguments: String::new() },
                });
                if let Some(id) = &d.id {
                    tc.id.clone_from(id);
                }
                if let Some(kind) = &d.kind {
                    tc.kind.clone_from(kind);
                }
                if let Some(f) = &d.function {
                    tc.function.name.push_str(f.name.as_deref().unwrap_or_default());
                    tc.function.arguments.push_str(f.arguments.as_deref().unwrap_or_default());
                }
            }
            if c.finish_reason.is_some() {
                p.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    /// The whole completion, with `usage` as the call was accounted; `None` when the stream
    /// cannot be stored.
    pub(crate) fn finish(self, usage: Usage) -> Option<ChatCompletion> {
        let first = self.first?;
        if self.unstorable || self.choices.is_empty() {
            return None;
        }
        let choices = self
            .choices
            .into_iter()
            .map(|(index, p)| {
                let tool_calls = (!p.tool_calls.is_empty()).then(|| p.tool_calls.into_values().collect());
                let message = ChatMessage {
                    role: ChatRole::Assistant,
                    content: p.content.map(MessageContent::Text),
                    name: None,
                    tool_calls,
                    tool_call_id: None,
                    extra: Extra::new(),
                };
                Choice { index, message, finish_reason: p.finish_reason, logprobs: None }
            })
            .collect();
        Some(ChatCompletion {
            id: first.id,
            object: "chat.completion".into(),
            created: first.created,
            model: first.model,
            choices,
            usage: Some(self.usage.unwrap_or(usage)),
            system_fingerprint: first.system_fingerprint,
            extra: Extra::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    fn chunk(v: serde_json::Value) -> ChatChunk {
        serde_json::from_value(v).expect("chunk")
    }

    #[tokio::test]
    async fn a_stream_assembles_into_the_completion_that_replays_as_the_same_stream() {
        let base = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up"});
        let with = |choices: serde_json::Value| {
            let mut c = base.clone();
            c["choices"] = choices;
            chunk(c)
        };
        let mut a = Assembler::default();
        a.push(&with(json!([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}])));
        a.push(&with(json!([{"index": 0, "delta": {"content": "lo"}, "finish_reason": null}])));
        a.push(&with(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t1", "type": "function",
            "function": {"name": "get_", "arguments": "{\"a\""}}]}, "finish_reason": null}])));
        a.push(&with(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "time", "arguments": ":1}"}}]},
            "finish_reason": "tool_calls"}])));
        let c = a.finish(Usage::new(3, 4)).expect("storable");
        let m = &c.choices[0].message;
        assert_eq!(m.text_content(), "Hello");
        let tc = &m.tool_calls.as_ref().expect("calls")[0];
        assert_eq!(
            (tc.id.as_str(), tc.function.name.as_str(), tc.function.arguments.as_str()),
            ("t1", "get_time", "{\"a\":1}")
        );
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.usage.as_ref().map(|u| u.total_tokens), Some(7));

        let events: Vec<StreamEvent> = replay(c.clone(), true).collect().await;
        let mut again = Assembler::default();
        let mut saw_usage = false;
        for ev in &events[..events.len() - 1] {
            let StreamEvent::Chunk(ch) = ev else { panic!("only chunks before the end") };
            saw_usage |= ch.choices.is_empty() && ch.usage.as_ref().is_some();
            again.push(ch);
        }
        assert!(saw_usage && matches!(events.last(), Some(StreamEvent::Done)));
        let back = again.finish(Usage::default()).expect("storable");
        assert_eq!(serde_json::to_value(&back).ok(), serde_json::to_value(&c).ok());
    }

    #[test]
    fn streams_with_logprobs_or_unknown_delta_fields_are_not_stored() {
        let mut a = Assembler::default();
        a.push(&chunk(json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": null, "logprobs": {"content": []}}]})));
        assert!(a.finish(Usage::default()).is_none());
        let mut b = Assembler::default();
        b.push(&chunk(json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"refusal": "no"}, "finish_reason": "stop"}]})));
        assert!(b.finish(Usage::default()).is_none());
        assert!(Assembler::default().finish(Usage::default()).is_none());
    }
}
