//! Threads, runs and the run journal, as storage sees them.
//!
//! A thread is an append-only conversation. A run executes an agent version on a thread (or on
//! a one-off input) and writes its journal: one row per step (a model output, a tool call
//! started, its result, an approval asked or given), each holding only what that step added,
//! never a copy of the history, so a run's storage grows linearly with its steps. Appending
//! is a compare-and-set on the journal's length: a worker that lost its run to another cannot
//! append after it, and a run resumed from its journal repeats nothing that was journaled.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::jobs::{Job, NewJob};
use crate::openai::ChatMessage;
use crate::store::StoreResult;

/// Where a run is. `succeeded`, `failed`, `cancelled` and `expired` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker is stepping it.
    Running,
    /// Waiting for a person (approvals) or the client (client tool outputs).
    RequiresAction,
    /// Ended with a final answer (also when a cap stopped it gracefully).
    Succeeded,
    /// Ended by an error it could not recover from.
    Failed,
    /// Cancelled by a caller.
    Cancelled,
    /// Waited for action longer than allowed.
    Expired,
}

impl RunState {
    /// Every state, in lifecycle order.
    pub const ALL: [RunState; 7] = [
        RunState::Queued,
        RunState::Running,
        RunState::RequiresAction,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Expired,
    ];

    /// The name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::RequiresAction => "requires_action",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Expired => "expired",
        }
    }

    /// True for states a run never leaves.
    pub fn is_final(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::Cancelled | RunState::Expired)
    }
}

impl std::str::FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown run state '{s}'"))
    }
}

/// What one journal entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The run started: where its thread's history ends.
    Started,
    /// A model call's output (text and tool calls), with its usage.
    ModelOutput,
    /// A tool call about to be made (its arguments and idempotency key).
    ToolStarted,
    /// A tool call's result (or error), given back to the model.
    ToolResult,
    /// The run paused for a person or the client.
    ActionRequested,
    /// A person's or the client's answer.
    ActionTaken,
    /// Older turns summarised to fit the context window.
    Summary,
    /// Long-term memories recalled before the run's first model call.
    Recalled,
    /// The run ended: its final state and why.
    Ended,
}

impl StepKind {
    /// Every kind.
    pub const ALL: [StepKind; 9] = [
        StepKind::Started,
        StepKind::ModelOutput,
        StepKind::ToolStarted,
        StepKind::ToolResult,
        StepKind::ActionRequested,
        StepKind::ActionTaken,
        StepKind::Summary,
        StepKind::Recalled,
        StepKind::Ended,
    ];

    /// The name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Started => "started",
            StepKind::ModelOutput => "model_output",
            StepKind::ToolStarted => "tool_started",
            StepKind::ToolResult => "tool_result",
            StepKind::ActionRequested => "action_requested",
            StepKind::ActionTaken => "action_taken",
            StepKind::Summary => "summary",
            StepKind::Recalled => "recalled",
            StepKind::Ended => "ended",
        }
    }
}

impl std::str::FromStr for StepKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown step kind '{s}'"))
    }
}

/// A conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Thread {
    /// `thr_...`.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// The caller's own data about it.
    pub metadata: Value,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// One message of a thread, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadMessage {
    /// Its thread.
    pub thread_id: String,
    /// Position in the thread, from 1.
    pub seq: u64,
    /// The message, in the chat format.
    pub message: ChatMessage,
    /// The run that wrote it (none for messages a caller added).
    pub run_id: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// An agent run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// `run_...`.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// The key its model calls are charged to.
    pub key_id: String,
    /// The agent.
    pub agent_id: String,
    /// The agent version it pinned at start.
    pub agent_version: u32,
    /// Its thread, if it runs on one.
    pub thread_id: Option<String>,
    /// The one-off input or the options it was started with.
    pub input: Value,
    /// Where it is.
    pub state: RunState,
    /// Journal entries so far.
    pub steps: u64,
    /// Why it failed, was cancelled or expired.
    pub error: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Last state change or journal entry, Unix ms.
    pub updated_at_ms: i64,
}

/// One journal entry of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStep {
    /// Its run.
    pub run_id: String,
    /// Position in the journal, from 1.
    pub seq: u64,
    /// What it records.
    pub kind: StepKind,
    /// What the step added (only that).
    pub payload: Value,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// Entries for one run's journal: they go in as steps `expected + 1`, `expected + 2`, ...,
/// only if the journal holds exactly `expected` steps and the run has not ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Append {
    /// The run.
    pub run_id: String,
    /// The journal's length the writer read.
    pub expected: u64,
    /// What each entry records, in order.
    pub entries: Vec<(StepKind, Value)>,
    /// Unix ms.
    pub now_ms: i64,
}

/// What a new run does when its thread already has one that has not ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyThread {
    /// Refuse the new run (`Conflict`).
    Refuse,
    /// Store it queued; it starts when the thread is free.
    Queue,
}

/// Threads, runs and run journals.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Inserts a thread with its first `messages` (numbered from 1), in one transaction.
    async fn create_thread(&self, thread: &Thread, messages: &[ChatMessage]) -> StoreResult<Vec<ThreadMessage>>;
    /// One thread.
    async fn get_thread(&self, id: &str) -> StoreResult<Option<Thread>>;
    /// Appends `messages` to thread `id` in one transaction, numbering them after its last;
    /// returns them as stored.
    async fn append_messages(
        &self,
        id: &str,
        messages: &[ChatMessage],
        run_id: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Vec<ThreadMessage>>;
    /// A thread's messages after `after_seq`, oldest first, at most `limit`.
    async fn list_messages(&self, id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<ThreadMessage>>;
    /// Inserts `run` (state `queued`) and, when it may start now, `job` (the job that steps
    /// it), returning the job as stored. With a thread that has a run not yet ended, `busy`
    /// decides: `Refuse` fails with `Conflict`, `Queue` stores the run without its job (it
    /// starts when the runs before it end). Decided in one transaction, so two runs racing for
    /// a free thread cannot both pass `Refuse`.
    async fn create_run(&self, run: &Run, busy: BusyThread, job: &NewJob) -> StoreResult<Option<(Job, bool)>>;
    /// One run.
    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>>;
    /// Runs of `tenant` (`None`: every tenant's), newest first, in `state` when given, with
    /// ids below `before` when given, at most `limit`.
    async fn list_runs(
        &self,
        tenant: Option<&str>,
        state: Option<RunState>,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Run>>;
    /// The oldest run on `thread_id` that has not ended, if any (the one that may go now).
    async fn thread_head(&self, thread_id: &str) -> StoreResult<Option<Run>>;
    /// Moves run `id` to `to` if it is in one of `from` (compare-and-set); returns the run as
    /// stored after, or `None` when it was in another state (or is missing).
    async fn set_run_state(
        &self,
        id: &str,
        from: &[RunState],
        to: RunState,
        error: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Option<Run>>;
    /// Appends each of `appends` (see `Append`); for each, whether it went in. Each is judged
    /// against the journals as they stood before the call, and goes in whole or not at all;
    /// one that does not (its run moved on or ended) stops no other.
    async fn append_many(&self, appends: &[Append]) -> StoreResult<Vec<bool>>;
    /// Appends `entries` as steps `expected + 1`, `expected + 2`, ... to run `id`'s journal,
    /// all or none, if it holds exactly `expected` steps and has not ended; false otherwise
    /// (another worker appended, or the run ended).
    async fn append_steps(
        &self,
        id: &str,
        expected: u64,
        entries: &[(StepKind, Value)],
        now_ms: i64,
    ) -> StoreResult<bool> {
        let append = Append { run_id: id.to_owned(), expected, entries: entries.to_vec(), now_ms };
        Ok(self.append_many(std::slice::from_ref(&append)).await?.first().copied().unwrap_or(false))
    }
    /// Appends one step (see `append_steps`).
    async fn append_step(
        &self,
        id: &str,
        expected: u64,
        kind: StepKind,
        payload: &Value,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.append_steps(id, expected, &[(kind, payload.clone())], now_ms).await
    }
    /// A run's journal after `after_seq`, in order, at most `limit`.
    async fn list_steps(&self, id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<RunStep>>;
}
