//! The runner: the durable job (`agent.run`) that steps a run. Each attempt loads the run, its
//! pinned agent version, its thread's history and its journal, replays the journal and goes on
//! from where it stops (see `journal`). Everything a step does is journaled before anything
//! acts on it, and every append is a compare-and-set on the journal's length, so a worker that
//! lost its run (a crash, a lease taken over, a cancellation) stops at its next append.
//!
//! Lifecycle: a run's job is stored with the run when the run may start at once; a run queued
//! behind another on its thread gets its job when that one ends (`next_on_thread`). A run that
//! pauses (`requires_action`) ends its job; the answers to the pause enqueue the next one, and
//! the pause's expiry has one of its own, scheduled for when it runs out.

use cairn_core::trace::{attrs, SpanKind, Tracer};
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::agents::AgentStore;
use cairn_core::models::ChatModel;
use cairn_core::runs::{Run, RunState, RunStore};
use cairn_core::store::KeyStore;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::time::now_ms;
use cairn_jobs::{EnqueueRequest, JobContext, JobError, JobHandler, JobService, Refusal};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::events::RunHub;
use crate::ports::ApprovalRules;
use crate::step::Stepper;
use crate::tools::Toolbox;

/// Runs one process steps at once unless `jobs.concurrency` says otherwise: a run mostly waits
/// on its model, so many share a core.
pub const RUN_CONCURRENCY: usize = 256;
/// The job type that steps runs (internal: only the runtime enqueues it).
pub const RUN_JOB: &str = "agent.run";
/// Attempts a run's job gets: transient failures (an upstream down) retry with backoff, and
/// the last attempt ends the run `failed` instead of leaving it running.
pub const RUN_JOB_ATTEMPTS: u32 = 8;

/// A run job's payload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunJob {
    run_id: String,
    /// Set on the job that ends a pause when it runs out.
    #[serde(default)]
    expire: bool,
}

/// Everything a run needs, shared by its jobs and the runs service.
pub struct Runtime {
    /// Threads, runs and journals.
    pub runs: Arc<dyn RunStore>,
    /// Agents and their versions.
    pub agents: Arc<dyn AgentStore>,
    /// Keys, to act as the run's.
    pub keys: Arc<dyn KeyStore>,
    /// The gateway.
    pub models: Arc<dyn ChatModel>,
    /// The tools this process runs.
    pub tools: Toolbox,
    /// Approval rules.
    pub rules: Arc<dyn ApprovalRules>,
    /// Live news.
    pub hub: RunHub,
    /// The queue the run jobs go through.
    pub jobs: Arc<JobService>,
    /// Journal appends, group-committed.
    pub journal: crate::writer::JournalWriter,
    /// Long-term memory, for agents that have it.
    pub memories: Arc<dyn crate::ports::Memories>,
    /// Records a span per run attempt and per tool call.
    pub tracer: Tracer,
    /// Counts ended runs and tool calls.
    pub metrics: Arc<cairn_telemetry::Metrics>,
    /// Where people's approvals are recorded.
    pub audit: Arc<dyn cairn_core::audit::AuditStore>,
}

impl Runtime {
    /// The job that steps run `run` (`reason` keeps each job distinct: the start, a resume
    /// after journal entry N, an expiry), due at `run_at_ms` (now when `None`).
    pub fn job_for(&self, run: &Run, reason: &str, run_at_ms: Option<i64>, expire: bool) -> EnqueueRequest {
        let payload = if expire { json!({"run_id": run.id, "expire": true}) } else { json!({"run_id": run.id}) };
        EnqueueRequest {
            kind: RUN_JOB.into(),
            payload,
            tenant_id: Some(run.tenant_id.clone()),
            idempotency_key: Some(format!("run:{}:{reason}", run.id)),
            max_attempts: Some(RUN_JOB_ATTEMPTS),
            run_at_ms,
            ..Default::default()
        }
    }

    /// Enqueues `req` for run `run` (as its tenant).
    pub async fn enqueue(&self, run: &Run, req: EnqueueRequest) -> cairn_core::Result<()> {
        let caller = run_principal(run);
        self.jobs.enqueue_internal(&caller, vec![req]).await.map(|_| ())
    }

    /// After run `run` ended: starts the next run queued on its thread, if any. Idempotent (the
    /// job's key is the run's start key), so a retried end starts nothing twice.
    pub async fn next_on_thread(&self, run: &Run) -> cairn_core::Result<()> {
        let Some(thread) = &run.thread_id else { return Ok(()) };
        if let Some(head) = self.runs.thread_head(thread).await? {
            if head.state == RunState::Queued {
                self.enqueue(&head, self.job_for(&head, "start", None, false)).await?;
            }
        }
        Ok(())
    }
}

/// The tenant member a run's internal jobs are enqueued as.
fn run_principal(run: &Run) -> Principal {
    Principal {
        key_id: run.key_id.clone(),
        tenant_id: run.tenant_id.clone(),
        role: Role::Member,
        limits: KeyLimits::default(),
    }
}

/// The `agent.run` job type. Bound to its runtime after the queue is built (the runtime
/// enqueues through the queue that runs this handler).
#[derive(Clone, Default)]
pub struct RunHandler(Arc<std::sync::OnceLock<Arc<Runtime>>>);

impl RunHandler {
    /// Binds the handler to `rt`; later calls change nothing.
    pub fn bind(&self, rt: Arc<Runtime>) {
        let _ = self.0.set(rt);
    }
}

#[async_trait]
impl JobHandler for RunHandler {
    fn default_concurrency(&self) -> Option<usize> {
        Some(RUN_CONCURRENCY)
    }

    fn validate(&self, _tenant_id: &str, payload: &Value) -> Result<(), Refusal> {
        serde_json::from_value::<RunJob>(payload.clone()).map(|_| ()).map_err(|e| Refusal::Invalid(e.to_string()))
    }

    async fn run(&self, mut ctx: JobContext) -> Result<Option<Value>, JobError> {
        let job: RunJob =
            serde_json::from_value(ctx.payload().clone()).map_err(|e| JobError::Permanent(e.to_string()))?;
        let rt = self.0.get().ok_or_else(|| JobError::Retry("the agent runtime is not ready".into()))?;
        let storage = |e: cairn_core::store::StoreError| JobError::Retry(format!("storage: {e}"));
        let Some(run) = rt.runs.get_run(&job.run_id).await.map_err(storage)? else {
            return Ok(None);
        };
        if run.tenant_id != ctx.job.tenant_id {
            return Err(JobError::Permanent("the run belongs to another tenant".into()));
        }
        if run.state.is_final() {
            rt.next_on_thread(&run).await.map_err(|e| JobError::Retry(e.to_string()))?;
            return Ok(Some(json!({"state": run.state})));
        }
        if run.state == RunState::RequiresAction && !job.expire {
            // A stale job: the run waits for answers, which enqueue its next job.
            return Ok(None);
        }
        let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
        let mut span =
            rt.tracer.start(&ctx.trace, &run.tenant_id, format!("invoke_agent {}", run.agent_id), SpanKind::Internal);
        if span.recording() {
            span.set(attrs::OPERATION, "invoke_agent");
            span.set(attrs::AGENT_ID, run.agent_id.clone());
            span.set(attrs::RUN_ID, run.id.clone());
            span.set(attrs::KEY_ID, run.key_id.clone());
        }
        ctx.trace = span.context();
        let outcome = match Stepper::load(rt.clone(), run, &ctx).await {
            Ok(stepper) if job.expire => stepper.expire().await,
            Ok(stepper) => stepper.start().await,
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(state) => span.set("cairn.run.state", state.map_or("running", |s| s.as_str())),
            Err(e) => span.fail(e),
        }
        if let Ok(Some(state)) = &outcome {
            if state.is_final() {
                rt.metrics.agent_runs.get_or_create(&vec![("state", state.as_str().to_owned())]).inc();
            }
        }
        drop(span);
        match outcome {
            Ok(state) => Ok(state.map(|s| json!({"state": s}))),
            // A failure retrying cannot help, or the last attempt's: the run ends `failed`,
            // saying why, instead of staying `running`.
            Err(JobError::Permanent(message)) => {
                fail(rt, &job.run_id, &message, now_ms()).await;
                Err(JobError::Permanent(message))
            }
            Err(JobError::Retry(message) | JobError::RetryAfter { message, .. }) if last_attempt => {
                fail(rt, &job.run_id, &message, now_ms()).await;
                Err(JobError::Permanent(message))
            }
            Err(e) => Err(e),
        }
    }
}

/// Ends run `run_id` `failed` with `message` (best effort: used when its job gives up).
async fn fail(rt: &Runtime, run_id: &str, message: &str, now: i64) {
    let Ok(Some(run)) = rt.runs.get_run(run_id).await else { return };
    let ended = crate::journal::Ended { state: RunState::Failed, reason: Some(message.to_owned()), answer: None };
    let payload = crate::journal::payload(&ended);
    if rt.runs.append_step(run_id, run.steps, cairn_core::runs::StepKind::Ended, &payload, now).await.unwrap_or(false) {
        rt.hub.publish(run_id, crate::events::RunNews::Appended(run.steps + 1));
    }
    let open = [RunState::Queued, RunState::Running, RunState::RequiresAction];
    if let Ok(Some(run)) = rt.runs.set_run_state(run_id, &open, RunState::Failed, Some(message), now).await {
        rt.metrics.agent_runs.get_or_create(&vec![("state", RunState::Failed.as_str().to_owned())]).inc();
        if let Err(e) = rt.next_on_thread(&run).await {
            tracing::warn!(run = run_id, error = %e, "starting the next run on the thread");
        }
    }
}
