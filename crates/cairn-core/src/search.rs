//! The database search port: keyword and vector retrieval run inside the database, so that no
//! node holds a copy of the corpus (PostgreSQL with pgvector implements it). The knowledge
//! layer fuses, filters and shapes results the same way whichever retriever found them; this
//! port only ranks chunks and fetches what results show.

use async_trait::async_trait;

use crate::filter::Filter;
use crate::knowledge::ChunkRecord;
use crate::store::StoreResult;

/// BM25's two knobs, as the keyword retriever scores with them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Length normalisation (0: none, 1: full).
    pub b: f32,
}

impl Default for Bm25Params {
    /// Anserini's BEIR settings (k1 0.9, b 0.4), which score best on short scientific texts.
    fn default() -> Self {
        Self { k1: 0.9, b: 0.4 }
    }
}

/// How a vector search walks the vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorScan {
    /// Through the approximate (HNSW) index: what searches use.
    Index,
    /// Every vector, exactly: the reference that recall is measured against.
    Exact,
}

/// A chunk found by a database search, with what a result shows of it and its document.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundChunk {
    /// The chunk.
    pub id: u64,
    /// Its document.
    pub document_id: String,
    /// Position in the document.
    pub seq: u32,
    /// The text.
    pub text: String,
    /// Headings above it.
    pub headings: Vec<String>,
    /// The document's title.
    pub title: String,
    /// The document's metadata.
    pub metadata: serde_json::Value,
    /// Cosine similarity to the query vector, when one was given.
    pub similarity: Option<f32>,
}

/// Retrieval inside the database (see the module docs). Every method is scoped to one
/// collection; callers check tenancy before.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// The `depth` chunks of `collection_id` with the highest BM25 scores for the analysed
    /// query `terms` (repeats count again), among chunks whose document passes `filter`, best
    /// first. Chunks matching no term are not returned.
    async fn keyword_search(
        &self,
        collection_id: &str,
        terms: &[String],
        params: Bm25Params,
        depth: usize,
        filter: Option<&Filter>,
    ) -> StoreResult<Vec<(u64, f32)>>;

    /// The `depth` chunks of `collection_id` most similar (cosine) to `vector` among those
    /// whose document passes `filter`, best first, with their similarity.
    async fn vector_search(
        &self,
        collection_id: &str,
        vector: &[f32],
        depth: usize,
        filter: Option<&Filter>,
        scan: VectorScan,
    ) -> StoreResult<Vec<(u64, f32)>>;

    /// The chunks of `collection_id` with these ids (those that still exist, in any order),
    /// each with its cosine similarity to `vector` when one is given.
    async fn found_chunks(
        &self,
        collection_id: &str,
        ids: &[u64],
        vector: Option<&[f32]>,
    ) -> StoreResult<Vec<FoundChunk>>;

    /// Collections whose chunks were stored before the database indexed them.
    async fn collections_to_backfill(&self) -> StoreResult<Vec<String>>;

    /// Indexes stored chunks of `collection_id` given with their `terms` (those gone or
    /// already indexed are skipped); returns how many were indexed.
    async fn index_chunks(&self, collection_id: &str, chunks: &[ChunkRecord]) -> StoreResult<usize>;

    /// Notes that every chunk of `collection_id` is indexed.
    async fn mark_backfilled(&self, collection_id: &str) -> StoreResult<()>;
}
