//! Retrieval inside PostgreSQL for the benchmarks: a fresh database on the given server, a
//! corpus written through the knowledge store (so the search tables are exactly what ingestion
//! writes), and its searches through `SearchStore`.

use std::sync::Arc;

use anyhow::{Context, Result};
use cairn_core::knowledge::{ChunkRecord, Collection, Document, DocumentKey, DocumentState, PiiMode};
use cairn_core::search::SearchStore;
use cairn_core::store::Store;
use cairn_knowledge::chunk::index_text;
use cairn_knowledge::Analyzer;
use futures::stream::{self, StreamExt, TryStreamExt};
use sqlx::Connection;

/// The collection every benchmark corpus goes into.
pub const COLLECTION: &str = "col_bench";

/// One document: its chunks' texts and embeddings.
pub struct Doc {
    /// Its id.
    pub id: String,
    /// Its metadata.
    pub metadata: serde_json::Value,
    /// Each chunk's text and embedding.
    pub chunks: Vec<(String, Vec<f32>)>,
}

/// A fresh database on the server `url` names, migrated, with its search port and its URL.
pub async fn fresh(url: &str) -> Result<(Arc<dyn Store>, Arc<dyn SearchStore>, String)> {
    let name = format!("cairn_bench_{}", uuid_like());
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    let (prefix, _) = url.rsplit_once('/').context("the URL has no database path")?;
    let db_url = format!("{prefix}/{name}");
    let (store, search) = cairn_store::open_with_search(&db_url, 16).await?;
    Ok((store, search.context("PostgreSQL offers search")?, db_url))
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()))
}

/// Writes `docs` into a new collection of `dims` dimensions, 16 at a time, each as ingestion
/// writes it. With `index_after` (the PostgreSQL database's URL), the collection's HNSW index
/// is dropped before the writes and built again after them by the same schema function that
/// made it, as pgvector advises for bulk loads: the tables end exactly as ingestion leaves them.
pub async fn load(store: &Arc<dyn Store>, dims: u32, docs: Vec<Doc>, index_after: Option<&str>) -> Result<()> {
    let col = Collection {
        id: COLLECTION.into(),
        tenant_id: "bench".into(),
        name: "bench".into(),
        embedding_model: "local/minilm".into(),
        dimensions: dims,
        chunk_max_tokens: 512,
        chunk_overlap_tokens: 0,
        pii: PiiMode::Off,
        pii_exempt: Vec::new(),
        created_at_ms: 1,
    };
    store.create_collection(&col).await?;
    let mut deferred = None;
    if let Some(url) = index_after {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let (key,): (i64,) = sqlx::query_as("SELECT key FROM search_collections WHERE collection_id = $1")
            .bind(COLLECTION)
            .fetch_one(&mut conn)
            .await?;
        sqlx::query(&format!("DROP INDEX chunk_vectors_{key}_hnsw")).execute(&mut conn).await?;
        deferred = Some((conn, key));
    }
    let analyzer = Arc::new(Analyzer::english());
    stream::iter(docs)
        .map(|d| {
            let (store, analyzer) = (store.clone(), analyzer.clone());
            async move {
                let doc = Document {
                    id: d.id.clone(),
                    collection_id: COLLECTION.into(),
                    tenant_id: "bench".into(),
                    title: String::new(),
                    source: None,
                    metadata: d.metadata,
                    fingerprint: None,
                    state: DocumentState::Pending,
                    error: None,
                    chunk_count: 0,
                    version: 1,
                    created_at_ms: 1,
                    updated_at_ms: 1,
                };
                store.put_document(&doc).await?;
                let chunks: Vec<ChunkRecord> = d
                    .chunks
                    .into_iter()
                    .enumerate()
                    .map(|(seq, (text, embedding))| ChunkRecord {
                        id: 0,
                        document_id: d.id.clone(),
                        collection_id: COLLECTION.into(),
                        seq: seq as u32,
                        terms: analyzer.terms(&index_text(&[], &text)),
                        start: 0,
                        end: text.len() as u32,
                        text,
                        headings: Vec::new(),
                        embedding,
                    })
                    .collect();
                let key = DocumentKey { collection_id: COLLECTION, id: &d.id, version: 1 };
                store.replace_chunks(&key, "fp", &chunks, 1).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    if let Some((mut conn, key)) = deferred {
        sqlx::query("SET maintenance_work_mem = '2GB'").execute(&mut conn).await?;
        sqlx::query("SELECT cairn_search_partitions($1, $2)").bind(key).bind(dims as i32).execute(&mut conn).await?;
    }
    Ok(())
}

/// Each chunk's document id, by chunk id.
pub async fn documents_of_chunks(store: &Arc<dyn Store>) -> Result<std::collections::HashMap<u64, String>> {
    let mut out = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let page = store.collection_chunks(COLLECTION, after, 5000).await?;
        let Some(last) = page.last() else { return Ok(out) };
        after = last.id;
        out.extend(page.into_iter().map(|c| (c.id as u64, c.document_id)));
    }
}
