//! The `[knowledge]` section: retrieval, file uploads and RAG answers.

use serde::{Deserialize, Serialize};

/// Where searches run (`knowledge.retrieval`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retrieval {
    /// `memory` on SQLite, `database` on PostgreSQL.
    #[default]
    Auto,
    /// Every collection's indexes in each node's memory, built at start and kept current by
    /// following the change log: the embedded default.
    Memory,
    /// Keyword and vector search inside PostgreSQL (pgvector): no node holds the corpus, and a
    /// node starts in constant time whatever its size. Needs PostgreSQL.
    Database,
}

/// The embedded vector index (`[knowledge.vector_index]`): an HNSW graph per collection in
/// memory-mode retrieval, saved under `storage.data_dir` so a restart loads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorIndexConfig {
    /// Neighbours per node (HNSW's M): more is better recall, more memory and slower inserts.
    pub m: usize,
    /// Candidates kept while linking a new vector.
    pub ef_construction: usize,
    /// Candidates kept while searching (at least the results a search asks for).
    pub ef_search: usize,
    /// Collections with fewer vectors are searched exactly (faster there, perfect recall).
    pub graph_from: usize,
    /// Save each collection's index under `storage.data_dir/indexes` and load it at start.
    pub persist: bool,
}

impl Default for VectorIndexConfig {
    fn default() -> Self {
        Self { m: 16, ef_construction: 100, ef_search: 64, graph_from: 10_000, persist: true }
    }
}

/// Knowledge-layer settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Where searches run: `auto` (default), `memory` or `database`.
    pub retrieval: Retrieval,
    /// The in-memory vector index of `memory` retrieval.
    pub vector_index: VectorIndexConfig,
    /// In `memory` retrieval, collections of at least this many chunks run a hybrid search's
    /// keyword and vector retrieval on two threads (on smaller ones a thread costs more than
    /// it saves).
    pub parallel_hybrid_from: usize,
    /// The chat model that writes answers unless the request names one.
    pub answer_model: String,
    /// Sources given to the model unless the request says otherwise.
    pub answer_top_k: usize,
    /// Least cosine similarity between the question and a chunk for the chunk to count as
    /// relevant; with none relevant the answer says it found nothing instead of asking the model.
    pub min_similarity: f32,
    /// Output-token cap of an answer unless the request says otherwise.
    pub answer_max_tokens: u32,
    /// Largest multipart upload (all files together), in bytes.
    pub max_upload_bytes: usize,
    /// Largest document text after parsing, in bytes.
    pub max_document_bytes: usize,
    /// Most documents one upload may hold (files and JSON Lines lines together).
    pub max_documents_per_upload: usize,
    /// Most pages read from one PDF.
    pub max_pdf_pages: usize,
    /// Most bytes one PDF's streams may inflate to, all together.
    pub max_pdf_inflated_bytes: usize,
    /// Longest time reading one upload's files may take, in seconds.
    pub parse_timeout_secs: u64,
    /// Uploads read and parsed at once by this process; more are refused with 429.
    pub max_concurrent_uploads: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            retrieval: Retrieval::Auto,
            vector_index: VectorIndexConfig::default(),
            parallel_hybrid_from: 50_000,
            answer_model: "local/smollm2".into(),
            answer_top_k: 5,
            min_similarity: 0.3,
            answer_max_tokens: 400,
            max_upload_bytes: 32 * 1024 * 1024,
            max_document_bytes: 900 * 1024,
            max_documents_per_upload: 1000,
            max_pdf_pages: 2000,
            max_pdf_inflated_bytes: 64 * 1024 * 1024,
            parse_timeout_secs: 30,
            max_concurrent_uploads: 4,
        }
    }
}

impl KnowledgeConfig {
    /// What is wrong with these settings, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=20).contains(&self.answer_top_k) {
            out.push("knowledge.answer_top_k must be between 1 and 20".into());
        }
        if !(-1.0..=1.0).contains(&self.min_similarity) {
            out.push("knowledge.min_similarity must be between -1 and 1".into());
        }
        if self.answer_max_tokens == 0 {
            out.push("knowledge.answer_max_tokens must be positive".into());
        }
        if self.max_upload_bytes < 1024 {
            out.push("knowledge.max_upload_bytes must be at least 1024".into());
        }
        if self.max_document_bytes < 1024 {
            out.push("knowledge.max_document_bytes must be at least 1024".into());
        }
        if !(1..=1000).contains(&self.max_documents_per_upload) {
            out.push("knowledge.max_documents_per_upload must be between 1 and 1000".into());
        }
        if self.max_pdf_pages == 0 || self.max_pdf_inflated_bytes < 1024 || self.parse_timeout_secs == 0 {
            out.push("knowledge.max_pdf_pages, max_pdf_inflated_bytes and parse_timeout_secs must be positive".into());
        }
        let v = &self.vector_index;
        if !(2..=64).contains(&v.m) || !(1..=2000).contains(&v.ef_construction) || !(1..=10_000).contains(&v.ef_search)
        {
            out.push(
                "knowledge.vector_index: m must be 2 to 64, ef_construction 1 to 2000, ef_search 1 to 10000".into(),
            );
        }
        if self.max_concurrent_uploads == 0 {
            out.push("knowledge.max_concurrent_uploads must be at least 1".into());
        }
        out
    }
}
