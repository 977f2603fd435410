//! Workers: claim due jobs under a lease, run their handlers, and report how each attempt
//! ended. One claim loop per job type, each bounded by that type's concurrency; a shared
//! finisher writes attempt ends in batches (one transaction for many jobs); background loops
//! renew leases, take back expired ones and keep the queue metrics fresh (see `upkeep`).

use cairn_core::trace::{attrs, SpanKind, TraceContext};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::jobs::{AttemptOutcome, ClaimRequest, Finish, Job, LeaseRef, Outcome};
use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::{JobContext, JobError, JobHandler};
use crate::service::JobService;

/// Most jobs one claim takes.
const MAX_CLAIM: usize = 64;
/// Most attempt ends written in one transaction.
const MAX_FINISH_BATCH: usize = 512;
/// How long a cancelled handler may take to stop before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Why a running job's handler was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A person cancelled the job.
    Cancelled,
    /// The lease was lost (another worker owns the job now); the outcome will be ignored.
    LeaseLost,
}

/// A job this worker is running.
pub(crate) struct Active {
    pub(crate) lease: LeaseRef,
    pub(crate) stop: CancellationToken,
    pub(crate) reason: Option<StopReason>,
}

/// A worker: runs jobs of every registered type (or a chosen subset) from the shared store.
#[derive(Clone)]
pub struct Worker {
    pub(crate) inner: Arc<Inner>,
}

/// What the worker's tasks share.
pub(crate) struct Inner {
    pub(crate) service: Arc<JobService>,
    pub(crate) id: String,
    pub(crate) kinds: Vec<String>,
    pub(crate) active: Mutex<HashMap<String, Active>>,
    finisher: mpsc::Sender<(Finish, oneshot::Sender<bool>)>,
    /// Fired at shutdown: claim nothing more.
    pub(crate) stop_claiming: CancellationToken,
    /// Fired when shutdown's grace is over: drop running handlers and hand their jobs back.
    cut: CancellationToken,
    /// Fired once every job has finished: background loops end.
    pub(crate) done: CancellationToken,
    running: TaskTracker,
    background: TaskTracker,
}

impl Worker {
    /// A worker named `id` for `kinds` (`None`: every registered type). Nothing runs until
    /// `start` (or `run_due` in tests).
    pub fn new(service: Arc<JobService>, id: impl Into<String>, kinds: Option<Vec<String>>) -> Worker {
        let kinds = kinds.unwrap_or_else(|| service.registry.kinds().map(str::to_owned).collect());
        let (tx, rx) = mpsc::channel(4096);
        let done = CancellationToken::new();
        let background = TaskTracker::new();
        background.spawn(finish_loop(service.clone(), rx, done.clone()));
        let inner = Inner {
            service,
            id: id.into(),
            kinds,
            active: Mutex::new(HashMap::new()),
            finisher: tx,
            stop_claiming: CancellationToken::new(),
            cut: CancellationToken::new(),
            done,
            running: TaskTracker::new(),
            background,
        };
        let inner = Arc::new(inner);
        // Cancellations asked for in this process reach running jobs at once, in every mode.
        inner.background.spawn(crate::upkeep::listen_for_cancels(inner.clone()));
        Worker { inner }
    }

    /// A worker id unique to this process: host, process id and a random suffix.
    pub fn default_id() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "cairn".into());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &suffix[..6])
    }

    /// The worker's id, as recorded on the jobs it runs.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Starts the claim loops and the upkeep loops.
    pub fn start(&self) {
        for kind in &self.inner.kinds {
            let Some(handler) = self.inner.service.registry.get(kind).cloned() else { continue };
            self.inner.background.spawn(self.inner.clone().claim_loop(kind.clone(), handler));
        }
        crate::upkeep::spawn(&self.inner, &self.inner.background);
        tracing::info!(worker = %self.inner.id, types = ?self.inner.kinds, "job worker started");
    }

    /// Claims the jobs of `kind` that are due now (up to its concurrency) and runs them to the
    /// end; returns how many ran. For tests and tools that drive time themselves.
    pub async fn run_due(&self, kind: &str) -> usize {
        let Some(handler) = self.inner.service.registry.get(kind).cloned() else { return 0 };
        let n = self.inner.service.concurrency_of(kind).min(MAX_CLAIM);
        let jobs = match self.inner.claim(kind, n).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "claiming jobs");
                return 0;
            }
        };
        let count = jobs.len();
        futures::future::join_all(jobs.into_iter().map(|j| self.inner.clone().execute(j, handler.clone(), None))).await;
        count
    }

    /// Takes back expired leases once (the upkeep loop does this periodically).
    pub async fn reap_once(&self) -> cairn_core::Result<cairn_core::jobs::Reaped> {
        crate::upkeep::reap(&self.inner).await
    }

    /// Renews held leases once (the upkeep loop does this periodically).
    pub async fn renew_once(&self) {
        crate::upkeep::renew(&self.inner).await
    }

    /// Stops claiming, lets running jobs finish for `grace`, then drops the rest and hands
    /// their jobs back to the queue unfinished (not counted as attempts), and flushes.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stop_claiming.cancel();
        inner.running.close();
        if tokio::time::timeout(grace, inner.running.wait()).await.is_err() {
            tracing::warn!(worker = %inner.id, "shutdown grace over: handing unfinished jobs back");
            inner.cut.cancel();
            inner.running.wait().await;
        }
        inner.done.cancel();
        inner.background.close();
        inner.background.wait().await;
        tracing::info!(worker = %inner.id, "job worker stopped");
    }
}

impl Inner {
    /// Claims up to `n` due jobs of `kind` under a fresh lease.
    async fn claim(&self, kind: &str, n: usize) -> cairn_core::Result<Vec<Job>> {
        let s = &self.service;
        let lease_id = uuid::Uuid::new_v4().simple().to_string();
        let claim = ClaimRequest {
            kind,
            worker: &self.id,
            lease_id: &lease_id,
            now_ms: s.clock.now_ms(),
            lease_ms: s.config.lease_ms as i64,
            limit: n as u32,
        };
        Ok(s.store.claim_jobs(&claim).await?)
    }

    /// Claims and runs jobs of one type until shutdown, within its concurrency.
    async fn claim_loop(self: Arc<Self>, kind: String, handler: Arc<dyn JobHandler>) {
        let slots = Arc::new(Semaphore::new(self.service.concurrency_of(&kind)));
        let waker = self.service.events.waker(&kind);
        let poll = Duration::from_millis(self.service.config.poll_ms);
        loop {
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p,
                _ = self.stop_claiming.cancelled() => break,
            };
            let Ok(first) = first else { break };
            let mut permits = vec![first];
            while permits.len() < MAX_CLAIM {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            // Counts as running work from before the claim until its jobs are spawned, so a
            // shutdown in between waits for them (and hands them back) instead of missing them.
            let claiming = self.running.token();
            match self.claim(&kind, permits.len()).await {
                Ok(jobs) if !jobs.is_empty() => {
                    for (job, permit) in jobs.into_iter().zip(permits) {
                        let (inner, handler) = (self.clone(), handler.clone());
                        self.running.spawn(async move { inner.execute(job, handler, Some(permit)).await });
                    }
                    drop(claiming);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, kind = %kind, "claiming jobs failed; retrying"),
            }
            drop((permits, claiming));
            // Idle: until jobs of this type are enqueued here, the poll interval, or shutdown.
            tokio::select! {
                _ = waker.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = self.stop_claiming.cancelled() => break,
            }
        }
    }

    /// Runs one claimed job's attempt and records how it ended. The concurrency `slot` is
    /// freed as soon as the handler returns: recording the end is batched with others.
    async fn execute(self: Arc<Self>, job: Job, handler: Arc<dyn JobHandler>, slot: Option<OwnedSemaphorePermit>) {
        let s = self.service.clone();
        let lease = LeaseRef { job_id: job.id.clone(), lease_id: job.lease_id.clone().unwrap_or_default() };
        let stop = CancellationToken::new();
        self.active.lock().insert(job.id.clone(), Active { lease: lease.clone(), stop: stop.clone(), reason: None });
        let started_at_ms = job.started_at_ms.unwrap_or_else(|| s.clock.now_ms());
        let type_label = vec![("type", job.kind.clone())];
        s.metrics.job_wait.get_or_create(&type_label).observe((started_at_ms - job.run_at_ms).max(0) as f64 / 1e3);
        s.events.changed(&job.id);
        let at =
            job.trace_parent.as_deref().and_then(TraceContext::from_traceparent).unwrap_or_else(TraceContext::fresh);
        let mut span = s.tracer.start(&at, &job.tenant_id, format!("job {}", job.kind), SpanKind::Consumer);
        if span.recording() {
            span.set(attrs::JOB_ID, job.id.clone());
            span.set(attrs::ATTEMPT, job.attempts);
        }
        let ctx = JobContext {
            trace: span.context(),
            job: job.clone(),
            lease: lease.clone(),
            cancel: stop.clone(),
            store: s.store.clone(),
            clock: s.clock.clone(),
            events: s.events.clone(),
        };
        let timer = std::time::Instant::now();
        let run = AssertUnwindSafe(handler.run(ctx)).catch_unwind();
        let timeout = Duration::from_millis(job.timeout_ms);
        let end = tokio::select! {
            r = tokio::time::timeout(timeout, run) => match r {
                Err(_) => End::TimedOut,
                Ok(Err(panic)) => End::Panicked(panic_message(&*panic)),
                Ok(Ok(r)) => End::Returned(r),
            },
            _ = async { stop.cancelled().await; tokio::time::sleep(CANCEL_GRACE).await } => End::Abandoned,
            _ = self.cut.cancelled() => End::Cut,
        };
        drop(slot);
        let reason = self.active.lock().remove(&job.id).and_then(|a| a.reason);
        let outcome = self.outcome(&job, end, reason);
        let label = match &outcome {
            Outcome::Succeeded(_) => AttemptOutcome::Succeeded,
            Outcome::Retry { outcome, .. } | Outcome::Dead { outcome, .. } => *outcome,
            Outcome::Cancelled => AttemptOutcome::Cancelled,
            Outcome::Released => AttemptOutcome::Interrupted,
        };
        let dead = matches!(outcome, Outcome::Dead { .. });
        span.set(attrs::JOB_OUTCOME, label.as_str());
        match &outcome {
            Outcome::Succeeded(_) => span.ok(),
            Outcome::Retry { error, .. } | Outcome::Dead { error, .. } => span.fail(error),
            Outcome::Cancelled | Outcome::Released => {}
        }
        drop(span);
        let finish = Finish {
            job_id: job.id.clone(),
            lease_id: lease.lease_id,
            worker: self.id.clone(),
            started_at_ms,
            at_ms: s.clock.now_ms(),
            outcome,
        };
        let (tx, rx) = oneshot::channel();
        let applied = self.finisher.send((finish, tx)).await.is_ok() && rx.await.unwrap_or(false);
        s.metrics.job_run.get_or_create(&type_label).observe(timer.elapsed().as_secs_f64());
        s.metrics
            .job_attempts
            .get_or_create(&vec![("type", job.kind.clone()), ("outcome", label.as_str().to_owned())])
            .inc();
        if !applied {
            tracing::warn!(job = %job.id, "attempt ended after its lease was lost; another worker owns the job");
            return;
        }
        if dead {
            s.metrics.jobs_dead_lettered.get_or_create(&type_label).inc();
            tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, "job dead-lettered");
        }
        s.events.changed(&job.id);
    }

    /// Decides what an attempt's end means for the job.
    fn outcome(&self, job: &Job, end: End, reason: Option<StopReason>) -> Outcome {
        let failed = |error: String, outcome: AttemptOutcome, after: Option<Duration>| {
            if job.attempts >= job.max_attempts {
                let error = format!("{error} (gave up after {} attempts)", job.attempts);
                return Outcome::Dead { error, outcome };
            }
            let s = &self.service;
            let delay = after
                .map(|d| d.as_millis().min(u128::from(s.config.backoff_max_ms)) as u64)
                .unwrap_or_else(|| s.backoff().delay_ms(job.attempts, &mut rand::thread_rng()));
            Outcome::Retry { run_at_ms: s.clock.now_ms() + delay as i64, error, outcome }
        };
        match end {
            End::Returned(Ok(result)) => Outcome::Succeeded(result),
            End::Cut => Outcome::Released,
            End::Abandoned | End::Returned(Err(JobError::Cancelled)) => Outcome::Cancelled,
            End::Returned(Err(_)) if reason == Some(StopReason::Cancelled) => Outcome::Cancelled,
            End::Returned(Err(JobError::Permanent(m))) => Outcome::Dead { error: m, outcome: AttemptOutcome::Failed },
            End::Returned(Err(JobError::Retry(m))) => failed(m, AttemptOutcome::Failed, None),
            End::Returned(Err(JobError::RetryAfter { after, message })) => {
                failed(message, AttemptOutcome::Failed, Some(after))
            }
            End::TimedOut => failed(format!("timed out after {} ms", job.timeout_ms), AttemptOutcome::TimedOut, None),
            End::Panicked(m) => failed(format!("the handler panicked: {m}"), AttemptOutcome::Failed, None),
        }
    }

    /// Tells the handler of `job_id`, if it runs here, to stop.
    pub(crate) fn stop_job(&self, job_id: &str, reason: StopReason) {
        if let Some(a) = self.active.lock().get_mut(job_id) {
            a.reason.get_or_insert(reason);
            a.stop.cancel();
        }
    }
}

/// How a handler's run ended, before it is turned into an `Outcome`.
enum End {
    Returned(Result<Option<serde_json::Value>, JobError>),
    TimedOut,
    Panicked(String),
    /// Cancelled, and the handler did not stop within the grace period.
    Abandoned,
    /// Shutdown's grace ran out.
    Cut,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Writes attempt ends in batches: whatever queued up while the last batch was being written
/// goes in the next transaction. A storage failure is retried with backoff; if it persists,
/// the leases run out and other workers run the jobs again, so nothing is lost.
async fn finish_loop(
    service: Arc<JobService>,
    mut rx: mpsc::Receiver<(Finish, oneshot::Sender<bool>)>,
    done: CancellationToken,
) {
    loop {
        // Once every job has finished (`done`), whatever is left in the channel is the last.
        let first = tokio::select! {
            item = rx.recv() => item,
            _ = done.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_FINISH_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let finishes: Vec<Finish> = batch.iter().map(|(f, _)| f.clone()).collect();
        let mut delay = Duration::from_millis(50);
        let mut applied = None;
        for _ in 0..10 {
            match service.store.finish_jobs(&finishes).await {
                Ok(a) => {
                    applied = Some(a);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = finishes.len(), "recording job results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let applied = applied.unwrap_or_else(|| vec![false; batch.len()]);
        for ((_, tx), ok) in batch.into_iter().zip(applied) {
            let _ = tx.send(ok);
        }
    }
}
