//! The knowledge layer's domain types and storage port: collections, documents, their chunks
//! (with embeddings), and a change log that nodes follow to keep their in-memory search indexes
//! current. Storage is the source of truth; indexes are caches built from it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::jobs::{Job, NewJob};
use crate::store::StoreResult;

/// What a collection does with personal data before anything is embedded or stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PiiMode {
    /// Keep text as it is.
    #[default]
    Off,
    /// Replace each value with its kind, e.g. `[EMAIL]`.
    Mask,
    /// Replace each value with a keyed hash of it (same value, same token).
    Hash,
}

impl PiiMode {
    /// The lowercase name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiMode::Off => "off",
            PiiMode::Mask => "mask",
            PiiMode::Hash => "hash",
        }
    }

    /// Parses a stored name (unknown names read as `mask`: never leak by accident).
    pub fn parse(s: &str) -> Self {
        match s {
            "off" => PiiMode::Off,
            "hash" => PiiMode::Hash,
            _ => PiiMode::Mask,
        }
    }
}

/// A tenant's set of documents searched together, with the settings fixed at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    /// Collection id (`col_...`).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Name, unique within the tenant.
    pub name: String,
    /// The embedding model (a gateway model name).
    pub embedding_model: String,
    /// The model's vector size.
    pub dimensions: u32,
    /// Chunk budget in the model's tokens.
    pub chunk_max_tokens: u32,
    /// Overlap between consecutive chunks, in tokens.
    pub chunk_overlap_tokens: u32,
    /// Personal-data policy.
    pub pii: PiiMode,
    /// Top-level metadata fields kept as they are (every other string value in metadata is
    /// redacted like the text).
    #[serde(default)]
    pub pii_exempt: Vec<String>,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
}

/// Where a document stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentState {
    /// Accepted; ingestion has not finished (an earlier version may still be searchable).
    Pending,
    /// Searchable.
    Ready,
    /// Ingestion failed (an earlier version may still be searchable).
    Failed,
}

impl DocumentState {
    /// The lowercase name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Pending => "pending",
            DocumentState::Ready => "ready",
            DocumentState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Self {
        match s {
            "ready" => DocumentState::Ready,
            "failed" => DocumentState::Failed,
            _ => DocumentState::Pending,
        }
    }
}

/// A document of a collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Document {
    /// Document id (given by the caller, or generated).
    pub id: String,
    /// Its collection.
    pub collection_id: String,
    /// Owning tenant (the collection's).
    pub tenant_id: String,
    /// Title.
    pub title: String,
    /// Where it came from (a path or URL), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// User metadata (a JSON object).
    pub metadata: Value,
    /// Fingerprint of the indexed content; the same fingerprint again is a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// State.
    pub state: DocumentState,
    /// Why the last ingestion failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Chunks of the searchable version.
    pub chunk_count: u32,
    /// Bumped by every upload; an ingestion job commits only the version it was made for, so
    /// an older upload finishing late never replaces a newer one.
    pub version: i64,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// A chunk as stored: its text, where it sits in the document, and its embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkRecord {
    /// Chunk id, assigned by storage (0 before insertion).
    pub id: i64,
    /// Its document.
    pub document_id: String,
    /// Its collection.
    pub collection_id: String,
    /// Position in the document, from 0.
    pub seq: u32,
    /// The text.
    pub text: String,
    /// Byte range in the stored document text.
    pub start: u32,
    /// End of the byte range.
    pub end: u32,
    /// Headings above it, outermost first.
    pub headings: Vec<String>,
    /// The embedding.
    pub embedding: Vec<f32>,
    /// Its keyword-index terms (analysed headings and text, repeats kept), given on writes for
    /// stores that search in the database; empty when read back (the in-memory index analyses
    /// the text itself).
    pub terms: Vec<String>,
}

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A document's chunks were replaced: reload them.
    Document,
    /// A document was deleted: drop its chunks.
    DocumentDeleted,
    /// A collection was deleted: drop everything of it.
    CollectionDeleted,
}

impl ChangeKind {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Document => "document",
            ChangeKind::DocumentDeleted => "document_deleted",
            ChangeKind::CollectionDeleted => "collection_deleted",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [ChangeKind::Document, ChangeKind::DocumentDeleted, ChangeKind::CollectionDeleted]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Position in the log.
    pub seq: i64,
    /// The collection.
    pub collection_id: String,
    /// The document, for document changes.
    pub document_id: Option<String>,
    /// What happened.
    pub kind: ChangeKind,
}

/// One version of one document: what an ingestion job works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentKey<'a> {
    /// The collection.
    pub collection_id: &'a str,
    /// The document, within the collection.
    pub id: &'a str,
    /// The version the work was made for.
    pub version: i64,
}

/// The knowledge layer's storage.
#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// Inserts a collection; `Conflict` if the tenant has one of that name.
    async fn create_collection(&self, c: &Collection) -> StoreResult<()>;
    /// Fetches one collection.
    async fn get_collection(&self, id: &str) -> StoreResult<Option<Collection>>;
    /// Lists collections, of one tenant or all, by name.
    async fn list_collections(&self, tenant_id: Option<&str>) -> StoreResult<Vec<Collection>>;
    /// Deletes a collection with its documents and chunks, and logs it; false if absent.
    async fn delete_collection(&self, id: &str, at_ms: i64) -> StoreResult<bool>;
    /// Inserts a document, or updates an existing one's title, source, metadata, state and
    /// version (its searchable chunks stay until replaced), if it is still at `d.version - 1`;
    /// `Conflict` if another upload moved it on meanwhile, `NotFound` if the collection is gone.
    async fn put_document(&self, d: &Document) -> StoreResult<()>;
    /// In one transaction: every document as `put_document` does, and their ingestion jobs
    /// (all or nothing, so no document is left pending without a job).
    async fn put_documents_with_jobs(&self, docs: &[Document], jobs: &[NewJob]) -> StoreResult<Vec<(Job, bool)>>;
    /// Fetches one document of a collection.
    async fn get_document(&self, collection_id: &str, id: &str) -> StoreResult<Option<Document>>;
    /// Lists a collection's documents by id, after `after_id`, only those in `state` if given.
    async fn list_documents(
        &self,
        collection_id: &str,
        state: Option<DocumentState>,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Document>>;
    /// In one transaction, if the document is still at `version`: replaces its chunks with
    /// `chunks`, marks it ready with `fingerprint`, and logs the change. Returns the new chunks'
    /// ids. `NotFound` if the document is gone, `Conflict` if a newer version superseded it.
    async fn replace_chunks(
        &self,
        doc: &DocumentKey<'_>,
        fingerprint: &str,
        chunks: &[ChunkRecord],
        at_ms: i64,
    ) -> StoreResult<Vec<i64>>;
    /// Marks a document at `version` ready with the chunks it has (its content was unchanged)
    /// and logs the change, so indexes pick up its new title and metadata. `NotFound` if it is
    /// gone, `Conflict` if superseded.
    async fn mark_ready(&self, doc: &DocumentKey<'_>, at_ms: i64) -> StoreResult<()>;
    /// Marks a document at `version` failed with `error` (its searchable chunks stay); a
    /// superseded version changes nothing.
    async fn fail_document(&self, doc: &DocumentKey<'_>, error: &str, at_ms: i64) -> StoreResult<()>;
    /// Deletes a document and its chunks, and logs it; false if absent.
    async fn delete_document(&self, collection_id: &str, id: &str, at_ms: i64) -> StoreResult<bool>;
    /// A document's chunks, in order.
    async fn document_chunks(&self, collection_id: &str, id: &str) -> StoreResult<Vec<ChunkRecord>>;
    /// A collection's chunks with ids above `after_id`, by id (to build an index in pages).
    async fn collection_chunks(&self, collection_id: &str, after_id: i64, limit: u32) -> StoreResult<Vec<ChunkRecord>>;
    /// Log entries after `seq`, oldest first.
    async fn changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>>;
    /// The newest log position (0 when the log is empty).
    async fn latest_change(&self) -> StoreResult<i64>;
}

/// Encodes an embedding for storage: little-endian `f32`s.
pub fn embedding_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes a stored embedding.
pub fn embedding_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_round_trip_and_names_parse() {
        let v = vec![0.5f32, -1.25, 3.0e-7];
        assert_eq!(embedding_from_bytes(&embedding_to_bytes(&v)), v);
        for k in [ChangeKind::Document, ChangeKind::DocumentDeleted, ChangeKind::CollectionDeleted] {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(PiiMode::parse("bogus"), PiiMode::Mask);
        assert_eq!(DocumentState::parse(DocumentState::Failed.as_str()), DocumentState::Failed);
    }
}
