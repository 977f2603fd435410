//! Cairn's durable job queue. Jobs live in storage (SQLite or PostgreSQL, through the
//! `JobStore` port); workers claim them under leases they keep renewing, so a worker that dies
//! loses its jobs to another once the lease runs out. Failures retry with exponential backoff
//! and jitter; jobs that keep failing land in the dead-letter queue with every attempt's error,
//! ready to be replayed. Execution is at least once: handlers make their effects idempotent by
//! keying them on the job id.
//!
//! - `JobService`: enqueue, list, inspect, watch, cancel, replay, purge (role and tenant checks).
//! - `Worker`: claim loops per job type, lease renewal, batched result writes, upkeep.
//! - `JobHandler`: what a job type implements; `builtin` holds the types Cairn ships.

#![warn(missing_docs)]

mod backoff;
pub mod builtin;
mod clock;
mod combiner;
mod events;
mod handler;
mod registry;
mod secrets;
mod service;
mod types;
mod upkeep;
mod worker;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{EventHub, JobEvent};
pub use handler::{JobContext, JobError, JobHandler, Refusal};
pub use registry::Registry;
pub use secrets::{SecretQuery, WebhookSecret};
pub use service::{JobService, MAX_BATCH};
pub use types::{BulkResult, EnqueueRequest, JobDetail, JobPage, JobType, ListRequest, PurgeRequest, RetryDeadRequest};
pub use worker::Worker;
