//! What callers send to the job service and what they get back: the same shapes serve the
//! HTTP API (with their OpenAPI schemas) and the CLI.

use cairn_core::jobs::{Attempt, Job, JobState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A job to enqueue.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// Job type (see `GET /v1/jobs/types`).
    #[serde(rename = "type")]
    #[schema(min_length = 1)]
    pub kind: String,
    /// The handler's input; checked by the type's handler before the job is accepted.
    #[serde(default)]
    pub payload: Value,
    /// Higher runs first among due jobs of the same type (-1000..=1000, default 0).
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: i32,
    /// Not before this time (Unix ms; before 2100). Exclusive with `delay_ms`.
    #[serde(default)]
    #[schema(maximum = 4_102_444_800_000_i64)]
    pub run_at_ms: Option<i64>,
    /// Not before this many ms from now (at most a year). Exclusive with `run_at_ms`.
    #[serde(default)]
    #[schema(maximum = 31_536_000_000_u64)]
    pub delay_ms: Option<u64>,
    /// Attempts before dead-lettering (1..=100; default `jobs.max_attempts`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout in ms (default `jobs.timeout_ms`; at most 24 hours).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86_400_000)]
    pub timeout_ms: Option<u64>,
    /// Deduplication key (1-255 chars, no control characters): enqueueing the same key again
    /// returns the first job.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub idempotency_key: Option<String>,
    /// Tenant to enqueue for (admins only; default the caller's).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Where the enqueuing work sits in its trace (set by Cairn, never by clients): the
    /// job's attempts become spans of that trace.
    #[serde(skip)]
    #[schema(ignore)]
    pub trace: Option<cairn_core::trace::TraceContext>,
}

/// Which jobs to list.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only this state: queued, running, succeeded, cancelled or dead.
    pub state: Option<JobState>,
    /// Only this tenant (admins; others see their own tenant only).
    pub tenant_id: Option<String>,
    /// Created at or after (Unix ms).
    pub created_from_ms: Option<i64>,
    /// Created before (Unix ms).
    pub created_to_ms: Option<i64>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// One page of jobs, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Always `list`.
    pub object: &'static str,
    /// The jobs.
    pub data: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A job with its attempt history.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// Finished attempts, oldest first, each with its error.
    pub attempts_history: Vec<Attempt>,
}

/// Selects dead jobs to replay.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDeadRequest {
    /// Only this type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Only this tenant (admins may leave it out to replay every tenant's dead jobs).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Selects finished jobs to delete.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Delete succeeded, cancelled and dead jobs that finished more than this many seconds ago.
    #[schema(maximum = 9007199254740991_u64)]
    pub older_than_secs: u64,
    /// Only this type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Only this tenant (default: every tenant).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// How many jobs a bulk operation touched.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    /// Jobs changed or deleted.
    pub count: u64,
}

/// A job type this server runs.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobType {
    /// The name to enqueue with.
    #[serde(rename = "type")]
    pub kind: String,
    /// Jobs of this type one process runs at once.
    pub concurrency: usize,
    /// The JSON Schema its payload must meet.
    #[schema(value_type = Object)]
    pub payload_schema: Value,
}
