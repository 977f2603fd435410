//! Tenants take turns: one tenant's flood of jobs, even at the top priority, does not keep
//! another tenant's jobs waiting behind it, while each tenant's own priorities still order its
//! jobs.

use cairn_core::jobs::{ClaimRequest, Job};
use cairn_core::tenancy::{Role, Tenant};
use cairn_jobs::EnqueueRequest;
use serde_json::json;

use crate::{alice, bob, on_both, principal, Harness, T0};

on_both!(a_flood_from_one_tenant_does_not_hold_back_another, claims_take_turns_and_keep_each_tenants_order);

fn at(priority: i32) -> EnqueueRequest {
    EnqueueRequest { kind: "record".into(), payload: json!({}), priority, ..Default::default() }
}

async fn a_flood_from_one_tenant_does_not_hold_back_another(h: Harness) {
    // Alice's 50 jobs at the top priority come first; Bob's one job at the default after them.
    h.svc.enqueue_batch(&alice(), (0..50).map(|_| at(1000)).collect()).await.unwrap();
    let bobs = h.svc.enqueue(&bob(), at(0)).await.unwrap().0;
    // `record` runs one at a time here: each run_due claims one job. Bob's is the second.
    for _ in 0..2 {
        h.worker.run_due("record").await;
    }
    let runs = h.runs.lock().clone();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1], bobs.id, "Bob's job waited behind Alice's flood");
}

async fn claims_take_turns_and_keep_each_tenants_order(h: Harness) {
    h.store.create_tenant(&Tenant { id: "c".into(), name: "c".into(), created_at_ms: 1 }).await.unwrap();
    h.svc.enqueue_batch(&alice(), (0..5).map(|_| at(0)).collect()).await.unwrap();
    h.svc.enqueue_batch(&bob(), vec![at(0), at(5), at(-1)]).await.unwrap();
    h.svc.enqueue(&principal("c", Role::Member), at(0)).await.unwrap();
    let claim = |after_tenant: &'static str, limit: u32| ClaimRequest {
        kind: "record",
        worker: "w",
        lease_id: "L",
        now_ms: T0,
        lease_ms: 10_000,
        limit,
        after_tenant,
    };
    let shape = |jobs: Vec<Job>| {
        let mut out: Vec<(String, i32)> = jobs.into_iter().map(|j| (j.tenant_id, j.priority)).collect();
        out.sort();
        out
    };
    let pairs = |list: &[(&str, i32)]| -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = list.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        out.sort();
        out
    };
    // Turns a, b, c: each one's best job, then each one's second best, until five are taken.
    let first = h.store.claim_jobs(&claim("", 5)).await.unwrap();
    assert_eq!(shape(first), pairs(&[("a", 0), ("a", 0), ("b", 5), ("b", 0), ("c", 0)]));
    // After c the turns wrap to a, then b (its last job), then a again.
    let second = h.store.claim_jobs(&claim("c", 3)).await.unwrap();
    assert_eq!(shape(second), pairs(&[("a", 0), ("a", 0), ("b", -1)]));
    // Starting after a, only a has jobs left: the turns wrap back to it.
    let third = h.store.claim_jobs(&claim("a", 3)).await.unwrap();
    assert_eq!(shape(third), pairs(&[("a", 0)]));
    assert!(h.store.claim_jobs(&claim("", 3)).await.unwrap().is_empty());
}
