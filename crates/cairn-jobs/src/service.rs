//! The job service: enqueue, inspect, cancel, replay and purge jobs. Every call takes the
//! caller's `Principal`; roles and tenant visibility are checked here, so the HTTP API, the CLI
//! and later the agent runtime all get the same rules. A job of another tenant reads as missing.

use cairn_core::trace::Tracer;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::audit::{self, AuditAction};
use cairn_core::config::JobsConfig;
use cairn_core::jobs::{BulkFilter, Job, JobFilter, JobState, NewJob};
use cairn_core::store::Store;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::{Error, Result};
use cairn_telemetry::Metrics;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::combiner::Combiner;
use crate::events::{EventHub, JobEvent};
use crate::handler::Refusal;
use crate::registry::Registry;
use crate::types::{
    BulkResult, EnqueueRequest, JobDetail, JobPage, JobType, ListRequest, PurgeRequest, RetryDeadRequest,
};

/// Most jobs in one batch enqueue.
pub const MAX_BATCH: usize = 1000;
/// Longest per-attempt timeout a job may ask for.
const MAX_TIMEOUT_MS: u64 = 24 * 3_600_000;
/// Latest time a job may be scheduled at: 2100-01-01T00:00:00Z (a fixed bound, so the API
/// document can state it).
pub const MAX_RUN_AT_MS: i64 = 4_102_444_800_000;
/// Longest delay a job may ask for: a year.
pub const MAX_DELAY_MS: u64 = 365 * 86_400_000;

/// The job queue's front door (see the module docs).
pub struct JobService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Registry,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: JobsConfig,
    pub(crate) events: EventHub,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tracer: Tracer,
    combiner: Combiner,
}

impl JobService {
    /// A service over `store` running the types in `registry` (call within a Tokio runtime:
    /// it starts the enqueue writer task).
    pub fn new(
        store: Arc<dyn Store>,
        registry: Registry,
        config: JobsConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let combiner = Combiner::start(store.clone());
        Self { store, registry, clock, config, events: EventHub::new(), metrics, tracer: Tracer::off(), combiner }
    }

    /// The same service recording a span per attempt through `tracer`, in the trace of the
    /// work that enqueued the job.
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    /// The process's job event bus (workers built on this service share it).
    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// The settings in force.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// The retry schedule in force.
    pub fn backoff(&self) -> Backoff {
        Backoff { base_ms: self.config.backoff_base_ms, max_ms: self.config.backoff_max_ms }
    }

    /// Attempts of `kind` one process runs at once: `jobs.concurrency`, else the handler's own
    /// default, else `jobs.default_concurrency`.
    pub fn concurrency_of(&self, kind: &str) -> usize {
        match self.config.concurrency.get(kind) {
            Some(n) => *n,
            None => {
                self.registry.get(kind).and_then(|h| h.default_concurrency()).unwrap_or(self.config.default_concurrency)
            }
        }
    }

    /// The job types this server runs.
    pub fn types(&self) -> Vec<JobType> {
        self.registry
            .public_kinds()
            .filter_map(|k| {
                let handler = self.registry.get(k)?;
                let schema = handler.payload_schema();
                Some(JobType { kind: k.to_owned(), concurrency: self.concurrency_of(k), payload_schema: schema })
            })
            .collect()
    }

    /// Enqueues one job; `false` when its idempotency key returned an existing job.
    pub async fn enqueue(&self, caller: &Principal, req: EnqueueRequest) -> Result<(Job, bool)> {
        let mut out = self.enqueue_batch(caller, vec![req]).await?;
        out.pop().ok_or_else(|| Error::Internal("enqueue returned no job".into()))
    }

    /// Enqueues up to `MAX_BATCH` jobs atomically: all are accepted or none is.
    pub async fn enqueue_batch(&self, caller: &Principal, reqs: Vec<EnqueueRequest>) -> Result<Vec<(Job, bool)>> {
        self.store_batch(caller, reqs, false).await
    }

    /// Enqueues jobs of internal types too: for the subsystem that owns them (see `Registry`).
    pub async fn enqueue_internal(&self, caller: &Principal, reqs: Vec<EnqueueRequest>) -> Result<Vec<(Job, bool)>> {
        self.store_batch(caller, reqs, true).await
    }

    /// Checks a batch exactly as `enqueue_internal` would and returns the jobs to store: a
    /// subsystem that writes its own rows in the same transaction as its jobs (documents and
    /// their ingestion) stores them itself, then calls `announce`.
    pub fn prepare_internal(&self, caller: &Principal, reqs: Vec<EnqueueRequest>) -> Result<Vec<NewJob>> {
        self.new_jobs(caller, reqs, self.clock.now_ms(), true)
    }

    /// Counts and wakes workers for jobs stored outside `enqueue` (see `prepare_internal`).
    pub fn announce(&self, stored: &[(Job, bool)]) {
        let now = self.clock.now_ms();
        // Counted and woken once per type, however large the batch.
        let mut due: std::collections::BTreeMap<&str, (u64, bool)> = std::collections::BTreeMap::new();
        for (job, _) in stored.iter().filter(|(_, created)| *created) {
            let entry = due.entry(job.kind.as_str()).or_default();
            entry.0 += 1;
            entry.1 |= job.run_at_ms <= now;
        }
        for (kind, (count, wake)) in due {
            self.metrics.jobs_enqueued.get_or_create(&vec![("type", kind.to_owned())]).inc_by(count);
            if wake {
                self.events.wake(kind);
            }
        }
    }

    /// Validates and stores a batch; `internal` admits internal types.
    async fn store_batch(
        &self,
        caller: &Principal,
        reqs: Vec<EnqueueRequest>,
        internal: bool,
    ) -> Result<Vec<(Job, bool)>> {
        let now = self.clock.now_ms();
        let jobs = self.new_jobs(caller, reqs, now, internal)?;
        for tenant in jobs.iter().map(|j| &j.tenant_id).filter(|t| **t != caller.tenant_id) {
            if self.store.get_tenant(tenant).await?.is_none() {
                return Err(Error::NotFound(format!("tenant '{tenant}' does not exist")));
            }
        }
        let out = self.combiner.enqueue(jobs).await?;
        self.announce(&out);
        Ok(out)
    }

    /// Validates a batch and turns it into storable jobs.
    fn new_jobs(&self, caller: &Principal, reqs: Vec<EnqueueRequest>, now: i64, internal: bool) -> Result<Vec<NewJob>> {
        caller.require(Role::Member)?;
        if reqs.is_empty() || reqs.len() > MAX_BATCH {
            return Err(Error::invalid_param("jobs", format!("send between 1 and {MAX_BATCH} jobs")));
        }
        let batch = reqs.len() > 1;
        reqs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let at = |field: &str| if batch { format!("jobs[{i}].{field}") } else { field.to_owned() };
                self.new_job(caller, r, now, internal, &at)
            })
            .collect()
    }

    /// Validates one request and turns it into a storable job.
    fn new_job(
        &self,
        caller: &Principal,
        r: EnqueueRequest,
        now: i64,
        internal: bool,
        at: &dyn Fn(&str) -> String,
    ) -> Result<NewJob> {
        // Internal types read as unknown to the public API.
        let handler = self.registry.get(&r.kind).filter(|_| internal || !self.registry.is_internal(&r.kind));
        let handler = handler.ok_or_else(|| {
            let known: Vec<&str> = self.registry.public_kinds().collect();
            Error::invalid_param(at("type"), format!("unknown job type '{}' (known: {})", r.kind, known.join(", ")))
        })?;
        let size = r.payload.to_string().len();
        if size > self.config.max_payload_bytes {
            return Err(Error::invalid_param(
                at("payload"),
                format!(
                    "payload is {size} bytes; the limit is {} (jobs.max_payload_bytes)",
                    self.config.max_payload_bytes
                ),
            ));
        }
        let tenant_id = caller.acting_tenant(r.tenant_id.clone())?;
        handler.validate(&tenant_id, &r.payload).map_err(|refusal| match refusal {
            Refusal::Invalid(m) => {
                Error::invalid_param(at("payload"), format!("invalid payload for '{}': {m}", r.kind))
            }
            Refusal::Forbidden(m) => Error::Forbidden(format!("payload for '{}': {m}", r.kind)),
        })?;
        if !(-1000..=1000).contains(&r.priority) {
            return Err(Error::invalid_param(at("priority"), "priority must be between -1000 and 1000"));
        }
        let max_attempts = r.max_attempts.unwrap_or(self.config.max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(Error::invalid_param(at("max_attempts"), "max_attempts must be between 1 and 100"));
        }
        let timeout_ms = r.timeout_ms.unwrap_or(self.config.timeout_ms);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(Error::invalid_param(at("timeout_ms"), "timeout_ms must be between 1 and 86400000 (24 hours)"));
        }
        let run_at_ms = match (r.run_at_ms, r.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_param(at("delay_ms"), "give run_at_ms or delay_ms, not both"));
            }
            (Some(t), None) if t > MAX_RUN_AT_MS => {
                return Err(Error::invalid_param(at("run_at_ms"), "run_at_ms must be before the year 2100"));
            }
            (None, Some(d)) if d > MAX_DELAY_MS => {
                return Err(Error::invalid_param(at("delay_ms"), "delay_ms must be at most a year"));
            }
            (Some(t), None) => t.max(now),
            (None, Some(d)) => now.saturating_add(d as i64),
            (None, None) => now,
        };
        if let Some(k) = &r.idempotency_key {
            if k.is_empty() || k.chars().count() > 255 || k.chars().any(char::is_control) {
                return Err(Error::invalid_param(
                    at("idempotency_key"),
                    "idempotency_key must be 1-255 characters without control characters",
                ));
            }
        }
        Ok(NewJob {
            id: format!("job_{}", uuid::Uuid::now_v7().simple()),
            tenant_id,
            kind: r.kind,
            payload: r.payload,
            priority: r.priority,
            idempotency_key: r.idempotency_key,
            max_attempts,
            timeout_ms,
            run_at_ms,
            created_at_ms: now,
            trace_parent: r.trace.and_then(|t| t.parent.map(|span| t.traceparent(span))),
        })
    }

    /// One job, if the caller may see it.
    async fn visible(&self, caller: &Principal, id: &str) -> Result<Job> {
        match self.store.get_job(id).await? {
            Some(job) if caller.sees(&job.tenant_id) => Ok(job),
            _ => Err(Error::NotFound(format!("job '{id}' does not exist"))),
        }
    }

    /// A job with its attempt history.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<JobDetail> {
        caller.require(Role::Reader)?;
        let job = self.visible(caller, id).await?;
        let attempts_history = self.store.job_attempts(id).await?;
        Ok(JobDetail { job, attempts_history })
    }

    /// Jobs matching `req`, newest first, one page at a time.
    pub async fn list(&self, caller: &Principal, req: ListRequest) -> Result<JobPage> {
        caller.require(Role::Reader)?;
        let limit = req.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid_param("limit", "limit must be between 1 and 500"));
        }
        let filter = JobFilter {
            tenant_id: caller.readable_tenant(req.tenant_id.as_deref())?,
            kind: req.kind,
            state: req.state,
            created_from_ms: req.created_from_ms,
            created_to_ms: req.created_to_ms,
            before_id: req.cursor,
            limit: limit + 1,
        };
        let mut data = self.store.list_jobs(&filter).await?;
        let next_cursor = (data.len() > limit as usize).then(|| {
            data.truncate(limit as usize);
            data.last().map(|j| j.id.clone()).unwrap_or_default()
        });
        Ok(JobPage { object: "list", data, next_cursor })
    }

    /// Cancels a queued job at once, or asks a running one to stop (its worker finishes it as
    /// cancelled). Final jobs cannot be cancelled: 409.
    pub async fn cancel(&self, caller: &Principal, id: &str) -> Result<Job> {
        caller.require(Role::Member)?;
        let job = self.visible(caller, id).await?;
        let now = self.clock.now_ms();
        // Two tries: the job may start between reading it and cancelling it.
        let done = match job.state {
            JobState::Queued => {
                self.store.cancel_queued_job(id, now).await? || self.store.request_job_cancel(id, now).await?
            }
            JobState::Running => self.store.request_job_cancel(id, now).await?,
            _ => false,
        };
        let job = self.visible(caller, id).await?;
        if !done {
            return Err(Error::Conflict(format!(
                "job '{id}' is {}; only queued or running jobs can be cancelled",
                job.state.as_str()
            )));
        }
        if job.state == JobState::Running {
            self.events.cancel_requested(id);
        }
        self.events.changed(id);
        Ok(job)
    }

    /// Queues a dead or cancelled job again with a fresh set of attempts (its history stays).
    pub async fn retry(&self, caller: &Principal, id: &str) -> Result<Job> {
        caller.require(Role::Member)?;
        let job = self.visible(caller, id).await?;
        if !self.store.requeue_job(id, self.clock.now_ms()).await? {
            return Err(Error::Conflict(format!(
                "job '{id}' is {}; only dead or cancelled jobs can be retried",
                job.state.as_str()
            )));
        }
        // Read back before waking the workers: the answer is the job as replayed ("queued"),
        // not whatever state a worker has moved it to by the time it is read.
        let requeued = self.visible(caller, id).await?;
        self.events.wake(&job.kind);
        self.events.changed(id);
        let details = serde_json::json!({"type": job.kind, "was": job.state.as_str()});
        audit::record(&*self.store, caller, &job.tenant_id, AuditAction::JobRetry, id, details).await;
        Ok(requeued)
    }

    /// Replays every dead job of the caller's tenant (admins: of `tenant_id`, or all tenants).
    pub async fn retry_dead(&self, caller: &Principal, req: RetryDeadRequest) -> Result<BulkResult> {
        caller.require(Role::Member)?;
        let filter = BulkFilter { tenant_id: caller.readable_tenant(req.tenant_id.as_deref())?, kind: req.kind };
        let count = self.store.requeue_dead_jobs(&filter, self.clock.now_ms()).await?;
        for kind in self.registry.kinds() {
            self.events.wake(kind);
        }
        let details = serde_json::json!({"type": filter.kind, "count": count});
        let tenant = filter.tenant_id.as_deref().unwrap_or(audit::EVERY_TENANT);
        audit::record(&*self.store, caller, tenant, AuditAction::JobsRetryDead, "dead jobs", details).await;
        Ok(BulkResult { count })
    }

    /// Deletes finished jobs older than the given age: an admin's own tenant's, or (owners) one
    /// tenant's or every tenant's.
    pub async fn purge(&self, caller: &Principal, req: PurgeRequest) -> Result<BulkResult> {
        caller.require(Role::Admin)?;
        if req.older_than_secs > (1 << 53) - 1 {
            return Err(Error::invalid_param("older_than_secs", "older_than_secs must be at most 2^53 - 1"));
        }
        let age_ms = i64::try_from(req.older_than_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let filter = BulkFilter { tenant_id: caller.readable_tenant(req.tenant_id.as_deref())?, kind: req.kind };
        let count = self.store.purge_jobs(&filter, self.clock.now_ms().saturating_sub(age_ms)).await?;
        let details = serde_json::json!({"type": filter.kind, "older_than_secs": req.older_than_secs, "count": count});
        let tenant = filter.tenant_id.as_deref().unwrap_or(audit::EVERY_TENANT);
        audit::record(&*self.store, caller, tenant, AuditAction::JobsPurge, "finished jobs", details).await;
        Ok(BulkResult { count })
    }

    /// The job now, then every change of its state or progress until it is final. Changes made
    /// in this process arrive at once; changes made by other processes within `jobs.poll_ms`.
    pub async fn watch(&self, caller: &Principal, id: &str) -> Result<BoxStream<'static, Job>> {
        caller.require(Role::Reader)?;
        let first = self.visible(caller, id).await?;
        let mut poll = tokio::time::interval(Duration::from_millis(self.config.poll_ms.clamp(20, 1000)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watch = Watch { store: self.store.clone(), events: self.events.subscribe(), poll, last: None };
        // State: the watch, the snapshot to send first, and whether the final state was sent.
        let stream = futures::stream::unfold((watch, Some(first), false), |(mut w, first, ended)| async move {
            if ended {
                return None;
            }
            let job = match first {
                Some(job) => job,
                None => w.next_change().await?,
            };
            w.last = Some(job.clone());
            let ended = job.state.is_final();
            Some((job, (w, None, ended)))
        });
        Ok(stream.boxed())
    }

    /// Refreshes the queue-depth gauges from storage.
    pub async fn refresh_depth_metrics(&self) -> Result<()> {
        let counts = self.store.queue_counts().await?;
        self.metrics.jobs_depth.clear();
        for c in counts {
            let labels = vec![("type", c.kind), ("state", c.state.as_str().to_owned())];
            self.metrics.jobs_depth.get_or_create(&labels).set(c.count as i64);
        }
        Ok(())
    }

    /// Deletes finished jobs past `jobs.retention_hours` (the workers' housekeeping).
    pub async fn purge_expired(&self) -> Result<u64> {
        if self.config.retention_hours == 0 {
            return Ok(0);
        }
        let age_ms = i64::try_from(self.config.retention_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        let before = self.clock.now_ms().saturating_sub(age_ms);
        Ok(self.store.purge_jobs(&BulkFilter::default(), before).await?)
    }
}

/// State of one `watch` stream.
struct Watch {
    store: Arc<dyn Store>,
    events: tokio::sync::broadcast::Receiver<JobEvent>,
    poll: tokio::time::Interval,
    last: Option<Job>,
}

impl Watch {
    /// Waits for the next visible change of the watched job; `None` once it is gone.
    async fn next_change(&mut self) -> Option<Job> {
        let id = self.last.as_ref()?.id.clone();
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Ok(JobEvent::Changed(j)) if j == id => {}
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {}
                    // The hub is gone (shutdown): polling alone still works.
                    Err(RecvError::Closed) => { self.poll.tick().await; }
                },
                _ = self.poll.tick() => {}
            }
            match self.store.get_job(&id).await {
                Ok(Some(job)) if self.last.as_ref().is_none_or(|l| differs(l, &job)) => return Some(job),
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => tracing::warn!(error = %e, job = %id, "watching a job: storage error"),
            }
        }
    }
}

/// True when a watcher should hear about the change from `a` to `b`.
fn differs(a: &Job, b: &Job) -> bool {
    a.state != b.state
        || a.attempts != b.attempts
        || a.progress != b.progress
        || a.cancel_requested != b.cancel_requested
        || a.updated_at_ms != b.updated_at_ms
}
