//! The `knowledge.ingest` job on a real SQLite store and the real job queue: redaction,
//! chunking, embedding, atomic replacement, the no-op re-ingest, and failures (a model that
//! returns the wrong size, one that is down, a document deleted meanwhile). The embedder is a
//! stand-in for the gateway behind the `TextEmbedder` port: bag-of-words vectors, with faults
//! on demand.

mod support;

use cairn_core::jobs::JobState;
use cairn_core::knowledge::DocumentState;
use cairn_jobs::EnqueueRequest;
use cairn_knowledge::ingest::INGEST_JOB;
use serde_json::json;
use support::{member, setup, DIM};

const TEXT: &str = "Contact jane@example.com about the trial.\n\nThe aspirin arm reduced fever in most patients. \
                    Side effects were rare and mild.";

#[tokio::test]
async fn a_document_becomes_searchable_redacted_and_chunked() {
    let s = setup().await;
    let job = s.ingest("d1", TEXT).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let result = job.result.unwrap();
    assert_eq!(result["redacted"], json!({ "email": 1 }));
    let doc = s.store.get_document("col", "d1").await.unwrap().unwrap();
    assert_eq!(doc.state, DocumentState::Ready);
    assert_eq!(doc.chunk_count as u64, result["chunks"].as_u64().unwrap());
    assert!(doc.chunk_count >= 2, "a 20-token budget splits it");
    let chunks = s.store.document_chunks("col", "d1").await.unwrap();
    assert!(chunks.iter().all(|c| !c.text.contains("jane") && c.embedding.len() == DIM));
    assert!(chunks[0].text.contains("[EMAIL]"));
    assert_eq!(s.find("aspirin fever").len(), 1);
    assert!(s.find("jane").is_empty(), "nothing personal reaches the index");
}

#[tokio::test]
async fn re_ingesting_the_same_content_is_a_no_op_and_changes_replace_everything() {
    let s = setup().await;
    s.ingest("d1", TEXT).await;
    let before = s.store.latest_change().await.unwrap();
    let again = s.ingest("d1", &format!("{TEXT}\r\n")).await;
    assert_eq!(again.result.unwrap()["unchanged"], true);
    assert_eq!(s.store.latest_change().await.unwrap(), before, "nothing rewritten");

    let changed = s.ingest("d1", "Statins lower cholesterol.").await;
    assert_eq!(changed.result.unwrap()["chunks"], 1);
    assert!(s.find("aspirin").is_empty(), "no stale chunk of the old version");
    assert_eq!(s.find("cholesterol").len(), 1);
}

#[tokio::test]
async fn failures_keep_the_previous_version_searchable() {
    let s = setup().await;
    s.ingest("d1", TEXT).await;
    // A model whose vectors do not fit the collection: failed for good, old version kept.
    *s.embedder.fault.lock() = Some("wrong_size");
    let job = s.ingest("d1", "A new version about statins.").await;
    assert_eq!(job.state, JobState::Dead);
    let doc = s.store.get_document("col", "d1").await.unwrap().unwrap();
    assert_eq!(doc.state, DocumentState::Failed);
    assert!(doc.error.unwrap().contains("17-dimension"));
    assert_eq!(s.find("aspirin").len(), 1);
    // An unavailable model: retried, not failed.
    *s.embedder.fault.lock() = Some("down");
    let job = s.ingest("d2", "Another document.").await;
    assert_eq!((job.state, job.attempts), (JobState::Queued, 1), "{job:?}");
    assert_eq!(job.last_error.as_deref(), Some("the model is unavailable"));
    *s.embedder.fault.lock() = None;
    // Deleted before its job ran: the job succeeds with nothing to do.
    s.store.delete_document("col", "d2", 5).await.unwrap();
    s.clock.advance(10); // past the 1 ms backoff
    s.worker.run_due(INGEST_JOB).await;
    let done = s.store.list_jobs(&cairn_core::jobs::JobFilter { limit: 10, ..Default::default() }).await.unwrap();
    let last = done.iter().find(|j| j.payload["document_id"] == "d2").unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    assert_eq!(last.result.as_ref().unwrap()["skipped"], "the document was deleted");
}

#[tokio::test]
async fn bad_payloads_are_refused_at_enqueue() {
    let s = setup().await;
    let req = EnqueueRequest { kind: INGEST_JOB.into(), payload: json!({ "document_id": 5 }), ..Default::default() };
    assert!(matches!(
        s.jobs.enqueue_internal(&member(), vec![req]).await,
        Err(cairn_core::Error::InvalidRequest { .. })
    ));
    // An internal type is not enqueueable through the public API at all.
    let req = EnqueueRequest {
        kind: INGEST_JOB.into(),
        payload: json!({ "document_id": "d1", "text": "x" }),
        ..Default::default()
    };
    match s.jobs.enqueue(&member(), req).await {
        Err(cairn_core::Error::InvalidRequest { param, .. }) => assert_eq!(param.as_deref(), Some("type")),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn a_job_cannot_touch_another_tenant_s_document() {
    let s = setup().await;
    s.ingest("d1", TEXT).await;
    let intruder = cairn_core::tenancy::Principal { tenant_id: "globex".into(), ..member() };
    let req = EnqueueRequest {
        kind: INGEST_JOB.into(),
        payload: json!({ "document_id": "d1", "text": "Overwritten by another tenant." }),
        ..Default::default()
    };
    let (job, _) = s.jobs.enqueue_internal(&intruder, vec![req]).await.unwrap().remove(0);
    s.worker.run_due(INGEST_JOB).await;
    let job = s.store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(job.result.unwrap()["skipped"], "the document was deleted");
    assert!(s.find("overwritten").is_empty());
    assert_eq!(s.find("aspirin").len(), 1, "the owner's version stands");
}
