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

/// Knowledge-layer settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Where searches run: `auto` (default), `memory` or `database`.
    pub retrieval: Retrieval,
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
        if self.max_concurrent_uploads == 0 {
            out.push("knowledge.max_concurrent_uploads must be at least 1".into());
        }
        out
    }
}
