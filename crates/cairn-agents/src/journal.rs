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
use cairn_core::runs::{RunState, RunStep, RunStore, StepKind};
use cairn_core::store::StoreResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actions::{ActionKind, ActionRequested, ActionTaken, PendingAction};
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
    /// The cap that made this the run's last call, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_for: Option<Cap>,
}

/// Where the run's input ends: the thread's messages up to `history_to` (the run's own input
/// included) are what the model reads before the run's own steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Started {
    /// The last thread message the run reads (0: none, or no thread).
    pub history_to: u64,
}

/// Older thread history replaced by a summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many of the oldest history messages it stands for.
    pub covers: usize,
    /// The summary the model reads instead.
    pub text: String,
    /// Prompt tokens of the summarising call.
    pub input_tokens: u64,
    /// Completion tokens of the summarising call.
    pub output_tokens: u64,
    /// Its cost in US dollars.
    pub cost_usd: f64,
}

/// Long-term memories given to the model before the run's first call: journaled, so a run
/// that resumes reads the same ones whatever was remembered since.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recalled {
    /// The memories' texts, most relevant first.
    pub memories: Vec<String>,
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
    /// Why it stopped short (a cap, a budget, an error, a cancellation), for the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The final answer (when a cap stopped the run, it says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// A cap a run reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// `max_wall_secs` since the run started, pauses not counted.
    WallTime,
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
            Cap::WallTime => "the run reached its time limit",
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
    /// The last model output's text, and the cap it was the final call for.
    last_answer: Option<(Option<String>, Option<Cap>)>,
    /// The same call (name and arguments) in a row: how many times.
    repeats: (String, u32),
    ended: Option<RunState>,
    /// Calls of the last model output the run paused on, by id.
    requested: BTreeMap<String, PendingAction>,
    /// Calls a person approved, with the arguments to use (`Some` when edited).
    approved: BTreeMap<String, Option<Value>>,
    /// When the last pause runs out (Unix ms).
    pub wait_until: Option<i64>,
    /// Set by the runner when the run is past its wall time: a cap like the others.
    pub out_of_time: bool,
    /// When the run started (its `Started` entry), Unix ms.
    pub started_at_ms: Option<i64>,
    /// Time spent waiting for people or clients, ms: not counted as the run's wall time.
    pub waited_ms: i64,
    /// When the open pause began, Unix ms.
    paused_since: Option<i64>,
    /// Where the run's thread history ends, once it started.
    pub history_to: Option<u64>,
    /// How it ended, once it did.
    pub end: Option<Ended>,
    /// The summary of older thread history, once written.
    pub summary: Option<Summary>,
    /// The memories recalled before the run, once recalled.
    pub recalled: Option<Recalled>,
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
                self.requested.clear();
                self.approved.clear();
                self.wait_until = None;
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
                self.last_answer = Some((text, out.final_for));
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
                self.settle(&res.call_id, res.content);
            }
            StepKind::ActionRequested => {
                let a: ActionRequested = read(step)?;
                self.wait_until = Some(a.expires_at_ms);
                self.paused_since.get_or_insert(step.created_at_ms);
                for item in a.items {
                    self.requested.insert(item.call_id.clone(), item);
                }
            }
            StepKind::ActionTaken => {
                let a: ActionTaken = read(step)?;
                match a.result() {
                    Some((content, _)) => self.settle(&a.call_id, content),
                    None => {
                        let args = match a.decision {
                            crate::actions::Decision::Edit { arguments } => Some(arguments),
                            _ => None,
                        };
                        self.approved.insert(a.call_id, args);
                    }
                }
                if self.waiting().is_empty() {
                    if let Some(since) = self.paused_since.take() {
                        self.waited_ms += (step.created_at_ms - since).max(0);
                    }
                }
            }
            StepKind::Started => {
                let s: Started = read(step)?;
                self.history_to = Some(s.history_to);
                self.started_at_ms = Some(step.created_at_ms);
            }
            StepKind::Ended => {
                let e: Ended = read(step)?;
                self.ended = Some(e.state);
                self.end = Some(e);
            }
            // A summary changes nothing that is open; its call counts toward the run's caps.
            StepKind::Summary => {
                let s: Summary = read(step)?;
                self.input_tokens += s.input_tokens;
                self.output_tokens += s.output_tokens;
                self.cost_usd += s.cost_usd;
                self.summary = Some(s);
            }
            StepKind::Recalled => self.recalled = Some(read(step)?),
        }
        Ok(())
    }

    /// Gives open call `call_id` its result (once).
    fn settle(&mut self, call_id: &str, content: String) {
        if let Some(entry) = self.open.get_mut(call_id) {
            if !entry.2 {
                entry.2 = true;
                self.tool_calls += 1;
                self.messages.push(ChatMessage {
                    tool_call_id: Some(call_id.to_owned()),
                    ..ChatMessage::text(ChatRole::Tool, content)
                });
            }
        }
    }

    /// Calls the run paused on that have no answer yet, in call order. An approval answers an
    /// approval; a client tool's call, approved, still waits for its output.
    pub fn waiting(&self) -> Vec<&PendingAction> {
        self.order
            .iter()
            .filter(|id| self.open.get(*id).is_some_and(|(_, _, done)| !done))
            .filter_map(|id| self.requested.get(id))
            .filter(|item| item.kind == ActionKind::ClientOutput || !self.approved.contains_key(&item.call_id))
            .collect()
    }

    /// Whether call `call_id` was approved, and with which arguments when they were edited.
    pub fn approval(&self, call_id: &str) -> Option<Option<&Value>> {
        self.approved.get(call_id).map(Option::as_ref)
    }

    /// Whether call `call_id` of the last model output is still open (no result, no answer
    /// that settles it).
    pub fn is_open(&self, call_id: &str) -> bool {
        self.open.get(call_id).is_some_and(|(_, _, done)| !done)
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
        } else if self.out_of_time {
            Some(Cap::WallTime)
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
        let Some((answer, final_call)) = &self.last_answer else {
            return Next::CallModel { final_call: None };
        };
        if let Some(cap) = final_call {
            // The last call was the one a cap allowed: whatever it said is the answer.
            return Next::Finish { answer: answer.clone(), cap: Some(*cap) };
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

/// Journal entries read per page.
const PAGE: u32 = 1000;

/// Run `id`'s whole journal, in order, read page by page.
pub async fn read_all(runs: &dyn RunStore, id: &str) -> StoreResult<Vec<RunStep>> {
    let mut steps: Vec<RunStep> = Vec::new();
    loop {
        let page = runs.list_steps(id, steps.last().map_or(0, |s| s.seq), PAGE).await?;
        let done = page.len() < PAGE as usize;
        steps.extend(page);
        if done {
            return Ok(steps);
        }
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
