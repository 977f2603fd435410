//! The job queue's behaviour, on SQLite and on PostgreSQL alike: every test runs against both
//! (a fresh database each), with a manual clock so schedules are checked without sleeping.

mod access;
mod failures;
mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::config::JobsConfig;
use cairn_core::jobs::{Job, JobState};
use cairn_core::store::Store;
use cairn_core::tenancy::{KeyLimits, Principal, Role, Tenant};
use cairn_jobs::{EnqueueRequest, JobContext, JobError, JobHandler, JobService, ManualClock, Registry, Worker};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Start of the manual clock.
const T0: i64 = 1_800_000_000_000;

/// Runs each named test function once per backend, as `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both {
    ($($t:ident),* $(,)?) => {$(
        mod $t {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$t(crate::Harness::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$t(crate::Harness::postgres().await).await
            }
        }
    )*};
}
pub(crate) use on_both;

/// A service and a worker over a fresh store, with test job types:
/// - `record`: logs each run; fails its first `fail_times` attempts as the payload says.
/// - `gate`: reports progress, then waits until released or cancelled.
/// - `stall`: never returns (ignores cancellation), for timeouts.
pub struct Harness {
    pub svc: Arc<JobService>,
    pub worker: Worker,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub runs: Arc<Mutex<Vec<String>>>,
    pub gate: Arc<Gate>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
        Self::build(cairn_store::open(&url, 4).await.unwrap(), Some(dir)).await
    }

    pub async fn postgres() -> Self {
        let url = cairn_store::conformance::fresh_pg_database().await;
        Self::build(cairn_store::open(&url, 8).await.unwrap(), None).await
    }

    async fn build(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Self {
        for t in ["a", "b"] {
            store.create_tenant(&Tenant { id: t.into(), name: t.into(), created_at_ms: 1 }).await.unwrap();
        }
        let clock = Arc::new(ManualClock::at(T0));
        let runs = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Gate::default());
        let mut registry = Registry::new();
        registry.register("record", Record(runs.clone()));
        registry.register("gate", GateHandler(gate.clone()));
        registry.register("stall", Stall);
        let config = JobsConfig {
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            lease_ms: 10_000,
            poll_ms: 20,
            concurrency: [("record".to_owned(), 1)].into(),
            ..JobsConfig::default()
        };
        let metrics = Arc::new(cairn_telemetry::Metrics::new());
        let svc = Arc::new(JobService::new(store.clone(), registry, config, clock.clone(), metrics));
        let worker = Worker::new(svc.clone(), "test-worker", None);
        Harness { svc, worker, clock, store, runs, gate, _dir: dir }
    }

    /// Enqueues as `who`, panicking on error.
    pub async fn enqueue(&self, who: &Principal, kind: &str, payload: Value) -> Job {
        let req = EnqueueRequest { kind: kind.into(), payload, ..Default::default() };
        self.svc.enqueue(who, req).await.unwrap().0
    }

    pub async fn job(&self, id: &str) -> Job {
        self.store.get_job(id).await.unwrap().unwrap()
    }

    /// Polls storage until the job is in `state` (bounded: fails after 10 s).
    pub async fn wait_for(&self, id: &str, state: JobState) -> Job {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.job(id).await;
            if job.state == state {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job {id} stuck in {:?}, wanted {state:?}", job.state);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub fn principal(tenant: &str, role: Role) -> Principal {
    Principal {
        key_id: format!("key-{tenant}-{}", role.as_str()),
        tenant_id: tenant.into(),
        role,
        limits: KeyLimits::default(),
    }
}

pub fn alice() -> Principal {
    principal("a", Role::Member)
}

pub fn bob() -> Principal {
    principal("b", Role::Member)
}

pub fn admin() -> Principal {
    principal("a", Role::Owner)
}

pub fn tenant_admin(tenant: &str) -> Principal {
    principal(tenant, Role::Admin)
}

struct Record(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl JobHandler for Record {
    fn validate(&self, _tenant_id: &str, payload: &Value) -> Result<(), cairn_jobs::Refusal> {
        payload.is_object().then_some(()).ok_or_else(|| "expected an object".into())
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        self.0.lock().push(ctx.job.id.clone());
        let p = ctx.payload();
        let fail_times = p["fail_times"].as_u64().unwrap_or(0) as u32;
        if ctx.job.attempts <= fail_times {
            let message = format!("planned failure {}", ctx.job.attempts);
            return Err(match p["how"].as_str().unwrap_or("retry") {
                "permanent" => JobError::Permanent(message),
                "retry_after" => {
                    JobError::RetryAfter { after: Duration::from_millis(p["after_ms"].as_u64().unwrap_or(0)), message }
                }
                "panic" => panic!("{message}"),
                _ => JobError::Retry(message),
            });
        }
        Ok(Some(json!({ "attempt": ctx.job.attempts })))
    }
}

/// Lets a test hold `gate` jobs running and release them.
#[derive(Default)]
pub struct Gate {
    pub release: Notify,
}

struct GateHandler(Arc<Gate>);

#[async_trait]
impl JobHandler for GateHandler {
    fn validate(&self, _: &str, _: &Value) -> Result<(), cairn_jobs::Refusal> {
        Ok(())
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        ctx.progress(json!({ "step": "started" })).await?;
        tokio::select! {
            _ = self.0.release.notified() => Ok(Some(json!("released"))),
            _ = ctx.cancelled() => Err(JobError::Cancelled),
        }
    }
}

struct Stall;

#[async_trait]
impl JobHandler for Stall {
    fn validate(&self, _: &str, _: &Value) -> Result<(), cairn_jobs::Refusal> {
        Ok(())
    }

    async fn run(&self, _ctx: JobContext) -> Result<Option<Value>, JobError> {
        std::future::pending().await
    }
}
