//! The happy paths: enqueue, run, schedule, prioritise, deduplicate, watch, cancel, purge,
//! keep a long job's lease, and never hand one job to two claimers.

use std::collections::HashSet;

use cairn_core::jobs::{AttemptOutcome, ClaimRequest, JobState};
use cairn_jobs::{EnqueueRequest, ListRequest, PurgeRequest};
use futures::StreamExt;
use serde_json::json;

use crate::{admin, alice, bob, on_both, Harness};

on_both!(
    enqueue_run_and_record_the_attempt,
    idempotency_keys_return_the_first_job,
    higher_priority_runs_first,
    not_before_is_respected,
    progress_and_state_changes_are_streamed,
    cancel_a_queued_and_a_running_job,
    a_renewed_lease_keeps_a_long_job,
    purge_deletes_only_old_finished_jobs,
    concurrent_claims_never_overlap,
    concurrent_enqueues_are_grouped_without_mixing_callers,
);

async fn enqueue_run_and_record_the_attempt(h: Harness) {
    let job = h.enqueue(&alice(), "record", json!({})).await;
    assert_eq!((job.state, job.attempts, job.tenant_id.as_str()), (JobState::Queued, 0, "a"));
    assert!(job.id.starts_with("job_"));
    let depth = h.store.queue_counts().await.unwrap();
    assert_eq!((depth.len(), depth[0].state, depth[0].count), (1, JobState::Queued, 1));
    assert_eq!(h.worker.run_due("record").await, 1);
    assert!(h.store.queue_counts().await.unwrap().is_empty(), "finished jobs are not queue depth");
    let done = h.job(&job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({ "attempt": 1 })));
    assert_eq!(done.finished_at_ms, Some(crate::T0));
    assert!(done.lease_id.is_none() && done.worker.is_none());
    let detail = h.svc.get(&alice(), &job.id).await.unwrap();
    assert_eq!(detail.attempts_history.len(), 1);
    assert_eq!(detail.attempts_history[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(detail.attempts_history[0].worker, "test-worker");
    // Nothing left to run.
    assert_eq!(h.worker.run_due("record").await, 0);
    assert_eq!(*h.runs.lock(), vec![job.id]);
}

async fn idempotency_keys_return_the_first_job(h: Harness) {
    let req = |payload| EnqueueRequest {
        kind: "record".into(),
        payload,
        idempotency_key: Some("order-42".into()),
        ..Default::default()
    };
    let (first, created) = h.svc.enqueue(&alice(), req(json!({"n": 1}))).await.unwrap();
    assert!(created);
    let (again, created) = h.svc.enqueue(&alice(), req(json!({"n": 2}))).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert_eq!(again.payload, json!({"n": 1}), "the first job wins");
    // Still the same after it ran.
    h.worker.run_due("record").await;
    let (after, created) = h.svc.enqueue(&alice(), req(json!({}))).await.unwrap();
    assert_eq!((after.id.as_str(), created, after.state), (first.id.as_str(), false, JobState::Succeeded));
    // Keys are per tenant.
    let (other, created) = h.svc.enqueue(&bob(), req(json!({}))).await.unwrap();
    assert!(created && other.id != first.id);
    // Within one batch too, for a key seen before and for a new one.
    let out = h.svc.enqueue_batch(&bob(), vec![req(json!({})), req(json!({}))]).await.unwrap();
    assert!(out.iter().all(|(j, created)| j.id == other.id && !created));
    let fresh = |k: &str| EnqueueRequest { idempotency_key: Some(k.into()), ..req(json!({})) };
    let out = h.svc.enqueue_batch(&alice(), vec![fresh("new"), fresh("new")]).await.unwrap();
    assert!(out[0].1 && !out[1].1 && out[0].0.id == out[1].0.id, "{out:?}");
}

async fn concurrent_enqueues_are_grouped_without_mixing_callers(h: Harness) {
    let svc = h.svc.clone();
    let tasks = (0..64).map(|i| {
        let svc = svc.clone();
        tokio::spawn(async move {
            let key = if i % 2 == 0 { "shared".to_owned() } else { format!("own-{i}") };
            let req = EnqueueRequest {
                kind: "record".into(),
                payload: json!({ "i": i }),
                idempotency_key: Some(key),
                ..Default::default()
            };
            let (job, created) = svc.enqueue(&alice(), req).await.unwrap();
            (i, job, created)
        })
    });
    let out: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let shared: HashSet<_> = out.iter().filter(|(i, _, _)| i % 2 == 0).map(|(_, j, _)| j.id.clone()).collect();
    assert_eq!(shared.len(), 1, "one job for the shared key");
    assert_eq!(out.iter().filter(|(i, _, created)| i % 2 == 0 && *created).count(), 1);
    for (i, job, created) in out.iter().filter(|(i, _, _)| i % 2 == 1) {
        assert!(*created);
        assert_eq!(job.payload, json!({ "i": i }), "each caller gets its own job back");
    }
    assert_eq!(
        h.svc.list(&alice(), ListRequest { limit: Some(500), ..Default::default() }).await.unwrap().data.len(),
        33
    );
}

async fn higher_priority_runs_first(h: Harness) {
    let mut ids = Vec::new();
    for p in [0, 10, -5, 10] {
        let req = EnqueueRequest { kind: "record".into(), payload: json!({}), priority: p, ..Default::default() };
        ids.push(h.svc.enqueue(&alice(), req).await.unwrap().0.id);
    }
    // `record` runs one at a time here, so each run_due takes the best due job.
    while h.worker.run_due("record").await > 0 {}
    let order = h.runs.lock().clone();
    assert_eq!(order, vec![ids[1].clone(), ids[3].clone(), ids[0].clone(), ids[2].clone()]);
}

async fn not_before_is_respected(h: Harness) {
    let req = EnqueueRequest { kind: "record".into(), payload: json!({}), delay_ms: Some(5_000), ..Default::default() };
    let job = h.svc.enqueue(&alice(), req).await.unwrap().0;
    assert_eq!(job.run_at_ms, crate::T0 + 5_000);
    assert_eq!(h.worker.run_due("record").await, 0);
    h.clock.advance(4_999);
    assert_eq!(h.worker.run_due("record").await, 0);
    h.clock.advance(1);
    assert_eq!(h.worker.run_due("record").await, 1);
    let at = EnqueueRequest {
        kind: "record".into(),
        payload: json!({}),
        run_at_ms: Some(crate::T0 + 60_000),
        ..Default::default()
    };
    let job = h.svc.enqueue(&alice(), at).await.unwrap().0;
    assert_eq!(job.run_at_ms, crate::T0 + 60_000);
}

async fn progress_and_state_changes_are_streamed(h: Harness) {
    let job = h.enqueue(&alice(), "gate", json!({})).await;
    let mut stream = h.svc.watch(&alice(), &job.id).await.unwrap();
    assert_eq!(stream.next().await.unwrap().state, JobState::Queued);
    let worker = h.worker.clone();
    let run = tokio::spawn(async move { worker.run_due("gate").await });
    // Running, then running with progress (possibly seen together).
    let mut seen = stream.next().await.unwrap();
    assert_eq!(seen.state, JobState::Running);
    while seen.progress.is_none() {
        seen = stream.next().await.unwrap();
    }
    assert_eq!(seen.progress, Some(json!({ "step": "started" })));
    h.gate.release.notify_one();
    let last = loop {
        let j = stream.next().await.unwrap();
        if j.state.is_final() {
            break j;
        }
    };
    assert_eq!((last.state, last.result), (JobState::Succeeded, Some(json!("released"))));
    assert!(stream.next().await.is_none(), "the stream ends after the final state");
    run.await.unwrap();
}

async fn cancel_a_queued_and_a_running_job(h: Harness) {
    let queued = h.enqueue(&alice(), "record", json!({})).await;
    let cancelled = h.svc.cancel(&alice(), &queued.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(h.worker.run_due("record").await, 0, "a cancelled job never runs");

    let running = h.enqueue(&alice(), "gate", json!({})).await;
    let worker = h.worker.clone();
    let run = tokio::spawn(async move { worker.run_due("gate").await });
    h.wait_for(&running.id, JobState::Running).await;
    let flagged = h.svc.cancel(&alice(), &running.id).await.unwrap();
    assert!(flagged.cancel_requested);
    run.await.unwrap();
    let done = h.job(&running.id).await;
    assert_eq!(done.state, JobState::Cancelled);
    let history = h.svc.get(&alice(), &running.id).await.unwrap().attempts_history;
    assert_eq!(history[0].outcome, AttemptOutcome::Cancelled);
    // A final job cannot be cancelled again.
    let err = h.svc.cancel(&alice(), &running.id).await.unwrap_err();
    assert!(matches!(err, cairn_core::Error::Conflict(_)), "{err:?}");
}

async fn a_renewed_lease_keeps_a_long_job(h: Harness) {
    let job = h.enqueue(&alice(), "gate", json!({})).await;
    let worker = h.worker.clone();
    let run = tokio::spawn(async move { worker.run_due("gate").await });
    let running = h.wait_for(&job.id, JobState::Running).await;
    assert_eq!(running.lease_until_ms, Some(crate::T0 + 10_000));
    // Three lease lengths pass, renewed along the way: the job is never taken back.
    for _ in 0..6 {
        h.clock.advance(5_000);
        h.worker.renew_once().await;
        let reaped = h.worker.reap_once().await.unwrap();
        assert!(reaped.requeued.is_empty() && reaped.dead.is_empty());
    }
    assert_eq!(h.job(&job.id).await.lease_until_ms, Some(crate::T0 + 30_000 + 10_000));
    h.gate.release.notify_one();
    run.await.unwrap();
    assert_eq!(h.job(&job.id).await.state, JobState::Succeeded);
    assert_eq!(h.svc.get(&alice(), &job.id).await.unwrap().attempts_history.len(), 1);
}

async fn purge_deletes_only_old_finished_jobs(h: Harness) {
    let old = h.enqueue(&alice(), "record", json!({})).await;
    h.worker.run_due("record").await;
    h.clock.advance(3_600_000);
    let recent = h.enqueue(&alice(), "record", json!({})).await;
    h.worker.run_due("record").await;
    let waiting = h.enqueue(&alice(), "record", json!({})).await;
    h.clock.advance(1_000);
    let req = PurgeRequest { older_than_secs: 1_800, ..Default::default() };
    assert_eq!(h.svc.purge(&admin(), req).await.unwrap().count, 1);
    assert!(h.store.get_job(&old.id).await.unwrap().is_none());
    assert!(h.store.job_attempts(&old.id).await.unwrap().is_empty());
    assert!(h.store.get_job(&recent.id).await.unwrap().is_some());
    assert!(h.store.get_job(&waiting.id).await.unwrap().is_some(), "unfinished jobs are never purged");
}

async fn concurrent_claims_never_overlap(h: Harness) {
    let reqs: Vec<_> = (0..200).map(|_| EnqueueRequest { kind: "noop_like".into(), ..Default::default() }).collect();
    // An unknown type is refused, so use `record` with a batch.
    assert!(h.svc.enqueue_batch(&alice(), reqs).await.is_err());
    let reqs: Vec<_> =
        (0..200).map(|_| EnqueueRequest { kind: "record".into(), payload: json!({}), ..Default::default() }).collect();
    h.svc.enqueue_batch(&alice(), reqs).await.unwrap();
    let claimers = (0..4).map(|w| {
        let store = h.store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let (worker, lease) = (format!("w{w}"), uuid::Uuid::new_v4().to_string());
                let claim = ClaimRequest {
                    kind: "record",
                    worker: &worker,
                    lease_id: &lease,
                    now_ms: crate::T0,
                    lease_ms: 10_000,
                    limit: 7,
                };
                let got = store.claim_jobs(&claim).await.unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        })
    });
    let all: Vec<String> = futures::future::join_all(claimers).await.into_iter().flat_map(|r| r.unwrap()).collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (200, 200), "every job claimed exactly once");
}
