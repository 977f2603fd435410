//! A worker's background upkeep: renewing the leases of running jobs (and learning of
//! cancellations through them), stopping jobs cancelled in this process at once, taking back
//! expired leases of dead workers, refreshing queue-depth metrics and purging old jobs.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::jobs::{LeaseRef, Reaped};
use tokio_util::task::TaskTracker;

use crate::events::JobEvent;
use crate::worker::{Inner, StopReason};

/// How often queue-depth gauges are refreshed.
const METRICS_EVERY: Duration = Duration::from_secs(5);
/// How often old finished jobs are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Most expired leases taken back per pass.
const REAP_BATCH: u32 = 500;

/// Spawns the upkeep loops on `tracker`; they end when the worker is done.
pub(crate) fn spawn(inner: &Arc<Inner>, tracker: &TaskTracker) {
    let lease = Duration::from_millis(inner.service.config.lease_ms);
    tracker.spawn(every(inner.clone(), lease / 3, |i| async move { renew(&i).await }));
    let reap_every = (lease / 2).min(Duration::from_secs(5));
    tracker.spawn(every(inner.clone(), reap_every, |i| async move {
        if let Err(e) = reap(&i).await {
            tracing::warn!(error = %e, "taking back expired job leases failed");
        }
    }));
    tracker.spawn(every(inner.clone(), METRICS_EVERY, |i| async move {
        if let Err(e) = i.service.refresh_depth_metrics().await {
            tracing::warn!(error = %e, "refreshing job queue metrics failed");
        }
    }));
    tracker.spawn(every(inner.clone(), PURGE_EVERY, |i| async move {
        match i.service.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "purged finished jobs past their retention"),
            Err(e) => tracing::warn!(error = %e, "purging old jobs failed"),
        }
    }));
}

/// Runs `f` every `period` until the worker is done.
async fn every<F, Fut>(inner: Arc<Inner>, period: Duration, f: F)
where
    F: Fn(Arc<Inner>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => f(inner.clone()).await,
            _ = inner.done.cancelled() => break,
        }
    }
}

/// Extends the leases of every running job; stops jobs whose lease was lost or that were
/// cancelled (from any process).
pub(crate) async fn renew(inner: &Inner) {
    let leases: Vec<LeaseRef> = inner.active.lock().values().map(|a| a.lease.clone()).collect();
    if leases.is_empty() {
        return;
    }
    let s = &inner.service;
    let until = s.clock.now_ms() + s.config.lease_ms as i64;
    match s.store.renew_leases(&leases, until).await {
        Ok(statuses) => {
            for st in statuses {
                if !st.held {
                    inner.stop_job(&st.lease.job_id, StopReason::LeaseLost);
                } else if st.cancel_requested {
                    inner.stop_job(&st.lease.job_id, StopReason::Cancelled);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, jobs = leases.len(), "renewing job leases failed"),
    }
}

/// Stops local jobs as soon as they are cancelled in this process.
pub(crate) async fn listen_for_cancels(inner: Arc<Inner>) {
    let mut rx = inner.service.events.subscribe_cancels();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(JobEvent::CancelRequested(id)) => inner.stop_job(&id, StopReason::Cancelled),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = inner.done.cancelled() => break,
        }
    }
}

/// Takes back jobs whose worker stopped renewing their lease.
pub(crate) async fn reap(inner: &Inner) -> cairn_core::Result<Reaped> {
    let s = &inner.service;
    let reaped = s.store.reap_expired_leases(s.clock.now_ms(), REAP_BATCH).await?;
    for (id, kind) in reaped.requeued.iter().chain(&reaped.dead).chain(&reaped.cancelled) {
        s.metrics.job_lease_expiries.get_or_create(&vec![("type", kind.clone())]).inc();
        s.events.changed(id);
    }
    for (id, kind) in &reaped.requeued {
        tracing::warn!(job = %id, kind = %kind, "lease expired; job queued again");
        s.events.wake(kind);
    }
    for (id, kind) in &reaped.dead {
        tracing::warn!(job = %id, kind = %kind, "lease expired on the last attempt; job dead-lettered");
        s.metrics.jobs_dead_lettered.get_or_create(&vec![("type", kind.clone())]).inc();
    }
    Ok(reaped)
}
