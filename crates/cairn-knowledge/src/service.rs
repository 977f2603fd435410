//! The knowledge service: collections, documents and search, for a caller. Roles and tenants
//! are checked here (another tenant's collection reads as missing). Uploads answer at once:
//! each document is recorded as pending and a `knowledge.ingest` job makes it searchable.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::audit::{self, AuditAction};
use cairn_core::knowledge::{Collection, Document, DocumentState, PiiMode};
use cairn_core::store::Store;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::trace::Tracer;
use cairn_core::{CallContext, Error, Result};
use cairn_jobs::{EnqueueRequest, JobService};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::analyze::Analyzer;
use crate::embed::{EmbedFailure, TextEmbedder};
use crate::filter::Filter;
use crate::highlight::Highlighter;
use crate::ingest::INGEST_JOB;
use crate::prepare::{redact_upload, redactor};
use crate::retrieve::{wrong_dimensions, Retriever, SearchMode, SearchQuery};
use crate::traced;
use crate::upload::UploadLimits;

/// Body of a collection creation.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// Name, unique within the tenant: 1-64 characters of a-z, 0-9, '-' and '_'.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub name: String,
    /// The embedding model, a gateway model name (e.g. `local/minilm`).
    #[schema(min_length = 1)]
    pub embedding_model: String,
    /// Chunk budget in the model's tokens (16-2048, default 200).
    #[serde(default)]
    #[schema(minimum = 16, maximum = 2048)]
    pub chunk_max_tokens: Option<u32>,
    /// Overlap between chunks in tokens (default 30, or a quarter of a smaller budget). An
    /// overlap of half the budget or more is lowered to just under half (the collection shows
    /// the overlap it uses).
    #[serde(default)]
    #[schema(maximum = 2048)]
    pub chunk_overlap_tokens: Option<u32>,
    /// Personal-data policy (default `mask`).
    #[serde(default)]
    pub pii: Option<PiiMode>,
    /// Top-level metadata fields kept as they are; every other string in metadata is redacted
    /// like the text (at most 64 names; a name no field has changes nothing).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub pii_exempt_fields: Vec<String>,
    /// Tenant to create it for (owners only).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub tenant_id: Option<String>,
}

/// A document to add as text.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    /// Id (1-128 characters, no control characters); generated when absent. An existing id
    /// is replaced.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub id: Option<String>,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Where it came from.
    #[serde(default)]
    pub source: Option<String>,
    /// The text (Markdown headings guide chunking).
    #[schema(min_length = 1, pattern = "[^\\s\\u0085]")]
    pub text: String,
    /// User metadata: a JSON object of strings, numbers, booleans, dates and lists.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A document accepted for ingestion.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The document (pending until its job ends).
    pub document: Document,
    /// The ingestion job.
    pub job_id: String,
}

/// A search.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query text (at most 4,096 characters).
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub query: String,
    /// `keyword`, `vector` or `hybrid` (default).
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// Results wanted, 1-100 (default 10).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub top_k: Option<usize>,
    /// A metadata filter (see the filter language).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// More collections to search with the one in the path (10 in all, at most).
    #[serde(default)]
    #[schema(max_items = 9)]
    pub also: Vec<String>,
}

/// One search result.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SearchHit {
    /// The chunk.
    pub chunk_id: u64,
    /// Its collection.
    pub collection_id: String,
    /// Its document.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// The document's metadata.
    pub metadata: Value,
    /// The score in the chosen mode.
    pub score: f32,
    /// Cosine similarity of the chunk to the query (absent in keyword mode): comparable across
    /// queries, unlike `score`.
    pub similarity: Option<f32>,
    /// The chunk's text.
    pub text: String,
    /// The part of the text that best matches the query, HTML-escaped, with matching words in
    /// `<mark>`.
    pub snippet: String,
    /// Headings above it.
    pub headings: Vec<String>,
}

/// Which documents of a collection to list.
#[derive(Clone, Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// Only documents in this state (`failed`: the ingestions that failed).
    pub state: Option<cairn_core::knowledge::DocumentState>,
}

/// One page of documents, by id.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DocumentPage {
    /// Always `list`.
    pub object: &'static str,
    /// The documents, with their state (`pending`, `ready`, `failed`) and chunk count.
    pub data: Vec<Document>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Collections, documents and search (see the module docs).
pub struct KnowledgeService {
    store: Arc<dyn Store>,
    jobs: Arc<JobService>,
    embedder: Arc<dyn TextEmbedder>,
    retriever: Arc<dyn Retriever>,
    analyzer: Arc<Analyzer>,
    pii_key: Vec<u8>,
    max_document_bytes: usize,
    pub(crate) uploads: UploadLimits,
    pub(crate) tracer: Tracer,
    metrics: Option<Arc<cairn_telemetry::Metrics>>,
}

/// Most collections one search covers (the path's and `also`, duplicates counted once).
pub const MAX_SEARCH_COLLECTIONS: usize = 10;
/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;
/// Most results one search returns.
pub const MAX_TOP_K: usize = 100;

/// The `hash` policy needs a key; without one nothing is hashed (or stored) at all.
pub(crate) fn missing_pii_key() -> Error {
    Error::Unavailable {
        message: "this collection hashes personal data, but the server has no key: set CAIRN_PII_KEY".into(),
        retry_after: None,
    }
}

fn past_deadline() -> Error {
    Error::Unavailable { message: "the search ran past the request's deadline".into(), retry_after: None }
}

fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn embed_error(e: EmbedFailure) -> Error {
    match e {
        EmbedFailure::Transient(message) => Error::Unavailable { message, retry_after: None },
        EmbedFailure::UnknownModel(m) => Error::NotFound(m),
        EmbedFailure::Permanent(m) => Error::invalid_param("embedding_model", m),
        EmbedFailure::Limited { message, retry_after, budget: true } => Error::BudgetExceeded { message, retry_after },
        EmbedFailure::Limited { message, retry_after, budget: false } => Error::RateLimited { message, retry_after },
    }
}

impl KnowledgeService {
    /// A service over `store`, queueing ingestion on `jobs`.
    pub fn new(
        store: Arc<dyn Store>,
        jobs: Arc<JobService>,
        embedder: Arc<dyn TextEmbedder>,
        retriever: Arc<dyn Retriever>,
    ) -> Self {
        Self {
            store,
            jobs,
            embedder,
            retriever,
            analyzer: Arc::new(Analyzer::english()),
            pii_key: Vec::new(),
            max_document_bytes: 900 * 1024,
            uploads: UploadLimits::from(&cairn_core::config::KnowledgeConfig::default()),
            tracer: Tracer::off(),
            metrics: None,
        }
    }

    /// The key of the `hash` PII policy (`CAIRN_PII_KEY`). Without one, collections with that
    /// policy are refused: a hash under an empty key protects nothing.
    pub fn with_pii_key(mut self, key: Vec<u8>) -> Self {
        self.pii_key = key;
        self
    }

    /// The same service recording a span per search (and its phases) through `tracer`, and
    /// search latency in `metrics`.
    pub fn with_telemetry(mut self, tracer: Tracer, metrics: Arc<cairn_telemetry::Metrics>) -> Self {
        self.tracer = tracer;
        self.metrics = Some(metrics);
        self
    }

    /// Caps a document's text (`knowledge.max_document_bytes`, longer texts get 413) and
    /// bounds uploads (documents, PDF pages and inflated bytes, parse time, concurrency).
    pub fn with_limits(mut self, config: &cairn_core::config::KnowledgeConfig) -> Self {
        self.max_document_bytes = config.max_document_bytes;
        self.uploads = UploadLimits::from(config);
        self
    }

    pub(crate) fn max_document_bytes(&self) -> usize {
        self.max_document_bytes
    }

    /// Creates a collection; the model's vector size is measured once, here.
    pub async fn create_collection(&self, ctx: &CallContext, req: CreateCollection) -> Result<Collection> {
        let caller = &ctx.principal;
        caller.require(Role::Member)?;
        let tenant_id = caller.acting_tenant_in(req.tenant_id, &*self.store).await?;
        if !slug_ok(&req.name) {
            return Err(Error::invalid_param("name", "use 1-64 characters of a-z, 0-9, '-' and '_'"));
        }
        let max = req.chunk_max_tokens.unwrap_or(200);
        if !(16..=2048).contains(&max) {
            return Err(Error::invalid_param("chunk_max_tokens", "chunk_max_tokens must be between 16 and 2048"));
        }
        // At most just under half the budget (a rule between two fields the API document
        // cannot state, so it lowers rather than refuses).
        let overlap = req.chunk_overlap_tokens.unwrap_or(30.min(max / 4)).min(max.div_ceil(2) - 1);
        if req.chunk_overlap_tokens.is_some_and(|o| o > 2048) {
            return Err(Error::invalid_param("chunk_overlap_tokens", "chunk_overlap_tokens must be at most 2048"));
        }
        if req.pii_exempt_fields.len() > 64 {
            return Err(Error::invalid_param("pii_exempt_fields", "name at most 64 fields"));
        }
        if req.pii == Some(PiiMode::Hash) && self.pii_key.is_empty() {
            // The request is sound; the server is not set up for it.
            return Err(Error::Conflict(
                "the hash policy needs a key, and this server has none: set CAIRN_PII_KEY".into(),
            ));
        }
        let probe = self.embedder.embed(ctx, &req.embedding_model, &["dimension probe".to_owned()]).await;
        let dimensions = probe.map_err(embed_error)?.first().map_or(0, Vec::len);
        if dimensions == 0 {
            return Err(Error::invalid_param("embedding_model", "the model returned no vector"));
        }
        let c = Collection {
            id: format!("col_{}", uuid::Uuid::now_v7().simple()),
            tenant_id,
            name: req.name,
            embedding_model: req.embedding_model,
            dimensions: dimensions as u32,
            chunk_max_tokens: max,
            chunk_overlap_tokens: overlap,
            pii: req.pii.unwrap_or(PiiMode::Mask),
            pii_exempt: req.pii_exempt_fields,
            created_at_ms: now_ms(),
        };
        self.store.create_collection(&c).await?;
        Ok(c)
    }

    /// A collection, if the caller may see it.
    pub async fn collection(&self, caller: &Principal, id: &str) -> Result<Collection> {
        caller.require(Role::Reader)?;
        match self.store.get_collection(id).await? {
            Some(c) if caller.sees(&c.tenant_id) => Ok(c),
            _ => Err(Error::NotFound(format!("collection '{id}' does not exist"))),
        }
    }

    /// The caller's collections (owners: every tenant's).
    pub async fn collections(&self, caller: &Principal) -> Result<Vec<Collection>> {
        caller.require(Role::Reader)?;
        let tenant = caller.readable_tenant(None)?;
        Ok(self.store.list_collections(tenant.as_deref()).await?)
    }

    /// Deletes a collection and everything in it.
    pub async fn delete_collection(&self, caller: &Principal, id: &str) -> Result<()> {
        caller.require(Role::Member)?;
        let col = self.collection(caller, id).await?;
        self.store.delete_collection(id, now_ms()).await?;
        let details = serde_json::json!({"name": col.name});
        audit::record(&*self.store, caller, &col.tenant_id, AuditAction::CollectionDelete, id, details).await;
        self.retriever.catch_up().await?;
        Ok(())
    }

    /// Records documents as pending and queues their ingestion. Everything is checked before
    /// anything is written, so a bad document leaves nothing behind.
    pub async fn add_documents(
        &self,
        ctx: &CallContext,
        collection_id: &str,
        docs: Vec<NewDocument>,
    ) -> Result<Vec<Accepted>> {
        let caller = &ctx.principal;
        caller.require(Role::Member)?;
        let col = self.collection(caller, collection_id).await?;
        if docs.is_empty() || docs.len() > 1000 {
            return Err(Error::invalid_param("documents", "send between 1 and 1000 documents"));
        }
        if col.pii == PiiMode::Hash && self.pii_key.is_empty() {
            return Err(missing_pii_key());
        }
        let now = now_ms();
        let pii = redactor(col.pii, &self.pii_key);
        let mut rows = Vec::with_capacity(docs.len());
        let mut jobs = Vec::with_capacity(docs.len());
        let mut seen = std::collections::HashSet::with_capacity(docs.len());
        for (i, d) in docs.into_iter().enumerate() {
            let at = |f: &str| format!("documents[{i}].{f}");
            let id = d.id.unwrap_or_else(|| format!("doc_{}", uuid::Uuid::now_v7().simple()));
            if id.is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
                return Err(Error::invalid_param(at("id"), "ids are 1-128 characters without control characters"));
            }
            if !seen.insert(id.clone()) {
                return Err(Error::invalid_param(at("id"), format!("document '{id}' appears twice in this request")));
            }
            if d.text.trim().is_empty() {
                return Err(Error::invalid_param(at("text"), "the document has no text"));
            }
            if d.text.len() > self.max_document_bytes {
                return Err(Error::TooLarge(format!(
                    "documents[{i}] has {} bytes of text; the limit is {} (knowledge.max_document_bytes)",
                    d.text.len(),
                    self.max_document_bytes
                )));
            }
            let metadata = d.metadata.unwrap_or_else(|| json!({}));
            if !metadata.is_object() {
                return Err(Error::invalid_param(at("metadata"), "metadata must be a JSON object"));
            }
            // Ids are the collection's own: another collection's (or tenant's) document of the
            // same id is a different document.
            let existing = self.store.get_document(&col.id, &id).await?;
            let version = existing.as_ref().map_or(1, |e| e.version + 1);
            // Nothing raw is written anywhere, the job queue included.
            let clean = redact_upload(&d.text, d.title.as_deref(), metadata, &pii, &col.pii_exempt);
            let redacted: serde_json::Map<String, Value> =
                clean.counts.iter().map(|(k, n)| (k.label().to_lowercase(), json!(n))).collect();
            jobs.push(EnqueueRequest {
                kind: INGEST_JOB.into(),
                payload: json!({
                    "collection_id": col.id, "document_id": id, "version": version, "text": clean.text,
                    "title": clean.title, "key_id": caller.key_id, "redacted": redacted,
                }),
                tenant_id: Some(col.tenant_id.clone()),
                trace: Some(ctx.trace),
                ..Default::default()
            });
            rows.push(Document {
                id,
                collection_id: col.id.clone(),
                tenant_id: col.tenant_id.clone(),
                title: clean.title.unwrap_or_default(),
                source: d.source,
                metadata: clean.metadata,
                fingerprint: existing.as_ref().and_then(|e| e.fingerprint.clone()),
                state: DocumentState::Pending,
                error: None,
                chunk_count: existing.as_ref().map_or(0, |e| e.chunk_count),
                version,
                created_at_ms: existing.as_ref().map_or(now, |e| e.created_at_ms),
                updated_at_ms: now,
            });
        }
        // The documents and their jobs in one transaction: no document is left pending with
        // no job to finish it.
        let jobs = self.jobs.prepare_internal(caller, jobs)?;
        let queued = self.store.put_documents_with_jobs(&rows, &jobs).await?;
        self.jobs.announce(&queued);
        Ok(rows.into_iter().zip(queued).map(|(document, (job, _))| Accepted { document, job_id: job.id }).collect())
    }

    /// A document, if the caller may see its collection.
    pub async fn document(&self, caller: &Principal, collection_id: &str, id: &str) -> Result<Document> {
        self.collection(caller, collection_id).await?;
        match self.store.get_document(collection_id, id).await? {
            Some(d) => Ok(d),
            None => Err(Error::NotFound(format!("document '{id}' does not exist"))),
        }
    }

    /// A page of a collection's documents, by id.
    pub async fn documents(&self, caller: &Principal, collection_id: &str, q: DocumentQuery) -> Result<DocumentPage> {
        self.collection(caller, collection_id).await?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid_param("limit", "limit must be between 1 and 1000"));
        }
        let mut data = self.store.list_documents(collection_id, q.state, q.cursor.as_deref(), limit + 1).await?;
        let next_cursor = (data.len() > limit as usize).then(|| {
            data.truncate(limit as usize);
            data.last().map(|d| d.id.clone()).unwrap_or_default()
        });
        Ok(DocumentPage { object: "list", data, next_cursor })
    }

    /// Deletes a document from every index.
    pub async fn delete_document(&self, caller: &Principal, collection_id: &str, id: &str) -> Result<()> {
        caller.require(Role::Member)?;
        let doc = self.document(caller, collection_id, id).await?;
        self.store.delete_document(collection_id, id, now_ms()).await?;
        let details = serde_json::json!({"collection": collection_id});
        audit::record(&*self.store, caller, &doc.tenant_id, AuditAction::DocumentDelete, id, details).await;
        self.retriever.catch_up().await?;
        Ok(())
    }

    /// Searches `collection_id` (and `req.also`), best first. The scoring runs on a blocking
    /// thread, bounded by the request's deadline.
    pub async fn search(&self, ctx: &CallContext, collection_id: &str, req: SearchRequest) -> Result<Vec<SearchHit>> {
        let caller = &ctx.principal;
        let mode = req.mode.unwrap_or_default();
        let k = req.top_k.unwrap_or(10);
        if !(1..=MAX_TOP_K).contains(&k) {
            return Err(Error::invalid_param("top_k", format!("top_k must be between 1 and {MAX_TOP_K}")));
        }
        if req.query.trim().is_empty() {
            return Err(Error::invalid_param("query", "the query is empty"));
        }
        if req.query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid_param(
                "query",
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        if req.also.len() >= MAX_SEARCH_COLLECTIONS {
            return Err(Error::invalid_param(
                "also",
                format!(
                    "one search covers at most {MAX_SEARCH_COLLECTIONS} collections (`also` names at most {})",
                    MAX_SEARCH_COLLECTIONS - 1
                ),
            ));
        }
        let mut ids = vec![collection_id.to_owned()];
        for id in &req.also {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        if ids.len() > MAX_SEARCH_COLLECTIONS {
            return Err(Error::invalid_param(
                "also",
                format!("one search covers at most {MAX_SEARCH_COLLECTIONS} collections"),
            ));
        }
        let filter = req
            .filter
            .as_ref()
            .map(Filter::parse)
            .transpose()
            .map_err(|e| Error::invalid_param("filter", e.to_string()))?;
        let mut cols = Vec::with_capacity(ids.len());
        for id in &ids {
            cols.push(self.collection(caller, id).await?);
        }
        let mut span = traced::retrieval(&self.tracer, ctx, &ids, mode.as_str(), k);
        let started = std::time::Instant::now();
        let outer = ctx;
        let ctx = &ctx.under(&span);
        self.retriever.catch_up().await?;
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
        if mode != SearchMode::Keyword {
            for c in &cols {
                if !vectors.contains_key(&c.embedding_model) {
                    let v = self
                        .embedder
                        .embed(ctx, &c.embedding_model, std::slice::from_ref(&req.query))
                        .await
                        .map_err(embed_error)?;
                    vectors.insert(c.embedding_model.clone(), v.into_iter().next().unwrap_or_default());
                }
            }
        }
        let filter = filter.map(Arc::new);
        let vectors: HashMap<String, Arc<[f32]>> = vectors.into_iter().map(|(m, v)| (m, Arc::from(v))).collect();
        let searches = cols.iter().map(|c| {
            let vector = vectors.get(&c.embedding_model).cloned();
            let query = SearchQuery {
                collection_id: c.id.clone(),
                text: req.query.clone(),
                vector: vector.clone(),
                mode,
                k,
                filter: filter.clone(),
            };
            async move {
                if let Some(v) = vector.as_deref().filter(|v| v.len() != c.dimensions as usize) {
                    return Err(wrong_dimensions(v.len(), c.dimensions as usize));
                }
                let found = self.retriever.search(query).await?;
                Ok((c.id.clone(), found))
            }
        });
        let all = futures::future::try_join_all(searches);
        let found = match ctx.remaining() {
            Some(left) => tokio::time::timeout(left, all).await.map_err(|_| past_deadline())??,
            None => all.await?,
        };
        let mut hits = Vec::new();
        let mut phases = Vec::with_capacity(found.len());
        for (id, f) in found {
            phases.push((id, f.phases));
            hits.extend(f.hits);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        let marks = Highlighter::new(&self.analyzer, &req.query);
        let hits = hits
            .into_iter()
            .map(|h| SearchHit {
                chunk_id: h.chunk_id,
                collection_id: h.collection_id,
                document_id: h.chunk.document_id,
                title: h.document.title,
                metadata: h.document.metadata,
                score: h.score,
                similarity: h.similarity,
                snippet: marks.snippet(&h.chunk.text),
                text: h.chunk.text,
                headings: h.chunk.headings,
            })
            .collect::<Vec<_>>();
        if let Some(m) = &self.metrics {
            m.search_duration
                .get_or_create(&vec![("mode", mode.as_str().to_owned())])
                .observe(started.elapsed().as_secs_f64());
        }
        traced::phases(&self.tracer, outer, &span, &phases);
        traced::returned(&self.tracer, &mut span, &hits);
        Ok(hits)
    }
}
