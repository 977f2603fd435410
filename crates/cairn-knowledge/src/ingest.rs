//! The `knowledge.ingest` job: makes one document version searchable. It prepares the text
//! with the collection's settings (chunking; the text was redacted when it was accepted),
//! skips the work when the fingerprint matches what is already indexed, embeds the chunks in
//! batches, checks the vectors' size, and replaces the document's chunks in one transaction,
//! so a crash anywhere before that leaves the previous version searchable and the retried job
//! starts over. Every write names the version the job was made for: once a newer upload
//! superseded it (a slow large version finishing after a quick small one, a replayed dead
//! job), the job changes nothing.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::knowledge::{ChunkRecord, Document, DocumentKey, DocumentState, PiiMode};
use cairn_core::store::{Store, StoreError};
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::CallContext;
use cairn_jobs::{JobContext, JobError, JobHandler};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::analyze::Analyzer;
use crate::chunk::{index_text, ChunkOptions};
use crate::embed::{EmbedFailure, TextEmbedder};
use crate::prepare::{prepare_text, redactor, Preparation};
use crate::retrieve::Retriever;

/// The job type.
pub const INGEST_JOB: &str = "knowledge.ingest";
/// Chunks embedded per call.
const EMBED_BATCH: usize = 32;

/// The job's payload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// The collection (jobs queued before ids were per collection have none).
    #[serde(default)]
    collection_id: Option<String>,
    document_id: String,
    /// The document version this job was made for (absent on older jobs: the current one).
    #[serde(default)]
    version: Option<i64>,
    text: String,
    #[serde(default)]
    title: Option<String>,
    /// The key that added the document: its embeddings are charged to it. Jobs queued before
    /// keys were recorded have none and run as the tenant's system caller.
    #[serde(default)]
    key_id: Option<String>,
    /// Values redacted when the document was accepted, by kind; present when `text` and
    /// `title` are already redacted (older jobs hold raw text and are redacted here).
    #[serde(default)]
    redacted: Option<Map<String, Value>>,
}

/// Runs `knowledge.ingest` jobs (see the module docs).
pub struct IngestHandler {
    store: Arc<dyn Store>,
    embedder: Arc<dyn TextEmbedder>,
    retriever: Arc<dyn Retriever>,
    analyzer: Analyzer,
    hash_key: Vec<u8>,
    tracer: cairn_core::trace::Tracer,
}

impl IngestHandler {
    /// A handler writing to `store`, embedding with `embedder`, then bringing `retriever` up to
    /// date (so a search after the job ends finds the document); `hash_key` keys the `hash`
    /// PII policy.
    pub fn new(
        store: Arc<dyn Store>,
        embedder: Arc<dyn TextEmbedder>,
        retriever: Arc<dyn Retriever>,
        hash_key: Vec<u8>,
    ) -> Self {
        let (analyzer, tracer) = (Analyzer::english(), cairn_core::trace::Tracer::off());
        Self { store, embedder, retriever, analyzer, hash_key, tracer }
    }

    /// Records the PII guard's verdicts through `tracer`.
    pub fn with_tracer(mut self, tracer: cairn_core::trace::Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    /// Who the job's model calls are charged to: the key that added the document, whose
    /// request (the enqueue) already counted against its request rate.
    async fn caller(&self, ctx: &JobContext, key_id: Option<&str>) -> Result<CallContext, JobError> {
        let principal = match key_id {
            // Cairn's own callers (the evaluation) carry no key and no limits.
            Some(id) if !id.starts_with("system:") => match self.store.get_key(id).await.map_err(storage)? {
                Some(k) if k.revoked_at_ms.is_none() && k.tenant_id == ctx.job.tenant_id => {
                    Principal { key_id: k.id, tenant_id: k.tenant_id, role: k.role, limits: k.limits }
                }
                _ => return Err(JobError::Permanent("the key that added this document was revoked".into())),
            },
            _ => Principal {
                key_id: key_id.unwrap_or("system:knowledge").into(),
                tenant_id: ctx.job.tenant_id.clone(),
                role: Role::Member,
                limits: KeyLimits::default(),
            },
        };
        let mut call = CallContext::new(principal, ctx.job.id.clone());
        call.request_admitted = true;
        call.trace = ctx.trace;
        Ok(call)
    }

    /// The document of a job queued before ids were per collection: found by id among the
    /// tenant's collections.
    async fn legacy_document(&self, ctx: &JobContext, id: &str) -> Result<Option<Document>, JobError> {
        for col in self.store.list_collections(Some(&ctx.job.tenant_id)).await.map_err(storage)? {
            if let Some(d) = self.store.get_document(&col.id, id).await.map_err(storage)? {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Records a failure that retrying cannot fix, and says so to the queue.
    async fn fail(&self, doc: &DocumentKey<'_>, message: String) -> JobError {
        if let Err(e) = self.store.fail_document(doc, &message, now_ms()).await {
            tracing::warn!(document = doc.id, error = %e, "could not mark the document failed");
        }
        JobError::Permanent(message)
    }
}

fn storage(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(format!("storage: {e}"))
}

#[async_trait]
impl JobHandler for IngestHandler {
    fn validate(&self, _tenant_id: &str, payload: &Value) -> Result<(), cairn_jobs::Refusal> {
        serde_json::from_value::<Payload>(payload.clone()).map(|_| ()).map_err(|e| e.to_string().into())
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        let p: Payload =
            serde_json::from_value(ctx.payload().clone()).map_err(|e| JobError::Permanent(e.to_string()))?;
        let skipped = |why: &str| Ok(Some(json!({ "skipped": why })));
        // A document of another tenant is as good as missing: the job's tenant is who asked.
        let doc = match &p.collection_id {
            Some(c) => self.store.get_document(c, &p.document_id).await.map_err(storage)?,
            None => self.legacy_document(&ctx, &p.document_id).await?,
        };
        let Some(doc) = doc.filter(|d| d.tenant_id == ctx.job.tenant_id) else {
            return skipped("the document was deleted");
        };
        let version = p.version.unwrap_or(doc.version);
        if doc.version != version {
            return skipped("a newer version of the document superseded this one");
        }
        let key = DocumentKey { collection_id: &doc.collection_id, id: &doc.id, version };
        let Some(col) = self.store.get_collection(&doc.collection_id).await.map_err(storage)? else {
            return skipped("the collection was deleted");
        };
        if col.pii == PiiMode::Hash && self.hash_key.is_empty() {
            return Err(self
                .fail(&key, "the collection hashes personal data, but CAIRN_PII_KEY is not set".into())
                .await);
        }
        let call = self.caller(&ctx, p.key_id.as_deref()).await?;
        let tokens = self.embedder.tokenizer(&col.embedding_model).await;
        // Synchronous work, scoped so nothing it borrows is held across an await.
        // Chunking (and redacting older jobs' text) is CPU work: off the async workers.
        let policy = if p.redacted.is_some() { PiiMode::Off } else { col.pii };
        let (hash_key, chunking, text, title) = (self.hash_key.clone(), ChunkOptions::of(&col), p.text, p.title);
        let prepared = tokio::task::spawn_blocking(move || {
            let redactor = redactor(policy, &hash_key);
            let counter = |t: &str| tokens(t);
            let prep = Preparation { chunking, redactor: &redactor, counter: &counter };
            prepare_text(text, title, Map::new(), &prep)
        })
        .await
        .map_err(|e| JobError::Retry(format!("preparing the document: {e}")))?;
        // The fingerprint is only stored with the chunks it describes, so a match means the
        // index already holds this content: nothing to embed or rewrite. A re-upload marked the
        // document pending (and may have changed its metadata), so it is marked ready again.
        if doc.fingerprint.as_deref() == Some(prepared.fingerprint.as_str()) {
            if doc.state != DocumentState::Ready {
                match self.store.mark_ready(&key, now_ms()).await {
                    Ok(()) => self.retriever.catch_up().await.map_err(storage)?,
                    Err(StoreError::NotFound(_)) => return skipped("the document was deleted"),
                    Err(StoreError::Conflict(_)) => {
                        return skipped("a newer version of the document superseded this one")
                    }
                    Err(e) => return Err(storage(e)),
                };
            }
            return Ok(Some(json!({ "unchanged": true, "chunks": doc.chunk_count })));
        }
        if prepared.chunks.is_empty() {
            return Err(self.fail(&key, "the document has no text".into()).await);
        }
        let texts: Vec<String> = prepared.chunks.iter().map(|c| index_text(&c.headings, &c.text)).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for (i, batch) in texts.chunks(EMBED_BATCH).enumerate() {
            if ctx.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            match self.embedder.embed(&call, &col.embedding_model, batch).await {
                Ok(v) if v.len() == batch.len() => vectors.extend(v),
                Ok(v) => {
                    return Err(JobError::Retry(format!(
                        "the model returned {} vectors for {} texts",
                        v.len(),
                        batch.len()
                    )))
                }
                Err(EmbedFailure::Transient(m) | EmbedFailure::Limited { message: m, .. }) => {
                    return Err(JobError::Retry(m))
                }
                Err(EmbedFailure::Permanent(m) | EmbedFailure::UnknownModel(m)) => {
                    return Err(self.fail(&key, m).await)
                }
            }
            ctx.progress(
                json!({ "embedded": (i * EMBED_BATCH + batch.len()).min(texts.len()), "chunks": texts.len() }),
            )
            .await?;
        }
        if vectors.iter().flatten().any(|x| !x.is_finite()) {
            return Err(self.fail(&key, "the model returned a vector with non-finite components".into()).await);
        }
        if let Some(bad) = vectors.iter().find(|v| v.len() != col.dimensions as usize) {
            let message = format!(
                "the model returned {}-dimension vectors; the collection holds {} dimensions",
                bad.len(),
                col.dimensions
            );
            return Err(self.fail(&key, message).await);
        }
        let records: Vec<ChunkRecord> = prepared
            .chunks
            .iter()
            .zip(vectors)
            .zip(&texts)
            .enumerate()
            .map(|(seq, ((c, embedding), indexed))| ChunkRecord {
                id: 0,
                document_id: doc.id.clone(),
                collection_id: col.id.clone(),
                seq: seq as u32,
                text: c.text.clone(),
                start: c.start as u32,
                end: c.end as u32,
                headings: c.headings.clone(),
                embedding,
                terms: self.analyzer.terms(indexed),
            })
            .collect();
        let n = records.len();
        match self.store.replace_chunks(&key, &prepared.fingerprint, &records, now_ms()).await {
            Ok(_) => {}
            // Deleted, or superseded by a newer upload, while we worked: nothing to index.
            Err(StoreError::NotFound(_)) => return skipped("the document was deleted"),
            Err(StoreError::Conflict(_)) => return skipped("a newer version of the document superseded this one"),
            Err(e) => return Err(storage(e)),
        }
        self.retriever.catch_up().await.map_err(storage)?;
        let redacted: Map<String, Value> = match p.redacted {
            Some(at_upload) => at_upload,
            None => prepared.redacted.iter().map(|(k, n)| (k.label().to_lowercase(), json!(n))).collect(),
        };
        if col.pii != PiiMode::Off {
            crate::traced::redactions(&self.tracer, &call, col.pii.as_str(), &redacted);
        }
        Ok(Some(json!({ "chunks": n, "redacted": redacted })))
    }
}
