//! Failure handling: the backoff schedule, retry-after, dead letters and their replay,
//! timeouts, panics, expired leases with fencing of the stale worker, and shutdown.

use std::time::Duration;

use cairn_core::jobs::{AttemptOutcome, ClaimRequest, Finish, JobState, Outcome, QueueCount};
use cairn_jobs::{Clock, EnqueueRequest, RetryDeadRequest};
use serde_json::json;

use crate::{alice, bob, on_both, Harness, T0};

on_both!(
    retries_follow_the_backoff_schedule,
    retry_after_overrides_the_backoff,
    a_poison_job_is_dead_lettered_and_can_be_replayed,
    a_permanent_failure_dead_letters_at_once,
    timeouts_and_panics_are_failed_attempts,
    an_expired_lease_is_taken_back_and_the_stale_worker_fenced,
    a_lease_lost_on_the_last_attempt_dead_letters,
    shutdown_hands_unfinished_jobs_back,
);

async fn retries_follow_the_backoff_schedule(h: Harness) {
    let req = EnqueueRequest {
        kind: "record".into(),
        payload: json!({ "fail_times": 3 }),
        max_attempts: Some(4),
        ..Default::default()
    };
    let job = h.svc.enqueue(&alice(), req).await.unwrap().0;
    // Nominal delays 1 s, 2 s, 4 s; each drawn from [d/2, d].
    for (attempt, nominal) in [(1u32, 1_000i64), (2, 2_000), (3, 4_000)] {
        assert_eq!(h.worker.run_due("record").await, 1);
        let j = h.job(&job.id).await;
        assert_eq!((j.state, j.attempts), (JobState::Queued, attempt));
        assert_eq!(j.last_error.as_deref(), Some(format!("planned failure {attempt}").as_str()));
        let now = h.clock.now_ms();
        let delay = j.run_at_ms - now;
        assert!(delay >= nominal / 2 && delay <= nominal, "attempt {attempt}: delay {delay} for nominal {nominal}");
        h.clock.advance(delay - 1);
        assert_eq!(h.worker.run_due("record").await, 0, "not before the backoff ends");
        h.clock.advance(1);
    }
    assert_eq!(h.worker.run_due("record").await, 1);
    let done = h.job(&job.id).await;
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 4));
    let outcomes: Vec<_> =
        h.svc.get(&alice(), &job.id).await.unwrap().attempts_history.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [AttemptOutcome::Failed, AttemptOutcome::Failed, AttemptOutcome::Failed, AttemptOutcome::Succeeded]
    );
}

async fn retry_after_overrides_the_backoff(h: Harness) {
    let payload = json!({ "fail_times": 1, "how": "retry_after", "after_ms": 30_000 });
    let job = h.enqueue(&alice(), "record", payload).await;
    h.worker.run_due("record").await;
    assert_eq!(h.job(&job.id).await.run_at_ms, T0 + 30_000);
}

async fn a_poison_job_is_dead_lettered_and_can_be_replayed(h: Harness) {
    let req = EnqueueRequest {
        kind: "record".into(),
        payload: json!({ "fail_times": 100 }),
        max_attempts: Some(3),
        ..Default::default()
    };
    let job = h.svc.enqueue(&alice(), req).await.unwrap().0;
    for _ in 0..3 {
        h.clock.advance(10_000);
        assert_eq!(h.worker.run_due("record").await, 1);
    }
    let dead = h.job(&job.id).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 3));
    let counts = h.store.queue_counts().await.unwrap();
    assert_eq!(counts, [QueueCount { kind: "record".into(), state: JobState::Dead, count: 1 }]);
    assert!(dead.last_error.as_deref().unwrap().contains("gave up after 3 attempts"), "{dead:?}");
    let history = h.svc.get(&alice(), &job.id).await.unwrap().attempts_history;
    let errors: Vec<_> = history.iter().map(|a| a.error.clone().unwrap()).collect();
    assert_eq!(errors[0], "planned failure 1");
    assert_eq!(errors.len(), 3, "every attempt's error is kept");
    h.clock.advance(60_000);
    assert_eq!(h.worker.run_due("record").await, 0, "dead jobs do not run");

    // Replay one: a fresh set of attempts, the history kept.
    let replayed = h.svc.retry(&alice(), &job.id).await.unwrap();
    assert_eq!((replayed.state, replayed.attempts), (JobState::Queued, 0));
    for _ in 0..3 {
        h.clock.advance(60_000);
        h.worker.run_due("record").await;
    }
    assert_eq!(h.job(&job.id).await.state, JobState::Dead);
    assert_eq!(h.svc.get(&alice(), &job.id).await.unwrap().attempts_history.len(), 6);

    // Replay all of a tenant's dead jobs; another tenant's stay dead.
    let theirs = h.svc.enqueue(&bob(), EnqueueRequest { max_attempts: Some(1), ..req_fail() }).await.unwrap().0;
    h.worker.run_due("record").await;
    assert_eq!(h.job(&theirs.id).await.state, JobState::Dead);
    let n = h.svc.retry_dead(&alice(), RetryDeadRequest::default()).await.unwrap().count;
    assert_eq!(n, 1);
    assert_eq!(h.job(&job.id).await.state, JobState::Queued);
    assert_eq!(h.job(&theirs.id).await.state, JobState::Dead);
}

fn req_fail() -> EnqueueRequest {
    EnqueueRequest { kind: "record".into(), payload: json!({ "fail_times": 100 }), ..Default::default() }
}

async fn a_permanent_failure_dead_letters_at_once(h: Harness) {
    let job = h.enqueue(&alice(), "record", json!({ "fail_times": 1, "how": "permanent" })).await;
    h.worker.run_due("record").await;
    let j = h.job(&job.id).await;
    assert_eq!((j.state, j.attempts, j.last_error.as_deref()), (JobState::Dead, 1, Some("planned failure 1")));
}

async fn timeouts_and_panics_are_failed_attempts(h: Harness) {
    let req =
        EnqueueRequest { kind: "stall".into(), timeout_ms: Some(50), max_attempts: Some(2), ..Default::default() };
    let stalled = h.svc.enqueue(&alice(), req).await.unwrap().0;
    h.worker.run_due("stall").await;
    let j = h.job(&stalled.id).await;
    assert_eq!((j.state, j.last_error.as_deref()), (JobState::Queued, Some("timed out after 50 ms")));
    let history = h.svc.get(&alice(), &stalled.id).await.unwrap().attempts_history;
    assert_eq!(history[0].outcome, AttemptOutcome::TimedOut);

    let panicky = h.enqueue(&alice(), "record", json!({ "fail_times": 1, "how": "panic" })).await;
    h.worker.run_due("record").await;
    let j = h.job(&panicky.id).await;
    assert_eq!(j.state, JobState::Queued, "a panic is retried like any failure");
    assert!(j.last_error.unwrap().contains("panicked: planned failure 1"));
    h.clock.advance(2_000);
    h.worker.run_due("record").await;
    assert_eq!(h.job(&panicky.id).await.state, JobState::Succeeded);
}

/// A claim of one `record` job by worker `ghost` under lease `L1`, at the clock's start.
fn ghost_claim() -> ClaimRequest<'static> {
    ClaimRequest { kind: "record", worker: "ghost", lease_id: "L1", now_ms: T0, lease_ms: 10_000, limit: 1 }
}

async fn an_expired_lease_is_taken_back_and_the_stale_worker_fenced(h: Harness) {
    let job = h.enqueue(&alice(), "record", json!({})).await;
    // A worker claims it and then goes silent (it died, or hangs).
    let claim = ghost_claim();
    assert_eq!(h.store.claim_jobs(&claim).await.unwrap().len(), 1);
    h.clock.advance(9_999);
    assert!(h.worker.reap_once().await.unwrap().requeued.is_empty(), "not before the lease ends");
    h.clock.advance(2);
    let reaped = h.worker.reap_once().await.unwrap();
    assert_eq!(reaped.requeued, vec![(job.id.clone(), "record".to_owned())]);
    assert_eq!(h.worker.run_due("record").await, 1);
    assert_eq!(h.job(&job.id).await.state, JobState::Succeeded);
    // The ghost comes back and reports: fenced off, nothing changes.
    let stale = Finish {
        job_id: job.id.clone(),
        lease_id: "L1".into(),
        worker: "ghost".into(),
        started_at_ms: T0,
        at_ms: T0 + 20_000,
        outcome: Outcome::Dead { error: "late".into(), outcome: AttemptOutcome::Failed },
    };
    assert_eq!(h.store.finish_jobs(&[stale]).await.unwrap(), vec![false]);
    let j = h.job(&job.id).await;
    assert_eq!((j.state, j.attempts), (JobState::Succeeded, 2));
    let outcomes: Vec<_> =
        h.svc.get(&alice(), &job.id).await.unwrap().attempts_history.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [AttemptOutcome::LeaseExpired, AttemptOutcome::Succeeded]);
}

async fn a_lease_lost_on_the_last_attempt_dead_letters(h: Harness) {
    let req = EnqueueRequest { kind: "record".into(), payload: json!({}), max_attempts: Some(1), ..Default::default() };
    let job = h.svc.enqueue(&alice(), req).await.unwrap().0;
    let claim = ghost_claim();
    h.store.claim_jobs(&claim).await.unwrap();
    h.clock.advance(20_000);
    let reaped = h.worker.reap_once().await.unwrap();
    assert_eq!(reaped.dead.len(), 1);
    let j = h.job(&job.id).await;
    assert_eq!(j.state, JobState::Dead);
    assert!(j.last_error.unwrap().contains("lease expired"));
}

async fn shutdown_hands_unfinished_jobs_back(h: Harness) {
    let job = h.enqueue(&alice(), "stall", json!({})).await;
    h.worker.start();
    h.wait_for(&job.id, JobState::Running).await;
    h.worker.shutdown(Duration::from_millis(50)).await;
    let j = h.job(&job.id).await;
    assert_eq!((j.state, j.attempts), (JobState::Queued, 0), "handed back, the attempt not counted");
    let history = h.svc.get(&alice(), &job.id).await.unwrap().attempts_history;
    assert_eq!(history[0].outcome, AttemptOutcome::Interrupted);
}
