//! The runs service: start a run, read it (its state, usage, what it waits on, its answer),
//! read its journal, cancel it, and answer what it waits on. Tenant and role checks live here;
//! the stepping itself is the runner's.

mod answer;
mod list;

use std::sync::Arc;

use cairn_core::runs::{BusyThread, Run, RunState, RunStep, StepKind};
use cairn_core::tenancy::{Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::{CallContext, Error, Result};
use cairn_jobs::EnqueueRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::actions::{Decision, PendingAction};
use crate::events::{RunHub, RunNews};
use crate::journal::Replay;
use crate::runner::Runtime;
use crate::spec::AgentSpec;
use crate::threads::{checked, NewMessage};

pub use list::{RunListRequest, RunPage};

/// How long after a cancel the job that makes sure the thread's next run starts waits.
const CANCEL_SWEEP_MS: i64 = 10_000;
/// Most journal entries one page lists.
pub const MAX_STEPS_PAGE: u32 = 1000;

/// What a run does when its thread is busy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfBusy {
    /// Refuse it (409).
    #[default]
    Refuse,
    /// Queue it: it starts when the runs before it on the thread end.
    Queue,
}

/// Body of `POST /v1/runs`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The agent (`agt_...`); the run pins its latest version.
    #[schema(min_length = 1, max_length = 200)]
    pub agent_id: String,
    /// The thread to run on (of the agent's tenant); without one the run is one-off.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub thread_id: Option<String>,
    /// New messages: added to the thread when the run starts, or the whole input of a one-off
    /// run (which needs at least one). At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub messages: Vec<NewMessage>,
    /// When the thread has a run that has not ended: refuse (default) or queue.
    #[serde(default)]
    pub if_busy: IfBusy,
    /// Whom the run is for: scopes the agent's long-term memory (1-200 characters; default:
    /// none, a memory of its own).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub end_user: Option<String>,
}

/// What a run has used so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct RunUsage {
    /// Model calls.
    pub model_calls: u32,
    /// Tool calls answered.
    pub tool_calls: u32,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// A run as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RunView {
    /// `run_...`.
    pub id: String,
    /// Always `run`.
    pub object: &'static str,
    /// Owner.
    pub tenant_id: String,
    /// The agent.
    pub agent_id: String,
    /// The agent version it pinned.
    pub agent_version: u32,
    /// Its thread, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Where it is.
    pub state: RunState,
    /// Journal entries so far.
    pub steps: u64,
    /// What it used.
    pub usage: RunUsage,
    /// The calls it waits on (state `requires_action`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingAction>,
    /// When the wait runs out, Unix ms (state `requires_action`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// The final answer, once it ended with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Why it stopped short or failed (a cap, a budget, an error, a cancellation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms.
    pub updated_at_ms: i64,
}

/// One journal entry as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StepView {
    /// Position, from 1 (the SSE event id).
    pub seq: u64,
    /// What it records.
    pub kind: StepKind,
    /// What the step added.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// A page of a run's journal.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StepPage {
    /// Always `list`.
    pub object: &'static str,
    /// The entries.
    pub data: Vec<StepView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// The four answers a person can give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Make the call as written.
    Approve,
    /// Do not make it; the model reads `message`.
    Reject,
    /// Make it with `arguments` instead.
    Edit,
    /// Do not make it; the model reads `output` as its result.
    Respond,
}

/// One answer to a call a run waits on.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionAnswer {
    /// The call (`pending[].call_id`).
    #[schema(min_length = 1, max_length = 200)]
    pub call_id: String,
    /// The answer.
    pub decision: DecisionKind,
    /// With `reject`: why, for the model.
    #[serde(default)]
    #[schema(max_length = 262144)]
    pub message: Option<String>,
    /// With `edit`: the new arguments (checked against the tool's schema).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<Value>,
    /// With `respond`: the result the model reads.
    #[serde(default)]
    #[schema(max_length = 262144)]
    pub output: Option<String>,
}

impl ActionAnswer {
    /// The decision, when the fields fit it.
    fn decision(&self, at: &dyn Fn(&str) -> String) -> Result<Decision> {
        let extra = |field: &str, set: bool| {
            if set {
                Err(Error::invalid_param(at(field), format!("'{field}' does not go with this decision")))
            } else {
                Ok(())
            }
        };
        match self.decision {
            DecisionKind::Approve => {
                extra("message", self.message.is_some())?;
                extra("arguments", self.arguments.is_some())?;
                extra("output", self.output.is_some())?;
                Ok(Decision::Approve)
            }
            DecisionKind::Reject => {
                extra("arguments", self.arguments.is_some())?;
                extra("output", self.output.is_some())?;
                Ok(Decision::Reject { message: self.message.clone() })
            }
            DecisionKind::Edit => {
                extra("message", self.message.is_some())?;
                extra("output", self.output.is_some())?;
                let arguments = self
                    .arguments
                    .clone()
                    .ok_or_else(|| Error::invalid_param(at("arguments"), "edit needs arguments"))?;
                Ok(Decision::Edit { arguments })
            }
            DecisionKind::Respond => {
                extra("message", self.message.is_some())?;
                extra("arguments", self.arguments.is_some())?;
                let output =
                    self.output.clone().ok_or_else(|| Error::invalid_param(at("output"), "respond needs an output"))?;
                Ok(Decision::Respond { output })
            }
        }
    }
}

/// Body of `POST /v1/runs/{id}/approvals`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// One answer per call (1-100).
    #[schema(min_items = 1, max_items = 100)]
    pub answers: Vec<ActionAnswer>,
}

/// A client tool's output.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolOutput {
    /// The call (`pending[].call_id`).
    #[schema(min_length = 1, max_length = 200)]
    pub call_id: String,
    /// What the tool returned (at most 262,144 characters).
    #[schema(max_length = 262144)]
    pub output: String,
}

/// Body of `POST /v1/runs/{id}/tool_outputs`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolOutputs {
    /// One output per call (1-100).
    #[schema(min_items = 1, max_items = 100)]
    pub outputs: Vec<ToolOutput>,
}

/// Runs for the API and the CLI.
pub struct RunService {
    rt: Arc<Runtime>,
}

impl RunService {
    /// A service over the runtime `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }

    /// The live news hub (for event streams).
    pub fn hub(&self) -> &RunHub {
        &self.rt.hub
    }

    /// Starts agent `req.agent_id` on a thread or a one-off input; the run is queued and a
    /// worker steps it, in the trace of `ctx`'s request.
    pub async fn create(&self, ctx: &CallContext, req: CreateRun) -> Result<RunView> {
        let caller = &ctx.principal;
        caller.require(Role::Member)?;
        let agent = self.agent(caller, &req.agent_id).await?;
        let spec: AgentSpec = serde_json::from_value(agent.spec.clone())
            .map_err(|e| Error::Internal(format!("stored definition of agent '{}': {e}", agent.id)))?;
        if let Some(kind) = self.rt.tools.missing(&spec) {
            return Err(Error::invalid_param(
                "agent_id",
                format!("the agent has a '{}' tool, which this server cannot run yet", kind.as_str()),
            ));
        }
        if let Some(thread_id) = &req.thread_id {
            match self.rt.runs.get_thread(thread_id).await? {
                Some(t) if t.tenant_id == agent.tenant_id && caller.sees(&t.tenant_id) => {}
                _ => return Err(Error::NotFound(format!("thread '{thread_id}' does not exist"))),
            }
        } else if req.messages.is_empty() {
            return Err(Error::invalid_param("messages", "a run without a thread needs at least one message"));
        }
        if spec.memory.is_none() && spec.tools.values().any(|t| t.kind == crate::spec::ToolKind::Memory) {
            return Err(Error::invalid_param("agent_id", "the agent has a memory tool but no memory settings"));
        }
        if req.end_user.as_ref().is_some_and(|u| u.is_empty() || u.chars().count() > 200) {
            return Err(Error::invalid_param("end_user", "end_user has 1 to 200 characters"));
        }
        let messages = checked(req.messages, true)?;
        let now = now_ms();
        let run = Run {
            id: format!("run_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: agent.tenant_id.clone(),
            key_id: caller.key_id.clone(),
            agent_id: agent.id.clone(),
            agent_version: agent.version,
            thread_id: req.thread_id,
            input: json!({ "messages": messages, "end_user": req.end_user }),
            state: RunState::Queued,
            steps: 0,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let busy = match req.if_busy {
            IfBusy::Refuse => BusyThread::Refuse,
            IfBusy::Queue => BusyThread::Queue,
        };
        let job = EnqueueRequest { trace: Some(ctx.trace), ..self.rt.job_for(&run, "start", None, false) };
        let new_job = self.rt.jobs.prepare_internal(caller, vec![job])?.pop();
        let new_job = new_job.ok_or_else(|| Error::Internal("no job prepared for the run".into()))?;
        let stored = self.rt.runs.create_run(&run, busy, &new_job).await.map_err(|e| match Error::from(e) {
            Error::Conflict(m) => Error::Conflict(format!("{m}: send if_busy=queue to queue behind it")),
            other => other,
        })?;
        if let Some(stored) = stored {
            self.rt.jobs.announce(&[stored]);
        }
        view(run, &Replay::default())
    }

    /// Run `id`.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<RunView> {
        let run = self.visible(caller, id).await?;
        let replay = self.replay(&run).await?;
        view(run, &replay)
    }

    /// Run `id`'s feed after journal entry `after` (see `feed`).
    pub async fn watch(
        &self,
        caller: &Principal,
        id: &str,
        after: u64,
    ) -> Result<futures::stream::BoxStream<'static, crate::feed::FeedItem>> {
        // Subscribed before the first read, so no news falls between.
        let news = self.rt.hub.subscribe();
        self.visible(caller, id).await?;
        Ok(crate::feed::feed(self.rt.runs.clone(), news, id.to_owned(), after))
    }

    /// Run `id`'s journal after `after`, `limit` (1-1000, default 100) a page.
    pub async fn steps(
        &self,
        caller: &Principal,
        id: &str,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<StepPage> {
        self.visible(caller, id).await?;
        let limit = limit.unwrap_or(100);
        if !(1..=MAX_STEPS_PAGE).contains(&limit) {
            return Err(Error::invalid_param("limit", format!("limit must be between 1 and {MAX_STEPS_PAGE}")));
        }
        let mut rows = self.rt.runs.list_steps(id, after.unwrap_or(0), limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_after = more.then(|| rows.last().map(|s| s.seq)).flatten();
        Ok(StepPage { object: "list", data: rows.into_iter().map(step_view).collect(), next_after })
    }

    /// Cancels run `id` if it has not ended (`Conflict` otherwise); a model or tool call in
    /// flight on this node stops at once, on another at its next journal entry.
    pub async fn cancel(&self, caller: &Principal, id: &str) -> Result<RunView> {
        caller.require(Role::Member)?;
        let run = self.visible(caller, id).await?;
        let open = [RunState::Queued, RunState::Running, RunState::RequiresAction];
        let why = format!("cancelled by key {}", caller.key_id);
        if run.thread_id.is_some() && !run.state.is_final() {
            // The next run on the thread starts below; should this process die first, this job
            // (enqueued before the state changes) finds the run ended and starts it.
            let later = self.rt.job_for(&run, "cancel", Some(now_ms() + CANCEL_SWEEP_MS), false);
            self.rt.enqueue(&run, later).await?;
        }
        let Some(run) = self.rt.runs.set_run_state(id, &open, RunState::Cancelled, Some(&why), now_ms()).await? else {
            return Err(Error::Conflict(format!("run '{id}' already ended ({})", run.state.as_str())));
        };
        self.rt.hub.cancel(id);
        self.rt.hub.publish(id, RunNews::Appended(run.steps));
        self.rt.next_on_thread(&run).await?;
        let replay = self.replay(&run).await?;
        view(run, &replay)
    }

    /// Answers approvals (and unresolved calls) of run `id`; the run's next steps join the
    /// trace of `ctx` (the answering request).
    pub async fn approve(&self, ctx: &CallContext, id: &str, req: Approvals) -> Result<RunView> {
        self.answer(ctx, id, req.answers, false).await
    }

    /// Posts client tool outputs to run `id` (its next steps join the trace of `ctx`).
    pub async fn tool_outputs(&self, ctx: &CallContext, id: &str, req: ToolOutputs) -> Result<RunView> {
        let answers = req
            .outputs
            .into_iter()
            .map(|o| ActionAnswer {
                call_id: o.call_id,
                decision: DecisionKind::Respond,
                message: None,
                arguments: None,
                output: Some(o.output),
            })
            .collect();
        self.answer(ctx, id, answers, true).await
    }

    /// Agent `agent_id`'s memories (of `end_user`, when given), newest first.
    pub async fn memories(
        &self,
        caller: &Principal,
        agent_id: &str,
        end_user: Option<&str>,
    ) -> Result<Vec<crate::ports::MemoryItem>> {
        let agent = self.agent(caller, agent_id).await?;
        self.rt.memories.list(caller, &agent.tenant_id, &agent.id, end_user).await
    }

    /// Deletes memory `id` of agent `agent_id`.
    pub async fn forget(&self, caller: &Principal, agent_id: &str, id: &str) -> Result<()> {
        caller.require(Role::Member)?;
        let agent = self.agent(caller, agent_id).await?;
        self.rt.memories.forget(caller, &agent.tenant_id, &agent.id, id).await
    }

    /// Agent `id` if the caller may see it.
    async fn agent(&self, caller: &Principal, id: &str) -> Result<cairn_core::agents::Agent> {
        caller.require(Role::Reader)?;
        match self.rt.agents.get_agent(id).await? {
            Some(a) if caller.sees(&a.tenant_id) => Ok(a),
            _ => Err(Error::NotFound(format!("agent '{id}' does not exist"))),
        }
    }

    async fn spec(&self, run: &Run) -> Result<AgentSpec> {
        let version = self
            .rt
            .agents
            .get_agent_version(&run.agent_id, run.agent_version)
            .await?
            .ok_or_else(|| Error::Internal(format!("agent version of run '{}' is missing", run.id)))?;
        serde_json::from_value(version.spec).map_err(|e| Error::Internal(e.to_string()))
    }

    async fn replay(&self, run: &Run) -> Result<Replay> {
        let steps = crate::journal::read_all(&*self.rt.runs, &run.id).await?;
        Replay::of(&steps).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Run `id` if the caller may see it; another tenant's is as good as missing.
    async fn visible(&self, caller: &Principal, id: &str) -> Result<Run> {
        caller.require(Role::Reader)?;
        match self.rt.runs.get_run(id).await? {
            Some(r) if caller.sees(&r.tenant_id) => Ok(r),
            _ => Err(Error::NotFound(format!("run '{id}' does not exist"))),
        }
    }
}

/// A journal entry for the API.
pub fn step_view(s: RunStep) -> StepView {
    StepView { seq: s.seq, kind: s.kind, data: s.payload, created_at_ms: s.created_at_ms }
}

fn view(run: Run, replay: &Replay) -> Result<RunView> {
    let waiting = run.state == RunState::RequiresAction;
    let end = replay.end.clone();
    Ok(RunView {
        id: run.id,
        object: "run",
        tenant_id: run.tenant_id,
        agent_id: run.agent_id,
        agent_version: run.agent_version,
        thread_id: run.thread_id,
        state: run.state,
        steps: run.steps,
        usage: RunUsage {
            model_calls: replay.steps,
            tool_calls: replay.tool_calls,
            input_tokens: replay.input_tokens,
            output_tokens: replay.output_tokens,
            cost_usd: replay.cost_usd,
        },
        pending: if waiting { replay.waiting().into_iter().cloned().collect() } else { Vec::new() },
        expires_at_ms: if waiting { replay.wait_until } else { None },
        answer: end.as_ref().and_then(|e| e.answer.clone()),
        reason: end.and_then(|e| e.reason).or(run.error),
        created_at_ms: run.created_at_ms,
        updated_at_ms: run.updated_at_ms,
    })
}
