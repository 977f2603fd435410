//! The `knowledge.ingest` job: makes one document version searchable. It prepares the text
//! with the collection's settings (redaction, chunking), skips the work when the fingerprint
//! matches what is already indexed, embeds the chunks in batches, checks the vectors' size,
//! and replaces the document's chunks in one transaction, so a crash anywhere before that
//! leaves the previous version searchable and the retried job starts over.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::knowledge::{ChunkRecord, DocumentState};
use cairn_core::store::Store;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::CallContext;
use cairn_jobs::{JobContext, JobError, JobHandler};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::chunk::{index_text, ChunkOptions};
use crate::embed::{EmbedFailure, TextEmbedder};
use crate::live::LiveIndex;
use crate::prepare::{prepare_text, redactor, Preparation};

/// The job type.
pub const INGEST_JOB: &str = "knowledge.ingest";
/// Chunks embedded per call.
const EMBED_BATCH: usize = 32;

/// The job's payload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    document_id: String,
    text: String,
    #[serde(default)]
    title: Option<String>,
    /// The key that added the document: its embeddings are charged to it. Jobs queued before
    /// keys were recorded have none and run as the tenant's system caller.
    #[serde(default)]
    key_id: Option<String>,
}

/// Runs `knowledge.ingest` jobs (see the module docs).
pub struct IngestHandler {
    store: Arc<dyn Store>,
    embedder: Arc<dyn TextEmbedder>,
    index: Arc<LiveIndex>,
    hash_key: Vec<u8>,
}

impl IngestHandler {
    /// A handler writing to `store`, embedding with `embedder`, updating `index`; `hash_key`
    /// keys the `hash` PII policy.
    pub fn new(
        store: Arc<dyn Store>,
        embedder: Arc<dyn TextEmbedder>,
        index: Arc<LiveIndex>,
        hash_key: Vec<u8>,
    ) -> Self {
        Self { store, embedder, index, hash_key }
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
        Ok(call)
    }

    /// Records a failure that retrying cannot fix, and says so to the queue.
    async fn fail(&self, document_id: &str, message: String) -> JobError {
        if let Err(e) = self.store.fail_document(document_id, &message, now_ms()).await {
            tracing::warn!(document = document_id, error = %e, "could not mark the document failed");
        }
        JobError::Permanent(message)
    }
}

fn storage(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(format!("storage: {e}"))
}

#[async_trait]
impl JobHandler for IngestHandler {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        serde_json::from_value::<Payload>(payload.clone()).map(|_| ()).map_err(|e| e.to_string())
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        let p: Payload =
            serde_json::from_value(ctx.payload().clone()).map_err(|e| JobError::Permanent(e.to_string()))?;
        // A document of another tenant is as good as missing: the job's tenant is who asked.
        let doc = self.store.get_document(&p.document_id).await.map_err(storage)?;
        let Some(doc) = doc.filter(|d| d.tenant_id == ctx.job.tenant_id) else {
            return Ok(Some(json!({ "skipped": "the document was deleted" })));
        };
        let Some(col) = self.store.get_collection(&doc.collection_id).await.map_err(storage)? else {
            return Ok(Some(json!({ "skipped": "the collection was deleted" })));
        };
        let call = self.caller(&ctx, p.key_id.as_deref()).await?;
        let tokens = self.embedder.tokenizer(&col.embedding_model).await;
        // Synchronous work, scoped so nothing it borrows is held across an await.
        let prepared = {
            let redactor = redactor(col.pii, &self.hash_key);
            let counter = |t: &str| tokens(t);
            let prep = Preparation { chunking: ChunkOptions::of(&col), redactor: &redactor, counter: &counter };
            prepare_text(p.text, p.title, Map::new(), &prep)
        };
        // The fingerprint is only stored with the chunks it describes, so a match means the
        // index already holds this content: nothing to embed or rewrite. A re-upload marked the
        // document pending (and may have changed its metadata), so it is marked ready again.
        if doc.fingerprint.as_deref() == Some(prepared.fingerprint.as_str()) {
            if doc.state != DocumentState::Ready {
                match self.store.mark_ready(&doc.id, now_ms()).await {
                    Ok(()) => self.index.catch_up(&*self.store).await.map_err(storage)?,
                    Err(cairn_core::store::StoreError::NotFound(_)) => {
                        return Ok(Some(json!({ "skipped": "the document was deleted" })))
                    }
                    Err(e) => return Err(storage(e)),
                };
            }
            return Ok(Some(json!({ "unchanged": true, "chunks": doc.chunk_count })));
        }
        if prepared.chunks.is_empty() {
            return Err(self.fail(&doc.id, "the document has no text".into()).await);
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
                Err(EmbedFailure::Permanent(m)) => return Err(self.fail(&doc.id, m).await),
            }
            ctx.progress(
                json!({ "embedded": (i * EMBED_BATCH + batch.len()).min(texts.len()), "chunks": texts.len() }),
            )
            .await?;
        }
        if let Some(bad) = vectors.iter().find(|v| v.len() != col.dimensions as usize) {
            let message = format!(
                "the model returned {}-dimension vectors; the collection holds {} dimensions",
                bad.len(),
                col.dimensions
            );
            return Err(self.fail(&doc.id, message).await);
        }
        let records: Vec<ChunkRecord> = prepared
            .chunks
            .iter()
            .zip(vectors)
            .enumerate()
            .map(|(seq, (c, embedding))| ChunkRecord {
                id: 0,
                document_id: doc.id.clone(),
                collection_id: col.id.clone(),
                seq: seq as u32,
                text: c.text.clone(),
                start: c.start as u32,
                end: c.end as u32,
                headings: c.headings.clone(),
                embedding,
            })
            .collect();
        let n = records.len();
        match self.store.replace_chunks(&doc.id, &prepared.fingerprint, &records, now_ms()).await {
            Ok(_) => {}
            // Deleted while we worked: nothing to index.
            Err(cairn_core::store::StoreError::NotFound(_)) => {
                return Ok(Some(json!({ "skipped": "the document was deleted" })));
            }
            Err(e) => return Err(storage(e)),
        }
        self.index.catch_up(&*self.store).await.map_err(storage)?;
        let redacted: Map<String, Value> =
            prepared.redacted.iter().map(|(k, n)| (k.label().to_lowercase(), json!(n))).collect();
        Ok(Some(json!({ "chunks": n, "redacted": redacted })))
    }
}
