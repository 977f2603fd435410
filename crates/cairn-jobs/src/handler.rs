//! The contract between the queue and the code that does the work: a `JobHandler` per job type,
//! given a `JobContext` per attempt, answering with a result or a `JobError` that says what the
//! queue should do next.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::jobs::{Job, LeaseRef};
use cairn_core::store::Store;
use cairn_core::trace::TraceContext;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::EventHub;

/// How an attempt failed, and so what happens next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A transient failure: retry with backoff while attempts remain, then dead-letter.
    #[error("{0}")]
    Retry(String),
    /// Retry no sooner than `after` (e.g. the remote side said so), while attempts remain.
    #[error("{message}")]
    RetryAfter {
        /// The wait asked for.
        after: Duration,
        /// Why.
        message: String,
    },
    /// Retrying cannot help: dead-letter the job now.
    #[error("{0}")]
    Permanent(String),
    /// The handler stopped because the job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Why a payload was refused at enqueue.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It breaks the type's payload schema (a 400).
    Invalid(String),
    /// Well-formed, but not allowed for this tenant, e.g. a host off its allow-list (a 403).
    Forbidden(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal::Invalid(message)
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Self {
        Refusal::Invalid(message.to_owned())
    }
}

/// The code that runs one type of job.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Checks a payload when the job is enqueued for `tenant_id`, so bad input is refused with
    /// a clear 4xx instead of failing later in a worker.
    fn validate(&self, tenant_id: &str, payload: &Value) -> Result<(), Refusal>;

    /// The payload's JSON Schema, published in the API document and `GET /v1/jobs/types`;
    /// `validate` refuses as `Invalid` exactly what it does not admit (default: anything).
    fn payload_schema(&self) -> Value {
        Value::Object(serde_json::Map::new())
    }

    /// Attempts of this type one process runs at once unless `jobs.concurrency` names the
    /// type; `None`: `jobs.default_concurrency`. Types that mostly wait on others (agent runs
    /// wait on models) want more than CPU-bound ones.
    fn default_concurrency(&self) -> Option<usize> {
        None
    }

    /// Runs one attempt. Returns the job's result (stored on the job), or how it failed.
    /// Long work should watch `ctx.cancelled()` and report progress.
    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError>;
}

/// What a handler gets for one attempt: the job, a cancellation signal and a progress reporter.
pub struct JobContext {
    /// The job as claimed (its `attempts` counts this attempt).
    pub job: Job,
    /// The attempt's place in its trace: work done for it runs under the attempt's span.
    pub trace: TraceContext,
    pub(crate) lease: LeaseRef,
    pub(crate) cancel: CancellationToken,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: EventHub,
}

impl JobContext {
    /// The job's input.
    pub fn payload(&self) -> &Value {
        &self.job.payload
    }

    /// True once the job was cancelled, its lease lost, or the worker is shutting down.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A token cancelled when the handler should stop (see `is_cancelled`), for work that
    /// outlives a borrow of the context.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Resolves when the handler should stop (see `is_cancelled`).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Records progress (any JSON, e.g. `{"done": 40, "total": 100}`), visible on the job and
    /// streamed to watchers. Fails with `Cancelled` when the lease is no longer held.
    pub async fn progress(&self, progress: Value) -> Result<(), JobError> {
        let held = self
            .store
            .set_job_progress(&self.lease, &progress, self.clock.now_ms())
            .await
            .map_err(|e| JobError::Retry(format!("recording progress: {e}")))?;
        if !held {
            self.cancel.cancel();
            return Err(JobError::Cancelled);
        }
        self.events.changed(&self.job.id);
        Ok(())
    }
}
