//! A write whose caller goes away half-way (a client that hangs up, a timeout) leaves nothing
//! half-written and never blocks the writes after it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use cairn_core::jobs::NewJob;
use cairn_core::store::Store;
use cairn_core::usage::Settlement;
use cairn_store::conformance;

/// Polls `fut` until it is done or `polls` polls have passed, yielding to the runtime in
/// between, then drops it; returns how many polls it took.
async fn abandon_after(fut: impl Future<Output = cairn_core::store::StoreResult<()>>, polls: usize) -> usize {
    let mut fut = pin!(fut);
    for n in 0..polls {
        if let Poll::Ready(done) = futures::poll!(fut.as_mut()) {
            done.unwrap();
            return n + 1;
        }
        tokio::task::yield_now().await;
    }
    polls
}

/// A batch large enough to take several statements in one transaction.
fn batch(k: usize) -> Vec<Settlement> {
    (0..1_000)
        .map(|i| {
            let mut record = conformance::usage(&format!("b{k}-{i}"), 1_000 + i as i64, "acme", "kb", "fast", 0.001);
            record.request_id = format!("batch-{k}");
            Settlement { record, reservation_id: None }
        })
        .collect()
}

async fn abandoned_batches_are_all_or_nothing(store: Arc<dyn Store>) {
    // How many polls a whole batch takes here; then batches are cut after 0/32 of that, 1/32,
    // ... up to the whole, at every stage of their transaction.
    let whole = abandon_after(store.insert_usage(&batch(usize::MAX)), usize::MAX).await;
    let mut kept = 0;
    for k in 0..=32 {
        abandon_after(store.insert_usage(&batch(k)), whole * k / 32).await;
        // The next write goes through (the abandoned transaction was rolled back, not left open).
        let next = batch(1_000 + k);
        store.insert_usage(&next[..1]).await.unwrap();
        let stored = store.usage_by_request(&format!("batch-{k}")).await.unwrap().len();
        assert!(stored == 0 || stored == 1_000, "batch {k} half-written: {stored} of 1000 rows");
        kept += usize::from(stored == 1_000);
        assert_eq!(store.usage_by_request(&format!("batch-{}", 1_000 + k)).await.unwrap().len(), 1);
    }
    // Never polled, the first batch never started.
    assert!(kept < 33, "{kept} of 33 abandoned batches were kept");
}

fn job(id: &str) -> NewJob {
    NewJob {
        id: id.into(),
        tenant_id: "acme".into(),
        kind: "record".into(),
        payload: serde_json::json!({}),
        priority: 0,
        idempotency_key: None,
        max_attempts: 3,
        timeout_ms: 1_000,
        run_at_ms: 1,
        created_at_ms: 1,
        trace_parent: None,
    }
}

/// `store` has one connection, so every write after a cut transaction runs on that
/// transaction's connection; `observer` is another store on the same database. A transaction
/// cut at any stage, even while its `BEGIN` is on the wire, must not leave that connection
/// inside a transaction: the single-statement write after it would run in it, and no one else
/// would ever see it.
async fn a_cut_transaction_never_swallows_the_next_write(store: Arc<dyn Store>, observer: Arc<dyn Store>) {
    let whole = abandon_after(async { store.enqueue_jobs(&[job("whole")]).await.map(drop) }, usize::MAX).await;
    for k in 0..=whole {
        abandon_after(async { store.enqueue_jobs(&[job(&format!("cut-{k}"))]).await.map(drop) }, k).await;
        let next = batch(2_000 + k);
        store.insert_usage(&next[..1]).await.unwrap();
        let seen = observer.usage_by_request(&format!("batch-{}", 2_000 + k)).await.unwrap();
        assert_eq!(seen.len(), 1, "the write after a transaction cut after {k} polls was not committed");
    }
}

#[tokio::test]
async fn sqlite_abandoned_writes_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    abandoned_batches_are_all_or_nothing(cairn_store::open(&url, 2).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_abandoned_writes_are_all_or_nothing() {
    let url = conformance::fresh_pg_database().await;
    abandoned_batches_are_all_or_nothing(cairn_store::open(&url, 2).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_a_cut_transaction_never_swallows_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    let store = cairn_store::open(&url, 1).await.unwrap();
    a_cut_transaction_never_swallows_the_next_write(store, cairn_store::open(&url, 1).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_a_cut_transaction_never_swallows_the_next_write() {
    let url = conformance::fresh_pg_database().await;
    let store = cairn_store::open(&url, 1).await.unwrap();
    a_cut_transaction_never_swallows_the_next_write(store, cairn_store::open(&url, 1).await.unwrap()).await;
}
