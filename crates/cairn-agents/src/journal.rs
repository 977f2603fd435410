//! The run journal's entries, typed, and the replay that turns a journal back into where a run
//! stands: what the model has seen, which tool calls are done, started or still to start, what
//! the run has spent, and what it should do next.
//!
//! This is the whole of durability for runs: a worker that picks a run up (first time or after
//! a crash) replays its journal and continues from `Replay::next`. Every model call and tool
//! result is journaled before anything acts on it, so replaying never repeats a model call, and
//! never repeats a tool call that finished. A call that was started but has no result is the
//! one ambiguity a crash leaves: it is made again only if its tool is idempotent (with the same
//! idempotency key, `run:step:call`); otherwise the run asks a person.

use std::collections::BTreeMap;

use cairn_core::openai::{ChatMessage, ChatRole, ToolCall};
use cairn_core::runs::{RunState, RunStep, StepKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{AgentSpec, RunLimits};

/// A model call's output: the assistant message (text and tool calls) and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// The assistant message.
    pub message: ChatMessage,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Whether the call was offered tools (a final call after a cap is not).
    pub tools_offered: bool,
}

/// A tool call about to be made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolStarted {
    /// The model's call id.
    pub call_id: String,
    /// The idempotency key sent to the tool's target: `run:step:call`.
    pub idempotency_key: String,
}

/// A tool call's outcome, given back to the model as the tool message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The model's call id.
    pub call_id: String,
    /// What the model reads (a result, or an error explained).
    pub content: String,
    /// Whether it is an error (bad arguments, the tool failed, a person rejected the call).
    pub is_error: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    /// The final state.
    pub state: RunState,
    /// Why (a cap, an error, a cancellation), for the caller.
    pub reason: Option<String>,
}

/// A cap a run reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// `max_steps` model calls.
    Steps,
    /// `max_tool_calls`.
    ToolCalls,
    /// `max_input_tokens`.
    InputTokens,
    /// `max_output_tokens`.
    OutputTokens,
    /// `max_cost_usd`.
    Cost,
    /// The same call `max_repeats` times in a row.
    Loop,
}

impl Cap {
    /// What the final message says stopped the run.
    pub fn reason(self) -> &'static str {
        match self {
            Cap::Steps => "the run reached its step limit",
            Cap::ToolCalls => "the run reached its tool call limit",
            Cap::InputTokens => "the run reached its input token limit",
            Cap::OutputTokens => "the run reached its output token limit",
            Cap::Cost => "the run reached its cost limit",
            Cap::Loop => "the run kept making the same tool call",
        }
    }
}

/// What a run does next, as its journal says.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Call the model, with tools unless `final_call` (a cap was reached: write the answer).
    CallModel {
        /// The cap that makes this the last call, if one does.
        final_call: Option<Cap>,
    },
    /// Make these calls (from the last model output, in order; none started yet).
    CallTools(Vec<ToolCall>),
    /// These calls were started and never finished (a crash): make them again only if their
    /// tools are idempotent, else ask a person.
    Resolve(Vec<ToolCall>),
    /// The run is over: the model answered, or a cap ended it without a final call.
    Finish {
        /// The answer, if the model gave one.
        answer: Option<String>,
        /// The cap that ended it, if one did.
        cap: Option<Cap>,
    },
    /// The journal says the run ended.
    Ended(RunState),
}

/// A run's state, rebuilt from its journal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// The conversation the run added to (assistant and tool messages), in order.
    pub messages: Vec<ChatMessage>,
    /// Model calls made.
    pub steps: u32,
    /// Tool calls finished.
    pub tool_calls: u32,
    /// Prompt tokens over the run.
    pub input_tokens: u64,
    /// Completion tokens over the run.
    pub output_tokens: u64,
    /// Cost over the run.
    pub cost_usd: f64,
    /// Calls of the last model output, by id, and whether each was started / finished.
    open: BTreeMap<String, (ToolCall, bool, bool)>,
    /// Order of the open calls.
    order: Vec<String>,
    /// The last model output's text, and whether it was a final call.
    last_answer: Option<(Option<String>, bool)>,
    /// The same call (name and arguments) in a row: how many times.
    repeats: (String, u32),
    ended: Option<RunState>,
}

/// A journal entry that does not read as its kind says.
#[derive(Debug, thiserror::Error)]
#[error("journal step {seq} ({kind:?}) does not read: {message}")]
pub struct CorruptStep {
    /// The step.
    pub seq: u64,
    /// Its kind.
    pub kind: StepKind,
    /// What is wrong.
    pub message: String,
}

fn read<T: for<'de> Deserialize<'de>>(step: &RunStep) -> Result<T, CorruptStep> {
    serde_json::from_value(step.payload.clone()).map_err(|e| CorruptStep {
        seq: step.seq,
        kind: step.kind,
        message: e.to_string(),
    })
}

impl Replay {
    /// Folds `steps` (the whole journal, in order) into the run's state.
    pub fn of(steps: &[RunStep]) -> Result<Replay, CorruptStep> {
        let mut r = Replay::default();
        for step in steps {
            r.apply(step)?;
        }
        Ok(r)
    }

    /// Applies one more journal entry.
    pub fn apply(&mut self, step: &RunStep) -> Result<(), CorruptStep> {
        match step.kind {
            StepKind::ModelOutput => {
                let out: ModelOutput = read(step)?;
                self.steps += 1;
                self.input_tokens += out.input_tokens;
                self.output_tokens += out.output_tokens;
                self.cost_usd += out.cost_usd;
                self.open.clear();
                self.order.clear();
                for call in out.message.tool_calls.iter().flatten() {
                    self.order.push(call.id.clone());
                    self.open.insert(call.id.clone(), (call.clone(), false, false));
                    let signature = format!("{}\u{0}{}", call.function.name, call.function.arguments);
                    if self.repeats.0 == signature {
                        self.repeats.1 += 1;
                    } else {
                        self.repeats = (signature, 1);
                    }
                }
                let text = out.message.content.as_ref().map(|_| out.message.text_content());
                self.last_answer = Some((text, !out.tools_offered));
                self.messages.push(out.message);
            }
            StepKind::ToolStarted => {
                let s: ToolStarted = read(step)?;
                if let Some(entry) = self.open.get_mut(&s.call_id) {
                    entry.1 = true;
                }
            }
            StepKind::ToolResult => {
                let res: ToolResult = read(step)?;
                if let Some(entry) = self.open.get_mut(&res.call_id) {
                    if !entry.2 {
                        entry.2 = true;
                        self.tool_calls += 1;
                        self.messages.push(ChatMessage {
                            tool_call_id: Some(res.call_id.clone()),
                            ..ChatMessage::text(ChatRole::Tool, res.content)
                        });
                    }
                }
            }
            StepKind::Ended => {
                let e: Ended = read(step)?;
                self.ended = Some(e.state);
            }
            // Pauses and answers are for the approvals and client tools to read; summaries
            // for the context window. Neither changes what is open.
            StepKind::ActionRequested | StepKind::ActionTaken | StepKind::Summary => {}
        }
        Ok(())
    }

    /// The last model output's calls that have no result yet, in order (a final call after a
    /// cap must first answer them, as "not run").
    pub fn unfinished(&self) -> Vec<ToolCall> {
        self.order
            .iter()
            .filter_map(|id| self.open.get(id))
            .filter(|(_, _, done)| !done)
            .map(|(c, _, _)| c.clone())
            .collect()
    }

    /// The first cap `limits` says the run has reached, if any.
    pub fn cap(&self, limits: &RunLimits) -> Option<Cap> {
        if self.repeats.1 >= limits.max_repeats {
            Some(Cap::Loop)
        } else if self.steps >= limits.max_steps {
            Some(Cap::Steps)
        } else if self.tool_calls >= limits.max_tool_calls && !self.open.is_empty() {
            Some(Cap::ToolCalls)
        } else if limits.max_input_tokens.is_some_and(|m| self.input_tokens >= m) {
            Some(Cap::InputTokens)
        } else if limits.max_output_tokens.is_some_and(|m| self.output_tokens >= m) {
            Some(Cap::OutputTokens)
        } else if limits.max_cost_usd.is_some_and(|m| self.cost_usd >= m) {
            Some(Cap::Cost)
        } else {
            None
        }
    }

    /// What the run does next under `spec`.
    pub fn next(&self, spec: &AgentSpec) -> Next {
        if let Some(state) = self.ended {
            return Next::Ended(state);
        }
        let Some((answer, was_final)) = &self.last_answer else {
            return Next::CallModel { final_call: None };
        };
        if *was_final {
            // The last call was the one a cap allowed: whatever it said is the answer.
            return Next::Finish { answer: answer.clone(), cap: self.cap(&spec.limits) };
        }
        let unfinished: Vec<&(ToolCall, bool, bool)> =
            self.order.iter().filter_map(|id| self.open.get(id)).filter(|(_, _, done)| !done).collect();
        if unfinished.is_empty() && self.order.is_empty() {
            // No tool calls: the model answered.
            return Next::Finish { answer: answer.clone(), cap: None };
        }
        if let Some(cap) = self.cap(&spec.limits) {
            // A cap stops the loop: one last call without tools writes the answer, unless the
            // cost cap itself is what was reached.
            return if cap == Cap::Cost {
                Next::Finish { answer: None, cap: Some(cap) }
            } else {
                Next::CallModel { final_call: Some(cap) }
            };
        }
        let started: Vec<ToolCall> = unfinished.iter().filter(|(_, s, _)| *s).map(|(c, _, _)| c.clone()).collect();
        if !started.is_empty() {
            return Next::Resolve(started);
        }
        if unfinished.is_empty() {
            return Next::CallModel { final_call: None };
        }
        Next::CallTools(unfinished.into_iter().map(|(c, _, _)| c.clone()).collect())
    }
}

/// The idempotency key of call `call_id` made at model step `step` of `run_id`.
pub fn idempotency_key(run_id: &str, step: u32, call_id: &str) -> String {
    format!("{run_id}:{step}:{call_id}")
}

/// A journal entry's payload as JSON (what `RunStore::append_step` stores).
pub fn payload<T: Serialize>(entry: &T) -> Value {
    serde_json::to_value(entry).unwrap_or(Value::Null)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
