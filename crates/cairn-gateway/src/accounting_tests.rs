//! The usage writer against a real SQLite file: records a client waits for are written at once,
//! records nobody waits for still reach storage (alone, with an awaited one, or on a flush).

use std::sync::Arc;
use std::time::Duration;

use cairn_core::store::Store;
use cairn_core::usage::{CallStatus, UsageRecord};
use cairn_telemetry::Metrics;

use super::{Urgency, UsageRecorder};

/// A usage record of call `id` made by request `request`.
pub(crate) fn record(id: &str, request: &str) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        request_id: request.into(),
        ts_ms: cairn_core::time::now_ms(),
        tenant_id: "default".into(),
        key_id: "key_test".into(),
        endpoint: "chat".into(),
        model_alias: "m".into(),
        provider: "p".into(),
        upstream_model: "u".into(),
        input_tokens: 10,
        output_tokens: 5,
        tokens_estimated: false,
        cost_usd: 0.0,
        latency_ms: 1,
        ttft_ms: None,
        output_tokens_per_s: None,
        retries: 0,
        fallbacks: 0,
        streamed: true,
        status: CallStatus::Ok,
        error: None,
    }
}

async fn recorder() -> (tempfile::TempDir, Arc<dyn Store>, UsageRecorder) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    let store = cairn_store::open(&url, 2).await.expect("store");
    let rec = UsageRecorder::start(store.clone(), Arc::new(Metrics::new()), Duration::from_secs(1), None);
    (dir, store, rec)
}

/// The ids of `request`'s stored usage records, sorted.
pub(crate) async fn stored(store: &dyn Store, request: &str) -> Vec<String> {
    let mut ids: Vec<String> = store.usage_by_request(request).await.expect("read").into_iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_record_nobody_waits_for_is_still_written_on_its_own() {
    let (_dir, store, rec) = recorder().await;
    let committed = rec.record(record("call-1", "req-a"), None, Urgency::Behind).expect("no journal");
    committed.await.expect("the writer answers");
    assert_eq!(stored(&*store, "req-a").await, vec!["call-1"]);
}

#[tokio::test]
async fn an_awaited_record_takes_the_lingering_ones_with_it() {
    let (_dir, store, rec) = recorder().await;
    let behind: Vec<_> =
        (0..5).map(|i| rec.record(record(&format!("call-{i}"), "req-b"), None, Urgency::Behind)).collect();
    let awaited = rec.record(record("call-9", "req-b"), None, Urgency::Awaited).expect("no journal");
    awaited.await.expect("the writer answers");
    // Queued before the awaited one: written in its transaction or an earlier one.
    assert_eq!(stored(&*store, "req-b").await.len(), 6);
    for done in behind {
        done.expect("no journal").await.expect("each lingering record is answered");
    }
}

#[tokio::test]
async fn a_flush_writes_what_lingers() {
    let (_dir, store, rec) = recorder().await;
    for i in 0..3 {
        drop(rec.record(record(&format!("call-{i}"), "req-c"), None, Urgency::Behind));
    }
    rec.flush().await;
    assert_eq!(stored(&*store, "req-c").await, vec!["call-0", "call-1", "call-2"]);
}
