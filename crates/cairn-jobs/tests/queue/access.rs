//! Roles, tenant separation and bad input: clear errors, nothing stored.

use cairn_core::jobs::JobState;
use cairn_core::tenancy::Role;
use cairn_core::Error;
use cairn_jobs::{EnqueueRequest, ListRequest, PurgeRequest};
use serde_json::json;

use crate::{admin, alice, bob, on_both, principal, tenant_admin, Harness};

on_both!(
    tenants_see_only_their_own_jobs,
    roles_are_enforced,
    bad_input_is_refused_and_nothing_stored,
    list_pages_and_filters
);

async fn tenants_see_only_their_own_jobs(h: Harness) {
    let mine = h.enqueue(&alice(), "record", json!({})).await;
    let theirs = h.enqueue(&bob(), "record", json!({})).await;
    assert!(matches!(h.svc.get(&bob(), &mine.id).await, Err(Error::NotFound(_))));
    assert!(matches!(h.svc.cancel(&bob(), &mine.id).await, Err(Error::NotFound(_))));
    assert!(matches!(h.svc.watch(&bob(), &mine.id).await, Err(Error::NotFound(_))));
    let listed = h.svc.list(&bob(), ListRequest::default()).await.unwrap();
    assert_eq!(listed.data.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [theirs.id.as_str()]);
    assert!(matches!(
        h.svc.list(&bob(), ListRequest { tenant_id: Some("a".into()), ..Default::default() }).await,
        Err(Error::Forbidden(_))
    ));
    // A tenant's admin sees its own tenant only; owners see every tenant, and may enqueue for one.
    let own = h.svc.list(&tenant_admin("b"), ListRequest::default()).await.unwrap();
    assert_eq!(own.data.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [theirs.id.as_str()]);
    assert!(matches!(h.svc.get(&tenant_admin("b"), &mine.id).await, Err(Error::NotFound(_))));
    assert_eq!(h.svc.list(&admin(), ListRequest::default()).await.unwrap().data.len(), 2);
    assert!(h.svc.get(&admin(), &theirs.id).await.is_ok());
    let req =
        EnqueueRequest { kind: "record".into(), payload: json!({}), tenant_id: Some("b".into()), ..Default::default() };
    assert_eq!(h.svc.enqueue(&admin(), req.clone()).await.unwrap().0.tenant_id, "b");
    assert!(matches!(h.svc.enqueue(&alice(), req).await, Err(Error::Forbidden(_))));
    let ghost = EnqueueRequest {
        tenant_id: Some("ghost".into()),
        kind: "record".into(),
        payload: json!({}),
        ..Default::default()
    };
    assert!(matches!(h.svc.enqueue(&admin(), ghost).await, Err(Error::NotFound(_))));
}

async fn roles_are_enforced(h: Harness) {
    let reader = principal("a", Role::Reader);
    assert!(matches!(
        h.svc
            .enqueue(&reader, EnqueueRequest { kind: "record".into(), payload: json!({}), ..Default::default() })
            .await,
        Err(Error::Forbidden(_))
    ));
    let job = h.enqueue(&alice(), "record", json!({})).await;
    assert!(h.svc.get(&reader, &job.id).await.is_ok(), "readers may look");
    assert!(matches!(h.svc.cancel(&reader, &job.id).await, Err(Error::Forbidden(_))));
    assert!(matches!(h.svc.purge(&alice(), PurgeRequest::default()).await, Err(Error::Forbidden(_))));
}

async fn bad_input_is_refused_and_nothing_stored(h: Harness) {
    let base = EnqueueRequest { kind: "record".into(), payload: json!({}), ..Default::default() };
    let cases = [
        (EnqueueRequest { kind: "nope".into(), ..base.clone() }, "type"),
        (EnqueueRequest { payload: json!([1]), ..base.clone() }, "payload"),
        (EnqueueRequest { priority: 5000, ..base.clone() }, "priority"),
        (EnqueueRequest { max_attempts: Some(0), ..base.clone() }, "max_attempts"),
        (EnqueueRequest { timeout_ms: Some(0), ..base.clone() }, "timeout_ms"),
        (EnqueueRequest { run_at_ms: Some(1), delay_ms: Some(1), ..base.clone() }, "delay_ms"),
        (EnqueueRequest { delay_ms: Some(366 * 86_400_000), ..base.clone() }, "delay_ms"),
        (EnqueueRequest { run_at_ms: Some(4_102_444_800_001), ..base.clone() }, "run_at_ms"),
        (EnqueueRequest { idempotency_key: Some(String::new()), ..base.clone() }, "idempotency_key"),
        (EnqueueRequest { payload: json!({ "big": "x".repeat(2 << 20) }), ..base.clone() }, "payload"),
    ];
    for (req, field) in cases {
        match h.svc.enqueue(&alice(), req).await {
            Err(Error::InvalidRequest { param, .. }) => assert_eq!(param.as_deref(), Some(field)),
            other => panic!("{field}: expected a 400, got {other:?}"),
        }
    }
    // A batch with one bad job stores none of them.
    let batch = vec![base.clone(), EnqueueRequest { kind: "nope".into(), ..base.clone() }];
    match h.svc.enqueue_batch(&alice(), batch).await {
        Err(Error::InvalidRequest { param, .. }) => assert_eq!(param.as_deref(), Some("jobs[1].type")),
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(h.svc.list(&admin(), ListRequest::default()).await.unwrap().data.is_empty());
    // Bad state transitions are 409s.
    let job = h.enqueue(&alice(), "record", json!({})).await;
    assert!(matches!(h.svc.retry(&alice(), &job.id).await, Err(Error::Conflict(_))));
    h.worker.run_due("record").await;
    assert!(matches!(h.svc.cancel(&alice(), &job.id).await, Err(Error::Conflict(_))));
    assert!(matches!(h.svc.get(&alice(), "job_missing").await, Err(Error::NotFound(_))));
    assert!(matches!(
        h.svc.list(&alice(), ListRequest { limit: Some(0), ..Default::default() }).await,
        Err(Error::InvalidRequest { .. })
    ));
}

async fn list_pages_and_filters(h: Harness) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(h.enqueue(&alice(), "record", json!({})).await.id);
        h.clock.advance(10);
    }
    h.enqueue(&alice(), "gate", json!({})).await;
    let page1 = h
        .svc
        .list(&alice(), ListRequest { kind: Some("record".into()), limit: Some(3), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(
        page1.data.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [ids[4].clone(), ids[3].clone(), ids[2].clone()]
    );
    let page2 = h
        .svc
        .list(
            &alice(),
            ListRequest {
                kind: Some("record".into()),
                limit: Some(3),
                cursor: page1.next_cursor,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page2.data.len(), 2);
    assert!(page2.next_cursor.is_none());
    h.worker.run_due("record").await;
    let done =
        h.svc.list(&alice(), ListRequest { state: Some(JobState::Succeeded), ..Default::default() }).await.unwrap();
    assert_eq!(done.data.len(), 1);
    let window = ListRequest {
        created_from_ms: Some(crate::T0 + 10),
        created_to_ms: Some(crate::T0 + 30),
        ..Default::default()
    };
    assert_eq!(h.svc.list(&alice(), window).await.unwrap().data.len(), 2);
}
