//! Durable jobs: the domain types of the job queue and the storage port that both backends
//! implement. Policy (backoff, who may see what, when a job is dead) lives in `cairn-jobs`;
//! the store only applies state changes atomically and fences them by lease.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::StoreResult;

/// Where a job is in its life. `succeeded`, `cancelled` and `dead` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run, now or at `run_at_ms` (a scheduled job or a retry after backoff).
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Cancelled before or while running.
    Cancelled,
    /// Failed permanently or ran out of attempts: in the dead-letter queue.
    Dead,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] =
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Cancelled, JobState::Dead];

    /// The lowercase name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Cancelled => "cancelled",
            JobState::Dead => "dead",
        }
    }

    /// True for states a job never leaves by itself.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Cancelled | JobState::Dead)
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state '{s}' (expected queued, running, succeeded, cancelled or dead)"))
    }
}

/// A job as stored: what to do, for whom, and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Job id (`job_...`, time-ordered).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Job type: which handler runs it.
    #[serde(rename = "type")]
    pub kind: String,
    /// The handler's input.
    pub payload: Value,
    /// Current state.
    pub state: JobState,
    /// Higher runs first among jobs of the same type that are due.
    pub priority: i32,
    /// The caller's deduplication key: enqueueing the same key again returns this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Attempts made since the job was enqueued or last replayed.
    pub attempts: u32,
    /// Attempts allowed before the job is dead-lettered.
    pub max_attempts: u32,
    /// Longest one attempt may run, in milliseconds.
    pub timeout_ms: u64,
    /// Not before this time (Unix ms): the schedule, or the next retry after backoff.
    pub run_at_ms: i64,
    /// Enqueue time, Unix ms.
    pub created_at_ms: i64,
    /// Last change of state or progress, Unix ms.
    pub updated_at_ms: i64,
    /// Start of the current or last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// When the job reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The last progress the handler reported (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    /// The handler's output, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error of the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A cancellation was asked for while the job was running.
    pub cancel_requested: bool,
    /// The worker holding the lease, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When the running attempt's lease runs out unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<i64>,
    /// Fencing token of the running attempt: only its holder may finish the job.
    #[serde(skip)]
    #[schema(ignore)]
    pub lease_id: Option<String>,
    /// The W3C `traceparent` of the work that enqueued the job: its attempts' spans join
    /// that trace.
    #[serde(skip)]
    #[schema(ignore)]
    pub trace_parent: Option<String>,
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The handler succeeded.
    Succeeded,
    /// The handler failed (retryable or not).
    Failed,
    /// The attempt ran past the job's timeout.
    TimedOut,
    /// The worker stopped renewing its lease (it died or hung); another worker took over.
    LeaseExpired,
    /// Stopped by a cancellation.
    Cancelled,
    /// The worker shut down and handed the job back; this attempt does not count.
    Interrupted,
}

impl AttemptOutcome {
    /// The snake_case name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::LeaseExpired => "lease_expired",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Interrupted => "interrupted",
        }
    }

    /// Parses a stored name (unknown names read as `failed`).
    pub fn parse(s: &str) -> Self {
        match s {
            "succeeded" => AttemptOutcome::Succeeded,
            "timed_out" => AttemptOutcome::TimedOut,
            "lease_expired" => AttemptOutcome::LeaseExpired,
            "cancelled" => AttemptOutcome::Cancelled,
            "interrupted" => AttemptOutcome::Interrupted,
            _ => AttemptOutcome::Failed,
        }
    }
}

/// One attempt at running a job, kept for as long as the job is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// 1-based, in start order.
    pub number: u32,
    /// The worker that ran it.
    pub worker: String,
    /// Start, Unix ms.
    pub started_at_ms: i64,
    /// End, Unix ms.
    pub finished_at_ms: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The error, for attempts that did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A job to insert, already validated by the service.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// Job id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Job type.
    pub kind: String,
    /// Handler input.
    pub payload: Value,
    /// Priority (higher first).
    pub priority: i32,
    /// Deduplication key, unique per tenant.
    pub idempotency_key: Option<String>,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Per-attempt timeout, ms.
    pub timeout_ms: u64,
    /// Not before, Unix ms.
    pub run_at_ms: i64,
    /// Enqueue time, Unix ms.
    pub created_at_ms: i64,
    /// The W3C `traceparent` of the work that enqueued it.
    pub trace_parent: Option<String>,
}

impl NewJob {
    /// The job as it is stored right after insertion.
    pub fn into_job(self) -> Job {
        Job {
            id: self.id,
            tenant_id: self.tenant_id,
            kind: self.kind,
            payload: self.payload,
            state: JobState::Queued,
            priority: self.priority,
            idempotency_key: self.idempotency_key,
            attempts: 0,
            max_attempts: self.max_attempts,
            timeout_ms: self.timeout_ms,
            run_at_ms: self.run_at_ms,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.created_at_ms,
            started_at_ms: None,
            finished_at_ms: None,
            progress: None,
            result: None,
            last_error: None,
            cancel_requested: false,
            worker: None,
            lease_until_ms: None,
            lease_id: None,
            trace_parent: self.trace_parent,
        }
    }
}

/// Which jobs to list; every field narrows the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFilter {
    /// Only this tenant's jobs.
    pub tenant_id: Option<String>,
    /// Only this type.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Created at or after (Unix ms).
    pub created_from_ms: Option<i64>,
    /// Created before (Unix ms).
    pub created_to_ms: Option<i64>,
    /// Page cursor: only jobs with an id before this one (newest first).
    pub before_id: Option<String>,
    /// Most jobs to return.
    pub limit: u32,
}

/// A claim: up to `limit` due jobs of one type, leased to `worker` until `now_ms + lease_ms`.
#[derive(Clone, Debug)]
pub struct ClaimRequest<'a> {
    /// Job type.
    pub kind: &'a str,
    /// Worker id, recorded on the job and its attempt.
    pub worker: &'a str,
    /// Fencing token given to every job of this claim.
    pub lease_id: &'a str,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// Lease length, ms.
    pub lease_ms: i64,
    /// Most jobs to claim.
    pub limit: u32,
}

/// What became of a job's attempt, as the worker reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Succeeded with this output.
    Succeeded(Option<Value>),
    /// Failed; run again at `run_at_ms`.
    Retry {
        /// Next attempt not before, Unix ms.
        run_at_ms: i64,
        /// Why this attempt failed.
        error: String,
        /// `failed` or `timed_out`.
        outcome: AttemptOutcome,
    },
    /// Failed for good: dead-letter it.
    Dead {
        /// Why.
        error: String,
        /// `failed` or `timed_out`.
        outcome: AttemptOutcome,
    },
    /// Stopped by a cancellation.
    Cancelled,
    /// Handed back unfinished (shutdown): queued again, the attempt not counted.
    Released,
}

/// The end of one attempt, fenced by its lease.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    /// The job.
    pub job_id: String,
    /// The attempt's fencing token; a finish whose lease was lost is ignored.
    pub lease_id: String,
    /// The worker that ran it.
    pub worker: String,
    /// When the attempt started.
    pub started_at_ms: i64,
    /// When it ended.
    pub at_ms: i64,
    /// How.
    pub outcome: Outcome,
}

/// A lease a worker holds: job and fencing token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    /// The job.
    pub job_id: String,
    /// The fencing token.
    pub lease_id: String,
}

/// The answer to a lease renewal, per lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The lease.
    pub lease: LeaseRef,
    /// Still held (renewed); false when another worker took the job or it was finished.
    pub held: bool,
    /// Someone asked to cancel the job.
    pub cancel_requested: bool,
}

/// What a pass over expired leases did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reaped {
    /// (job id, type) queued again for another worker.
    pub requeued: Vec<(String, String)>,
    /// (job id, type) dead-lettered because they had used every attempt.
    pub dead: Vec<(String, String)>,
    /// (job id, type) whose cancellation was pending: now cancelled.
    pub cancelled: Vec<(String, String)>,
}

/// Jobs in one (type, state) cell.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct QueueCount {
    /// Job type.
    #[serde(rename = "type")]
    pub kind: String,
    /// State.
    pub state: JobState,
    /// How many.
    pub count: u64,
}

/// Selects jobs for bulk replay or purge.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BulkFilter {
    /// Only this tenant's jobs (`None`: every tenant).
    pub tenant_id: Option<String>,
    /// Only this type.
    pub kind: Option<String>,
}

/// The job queue's storage.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts jobs in one transaction. A job whose (tenant, idempotency key) exists already is
    /// not inserted; the existing one is returned instead, with `false`.
    async fn enqueue_jobs(&self, jobs: &[NewJob]) -> StoreResult<Vec<(Job, bool)>>;
    /// Fetches one job.
    async fn get_job(&self, id: &str) -> StoreResult<Option<Job>>;
    /// Lists jobs newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;
    /// A job's finished attempts, oldest first.
    async fn job_attempts(&self, id: &str) -> StoreResult<Vec<Attempt>>;
    /// Leases due queued jobs of one type, highest priority and oldest first; concurrent
    /// claimers never get the same job.
    async fn claim_jobs(&self, claim: &ClaimRequest<'_>) -> StoreResult<Vec<Job>>;
    /// Extends held leases to `until_ms`; says per lease whether it is still held and whether
    /// a cancellation was asked for.
    async fn renew_leases(&self, leases: &[LeaseRef], until_ms: i64) -> StoreResult<Vec<LeaseStatus>>;
    /// Applies attempt ends in one transaction; returns, per finish, whether the lease was still
    /// held (a finish for a lost lease changes nothing).
    async fn finish_jobs(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>>;
    /// Records progress of a running attempt; false when the lease is no longer held.
    async fn set_job_progress(&self, lease: &LeaseRef, progress: &Value, at_ms: i64) -> StoreResult<bool>;
    /// Takes back jobs whose lease ran out before `now_ms`: queued again, or dead when out of
    /// attempts; each lost attempt is recorded as `lease_expired`.
    async fn reap_expired_leases(&self, now_ms: i64, limit: u32) -> StoreResult<Reaped>;
    /// Cancels a queued job; false if it is not queued (any more).
    async fn cancel_queued_job(&self, id: &str, at_ms: i64) -> StoreResult<bool>;
    /// Flags a running job for cancellation; false if it is not running.
    async fn request_job_cancel(&self, id: &str, at_ms: i64) -> StoreResult<bool>;
    /// Queues a dead or cancelled job again with a fresh set of attempts; false otherwise.
    async fn requeue_job(&self, id: &str, at_ms: i64) -> StoreResult<bool>;
    /// Queues every dead job matching `filter` again; returns how many.
    async fn requeue_dead_jobs(&self, filter: &BulkFilter, at_ms: i64) -> StoreResult<u64>;
    /// Deletes final jobs (and their attempts) that finished before `before_ms`; returns how many.
    async fn purge_jobs(&self, filter: &BulkFilter, before_ms: i64) -> StoreResult<u64>;
    /// Job counts by type and state (for metrics).
    async fn queue_counts(&self) -> StoreResult<Vec<QueueCount>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("done".parse::<JobState>().is_err());
        assert!(JobState::Dead.is_final() && !JobState::Running.is_final());
    }

    #[test]
    fn outcomes_round_trip() {
        for o in [
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::TimedOut,
            AttemptOutcome::LeaseExpired,
            AttemptOutcome::Cancelled,
            AttemptOutcome::Interrupted,
        ] {
            assert_eq!(AttemptOutcome::parse(o.as_str()), o);
        }
    }

    #[test]
    fn job_serialises_type_and_hides_the_lease() {
        let job = NewJob {
            id: "job_1".into(),
            tenant_id: "t".into(),
            kind: "noop".into(),
            payload: serde_json::json!({}),
            priority: 0,
            idempotency_key: None,
            max_attempts: 3,
            timeout_ms: 1000,
            run_at_ms: 5,
            created_at_ms: 5,
            trace_parent: None,
        }
        .into_job();
        let v = serde_json::to_value(Job { lease_id: Some("secret".into()), ..job }).unwrap();
        assert_eq!(v["type"], "noop");
        assert!(v.get("lease_id").is_none());
    }
}
