//! `cairn-bench jobs`: the durable queue's throughput and latency, on SQLite (a fresh file)
//! and on PostgreSQL (when a URL is given), with the default worker settings.
//!
//! - Throughput: N no-op jobs enqueued and completed, end to end and durably (a job counts once
//!   its success is committed), with the producer enqueueing batches of 100 per call, and again
//!   with 16 concurrent producers enqueueing one job per call (the service's group commit may
//!   write concurrent calls in one transaction).
//! - Latency: at light load (one job at a time, 50 per second), the time from calling
//!   `enqueue` to the handler starting, median and p99.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use cairn_core::config::JobsConfig;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_jobs::{EnqueueRequest, JobContext, JobError, JobHandler, JobService, SystemClock, Worker};
use parking_lot::Mutex;
use serde_json::Value;

use crate::load::percentile;

/// Succeeds at once, counting runs; `probe` jobs also note when they started.
struct Probe {
    started: Arc<Mutex<HashMap<String, Instant>>>,
}

#[async_trait]
impl JobHandler for Probe {
    fn validate(&self, _: &str, _: &Value) -> Result<(), cairn_jobs::Refusal> {
        Ok(())
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        self.started.lock().insert(ctx.job.id.clone(), Instant::now());
        Ok(None)
    }
}

struct Bench {
    svc: Arc<JobService>,
    worker: Worker,
    started: Arc<Mutex<HashMap<String, Instant>>>,
    metrics: Arc<cairn_telemetry::Metrics>,
}

fn caller() -> Principal {
    Principal { key_id: "bench".into(), tenant_id: "bench".into(), role: Role::Member, limits: KeyLimits::default() }
}

impl Bench {
    async fn open(url: &str) -> Result<Bench> {
        let config = JobsConfig::default();
        let store = cairn_store::open(url, 16).await.map_err(|e| anyhow!("{e}"))?;
        let started = Arc::new(Mutex::new(HashMap::new()));
        let mut registry = cairn_jobs::builtin::registry(&config, store.clone());
        registry.register("probe", Probe { started: started.clone() });
        let metrics = Arc::new(cairn_telemetry::Metrics::new());
        let svc = Arc::new(JobService::new(store, registry, config, Arc::new(SystemClock), metrics.clone()));
        let worker = Worker::new(svc.clone(), "bench", None);
        worker.start();
        Ok(Bench { svc, worker, started, metrics })
    }

    /// Committed successes of `kind` so far.
    fn succeeded(&self, kind: &str) -> u64 {
        let labels = vec![("type", kind.to_owned()), ("outcome", "succeeded".to_owned())];
        self.metrics.job_attempts.get_or_create(&labels).get()
    }

    async fn wait_succeeded(&self, kind: &str, n: u64) {
        while self.succeeded(kind) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn noop() -> EnqueueRequest {
    EnqueueRequest { kind: "noop".into(), ..Default::default() }
}

/// Batches of 100 per transaction from one producer; returns jobs/s end to end.
async fn batched(b: &Bench, n: u64) -> Result<f64> {
    let base = b.succeeded("noop");
    let start = Instant::now();
    for _ in 0..n / 100 {
        b.svc.enqueue_batch(&caller(), (0..100).map(|_| noop()).collect()).await?;
    }
    b.wait_succeeded("noop", base + n / 100 * 100).await;
    Ok((n / 100 * 100) as f64 / start.elapsed().as_secs_f64())
}

/// One job per call from 16 concurrent producers; returns jobs/s end to end.
async fn single(b: &Bench, n: u64) -> Result<f64> {
    let base = b.succeeded("noop");
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let producers = (0..16).map(|_| {
        let (svc, next) = (b.svc.clone(), next.clone());
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                svc.enqueue(&caller(), noop()).await?;
            }
            Ok::<_, cairn_core::Error>(())
        })
    });
    for p in futures::future::join_all(producers).await {
        p??;
    }
    b.wait_succeeded("noop", base + n).await;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Enqueue-to-start at 50 jobs/s, one at a time; returns (median, p99) in ms.
async fn latency(b: &Bench, n: usize) -> Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = Instant::now();
        let (job, _) = b.svc.enqueue(&caller(), EnqueueRequest { kind: "probe".into(), ..Default::default() }).await?;
        let deadline = sent + Duration::from_secs(5);
        let started = loop {
            if let Some(at) = b.started.lock().remove(&job.id) {
                break at;
            }
            if Instant::now() > deadline {
                return Err(anyhow!("job {} did not start within 5 s", job.id));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push((started - sent).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20).saturating_sub(sent.elapsed())).await;
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// Runs the benchmark on SQLite and, when `postgres` is given, on PostgreSQL.
pub async fn run(jobs: u64, postgres: Option<String>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut backends =
        vec![("SQLite (WAL, synchronous=NORMAL)", format!("sqlite://{}", dir.path().join("jobs.db").display()))];
    if let Some(url) = postgres {
        backends.push(("PostgreSQL 18", url));
    }
    let concurrency = JobsConfig::default().default_concurrency;
    println!("## Job queue (cairn-bench jobs, {jobs} no-op jobs per run, {concurrency} workers per type)\n");
    println!("| storage | enqueue in batches of 100 | one job per enqueue call (16 concurrent producers) | enqueue-to-start p50 | enqueue-to-start p99 |");
    println!("|---|---|---|---|---|");
    for (name, url) in backends {
        let b = Bench::open(&url).await?;
        batched(&b, jobs / 10).await?; // warm-up
        let batch = batched(&b, jobs).await?;
        let one = single(&b, jobs).await?;
        let (p50, p99) = latency(&b, 200).await?;
        println!("| {name} | {batch:.0} jobs/s | {one:.0} jobs/s | {p50:.2} ms | {p99:.2} ms |");
        b.worker.shutdown(Duration::from_secs(5)).await;
    }
    Ok(())
}
