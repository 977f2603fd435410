//! Shared test setup: a real SQLite store and job queue, and a stand-in for the gateway behind
//! the `TextEmbedder` port (bag-of-words vectors, with faults on demand).

#![allow(dead_code)]

pub mod records;

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::config::JobsConfig;
use cairn_core::knowledge::{Collection, Document, DocumentState, PiiMode};
use cairn_core::store::Store;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::CallContext;
use cairn_jobs::{EnqueueRequest, JobService, ManualClock, Registry, Worker};
use cairn_knowledge::embed::{EmbedFailure, TextEmbedder};
use cairn_knowledge::ingest::{IngestHandler, INGEST_JOB};
use cairn_knowledge::live::{LiveIndex, SearchMode};
use cairn_knowledge::service::KnowledgeService;
use parking_lot::Mutex;
use serde_json::json;

pub const DIM: usize = 16;

/// Bag-of-words vectors; `fault` makes the next calls fail or return the wrong size.
#[derive(Default)]
pub struct StandInEmbedder {
    pub fault: Mutex<Option<&'static str>>,
}

#[async_trait]
impl TextEmbedder for StandInEmbedder {
    async fn embed(&self, _ctx: &CallContext, _model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        match *self.fault.lock() {
            Some("down") => return Err(EmbedFailure::Transient("the model is unavailable".into())),
            Some("unknown") => return Err(EmbedFailure::UnknownModel("the model 'm' does not exist".into())),
            Some("wrong_size") => return Ok(texts.iter().map(|_| vec![1.0; DIM + 1]).collect()),
            _ => {}
        }
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; DIM];
                for w in t.split_whitespace() {
                    v[w.bytes().map(usize::from).sum::<usize>() % DIM] += 1.0;
                }
                v
            })
            .collect())
    }
}

pub struct Setup {
    pub store: Arc<dyn Store>,
    pub jobs: Arc<JobService>,
    pub worker: Worker,
    pub index: Arc<LiveIndex>,
    pub embedder: Arc<StandInEmbedder>,
    pub clock: Arc<ManualClock>,
    pub service: KnowledgeService,
    _dir: tempfile::TempDir,
}

pub async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_store::open(&format!("sqlite://{}", dir.path().join("k.db").display()), 4).await.unwrap();
    let collection = Collection {
        id: "col".into(),
        tenant_id: "acme".into(),
        name: "docs".into(),
        embedding_model: "m".into(),
        dimensions: DIM as u32,
        chunk_max_tokens: 20,
        chunk_overlap_tokens: 0,
        pii: PiiMode::Mask,
        pii_exempt: Vec::new(),
        created_at_ms: 1,
    };
    store.create_collection(&collection).await.unwrap();
    // The member's key: ingestion charges its embeddings to the key that added the document.
    let tenant = cairn_core::tenancy::Tenant { id: "acme".into(), name: "Acme".into(), created_at_ms: 1 };
    store.create_tenant(&tenant).await.unwrap();
    let key = cairn_core::tenancy::ApiKey {
        id: member().key_id,
        tenant_id: "acme".into(),
        name: "member".into(),
        role: Role::Member,
        prefix: "sk-cairn-test".into(),
        hash: "test-hash".into(),
        limits: KeyLimits::default(),
        created_at_ms: 1,
        revoked_at_ms: None,
    };
    store.insert_key(&key).await.unwrap();
    let index = Arc::new(LiveIndex::open(store.clone()).await.unwrap());
    let embedder = Arc::new(StandInEmbedder::default());
    let mut registry = Registry::new();
    registry.register_internal(
        INGEST_JOB,
        IngestHandler::new(store.clone(), embedder.clone(), index.clone(), b"k".to_vec()),
    );
    let config = JobsConfig { max_attempts: 3, backoff_base_ms: 1, backoff_max_ms: 1, ..JobsConfig::default() };
    let metrics = Arc::new(cairn_telemetry::Metrics::new());
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let jobs = Arc::new(JobService::new(store.clone(), registry, config, clock.clone(), metrics));
    let worker = Worker::new(jobs.clone(), "w", None);
    let service = KnowledgeService::new(store.clone(), jobs.clone(), embedder.clone(), index.clone());
    Setup { store, jobs, worker, index, embedder, clock, service, _dir: dir }
}

pub fn member() -> Principal {
    Principal { key_id: "k".into(), tenant_id: "acme".into(), role: Role::Member, limits: KeyLimits::default() }
}

impl Setup {
    pub async fn ingest(&self, doc: &str, text: &str) -> cairn_core::jobs::Job {
        if self.store.get_document("col", doc).await.unwrap().is_none() {
            let d = Document {
                id: doc.into(),
                collection_id: "col".into(),
                tenant_id: "acme".into(),
                title: doc.into(),
                source: None,
                metadata: json!({}),
                fingerprint: None,
                state: DocumentState::Pending,
                error: None,
                chunk_count: 0,
                version: 1,
                created_at_ms: 1,
                updated_at_ms: 1,
            };
            self.store.put_document(&d).await.unwrap();
        }
        let req = EnqueueRequest {
            kind: INGEST_JOB.into(),
            payload: json!({ "document_id": doc, "text": text }),
            ..Default::default()
        };
        let (job, _) = self.jobs.enqueue_internal(&member(), vec![req]).await.unwrap().remove(0);
        self.worker.run_due(INGEST_JOB).await;
        self.store.get_job(&job.id).await.unwrap().unwrap()
    }

    pub fn find(&self, query: &str) -> Vec<String> {
        self.index
            .search("col", query, None, SearchMode::Keyword, 10, None)
            .unwrap()
            .into_iter()
            .map(|h| h.chunk.text)
            .collect()
    }
}

/// A call context for `p` (tests make every call as one request).
pub fn ctx(p: Principal) -> CallContext {
    CallContext::new(p, "req_test")
}
