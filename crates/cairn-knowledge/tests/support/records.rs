//! Knowledge records written straight into a store, as ingestion writes them: collections,
//! documents and chunks with their analyzer terms.

use std::sync::Arc;

use cairn_core::knowledge::{ChunkRecord, Collection, Document, DocumentKey, DocumentState, PiiMode};
use cairn_core::store::Store;
use cairn_knowledge::chunk::index_text;
use cairn_knowledge::Analyzer;
use serde_json::Value;

/// A chunk of `text` with vector `v`, its terms analysed.
pub fn chunk(seq: u32, text: &str, v: &[f32]) -> ChunkRecord {
    ChunkRecord {
        id: 0,
        document_id: String::new(),
        collection_id: String::new(),
        seq,
        text: text.into(),
        start: 0,
        end: text.len() as u32,
        headings: vec![],
        embedding: v.to_vec(),
        terms: Analyzer::english().terms(&index_text(&[], text)),
    }
}

/// A collection of `dimensions`-dimensional vectors in tenant `t`.
pub fn collection(id: &str, dimensions: u32) -> Collection {
    Collection {
        id: id.into(),
        tenant_id: "t".into(),
        name: id.into(),
        embedding_model: "m".into(),
        dimensions,
        chunk_max_tokens: 20,
        chunk_overlap_tokens: 0,
        pii: PiiMode::Off,
        pii_exempt: Vec::new(),
        created_at_ms: 1,
    }
}

/// Writes document `id` (a new version when it exists) with its chunks, as ingestion does.
pub async fn put(store: &dyn Store, col: &str, id: &str, metadata: Value, chunks: &[ChunkRecord]) {
    let version = store.get_document(col, id).await.unwrap().map_or(1, |d| d.version + 1);
    let doc = Document {
        id: id.into(),
        collection_id: col.into(),
        tenant_id: "t".into(),
        title: id.into(),
        source: None,
        metadata,
        fingerprint: None,
        state: DocumentState::Pending,
        error: None,
        chunk_count: 0,
        version,
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    store.put_document(&doc).await.unwrap();
    let key = DocumentKey { collection_id: col, id, version };
    store.replace_chunks(&key, "fp", chunks, 2).await.unwrap();
}

/// A SQLite store in a temporary folder.
pub async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_store::open(&format!("sqlite://{}", dir.path().join("k.db").display()), 2).await.unwrap();
    (store, dir)
}
