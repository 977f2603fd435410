//! Folds a streamed chat completion back into one assistant message and its usage, passing
//! each text delta on as it comes.

use cairn_core::openai::{ChatChunk, ChatMessage, ChatRole, FunctionCall, MessageContent, ToolCall, Usage};

/// A streamed answer as it accumulates.
#[derive(Default)]
pub struct Folded {
    text: String,
    saw_text: bool,
    calls: Vec<ToolCall>,
    /// The last usage the stream reported.
    pub usage: Option<Usage>,
}

impl Folded {
    /// Adds `chunk`; returns the text it added, if any.
    pub fn add(&mut self, chunk: &ChatChunk) -> Option<String> {
        if let Some(u) = chunk.usage.as_ref() {
            self.usage = Some(u.clone());
        }
        let mut added = None;
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(text) = &choice.delta.content {
                self.saw_text = true;
                self.text.push_str(text);
                if !text.is_empty() {
                    added = Some(text.clone());
                }
            }
            for d in choice.delta.tool_calls.iter().flatten() {
                let at = d.index as usize;
                while self.calls.len() <= at {
                    self.calls.push(ToolCall {
                        id: String::new(),
                        kind: "function".into(),
                        function: FunctionCall { name: String::new(), arguments: String::new() },
                    });
                }
                let call = &mut self.calls[at];
                if let Some(id) = &d.id {
                    call.id.clone_from(id);
                }
                if let Some(f) = &d.function {
                    if let Some(name) = &f.name {
                        call.function.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        call.function.arguments.push_str(args);
                    }
                }
            }
        }
        added
    }

    /// The assistant message. Calls the upstream sent without an id get one, so their results
    /// can name them.
    pub fn message(mut self) -> ChatMessage {
        for (i, call) in self.calls.iter_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{i}");
            }
        }
        ChatMessage {
            content: (self.saw_text || self.calls.is_empty()).then_some(MessageContent::Text(self.text)),
            tool_calls: (!self.calls.is_empty()).then_some(self.calls),
            ..ChatMessage::text(ChatRole::Assistant, "")
        }
    }
}
