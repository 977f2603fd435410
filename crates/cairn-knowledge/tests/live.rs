//! The live index over a real SQLite store: built from storage, searched in every mode with
//! filters, and kept current from the change log (no stale hit after an update or delete).

use cairn_core::knowledge::{ChunkRecord, Collection, Document, DocumentState, KnowledgeStore, PiiMode};
use cairn_knowledge::filter::Filter;
use cairn_knowledge::live::{LiveIndex, SearchMode};

fn chunk(seq: u32, text: &str, v: [f32; 3]) -> ChunkRecord {
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
    }
}

async fn put(store: &dyn KnowledgeStore, id: &str, year: i64, chunks: &[ChunkRecord]) {
    let version = store.get_document("col", id).await.unwrap().map_or(1, |d| d.version + 1);
    let doc = Document {
        id: id.into(),
        collection_id: "col".into(),
        tenant_id: "t".into(),
        title: id.into(),
        source: None,
        metadata: serde_json::json!({"drug": id, "year": year}),
        fingerprint: None,
        state: DocumentState::Pending,
        error: None,
        chunk_count: 0,
        version,
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    store.put_document(&doc).await.unwrap();
    let key = cairn_core::knowledge::DocumentKey { collection_id: "col", id, version };
    store.replace_chunks(&key, "fp", chunks, 2).await.unwrap();
}

fn ids(hits: &[cairn_knowledge::live::Hit]) -> Vec<(String, u32)> {
    hits.iter().map(|h| (h.chunk.document_id.clone(), h.chunk.seq)).collect()
}

#[tokio::test]
async fn builds_searches_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_store::open(&format!("sqlite://{}", dir.path().join("k.db").display()), 2).await.unwrap();
    let collection = Collection {
        id: "col".into(),
        tenant_id: "t".into(),
        name: "docs".into(),
        embedding_model: "m".into(),
        dimensions: 3,
        chunk_max_tokens: 100,
        chunk_overlap_tokens: 0,
        pii: PiiMode::Off,
        pii_exempt: Vec::new(),
        created_at_ms: 1,
    };
    store.create_collection(&collection).await.unwrap();
    put(&*store, "aspirin", 2019, &[chunk(0, "Aspirin reduces fever and pain", [1.0, 0.0, 0.0])]).await;
    put(
        &*store,
        "statins",
        2023,
        &[chunk(0, "Statins lower cholesterol", [0.0, 1.0, 0.0]), chunk(1, "Statins and muscle pain", [0.0, 0.9, 0.1])],
    )
    .await;

    let index = LiveIndex::open(&*store).await.unwrap();
    assert_eq!(index.len("col"), 3);
    let any = None;
    let kw = index.search("col", "pain", None, SearchMode::Keyword, 10, any).unwrap();
    assert_eq!(kw.len(), 2);
    let vec = index.search("col", "", Some(&[0.0, 1.0, 0.05]), SearchMode::Vector, 1, any).unwrap();
    assert_eq!(ids(&vec), [("statins".to_owned(), 0)]);
    let hybrid = index.search("col", "muscle pain", Some(&[0.0, 1.0, 0.1]), SearchMode::Hybrid, 1, any).unwrap();
    assert_eq!(ids(&hybrid), [("statins".to_owned(), 1)]);
    // A metadata filter applies inside the retrievers: still a full top-k from what passes.
    let before_2020 = Filter::parse(&serde_json::json!({"field": "year", "lt": 2020})).unwrap();
    let filtered =
        index.search("col", "pain statins", Some(&[0.0, 1.0, 0.0]), SearchMode::Hybrid, 2, Some(&before_2020)).unwrap();
    assert_eq!(ids(&filtered), [("aspirin".to_owned(), 0)]);
    let statins = Filter::parse(&serde_json::json!({"field": "drug", "in": ["statins"]})).unwrap();
    let top = index.search("col", "pain", None, SearchMode::Keyword, 1, Some(&statins)).unwrap();
    assert_eq!(ids(&top), [("statins".to_owned(), 1)]);
    assert!(index.search("nope", "pain", None, SearchMode::Keyword, 5, any).unwrap().is_empty());

    // Another process replaces a document: the old text stays findable until catch_up.
    put(&*store, "aspirin", 2024, &[chunk(0, "Aspirin thins the blood", [1.0, 0.0, 0.0])]).await;
    assert_eq!(index.search("col", "fever", None, SearchMode::Keyword, 5, any).unwrap().len(), 1);
    assert_eq!(index.catch_up(&*store).await.unwrap(), 1);
    assert!(index.search("col", "fever", None, SearchMode::Keyword, 5, any).unwrap().is_empty(), "no stale hit");
    assert_eq!(index.search("col", "blood", None, SearchMode::Keyword, 5, any).unwrap().len(), 1);
    // The document's new metadata took effect too.
    assert!(index.search("col", "blood", None, SearchMode::Keyword, 5, Some(&before_2020)).unwrap().is_empty());

    store.delete_document("col", "statins", 3).await.unwrap();
    index.catch_up(&*store).await.unwrap();
    assert_eq!(index.len("col"), 1);
    assert!(index.search("col", "cholesterol", None, SearchMode::Keyword, 5, any).unwrap().is_empty());
    store.delete_collection("col", 4).await.unwrap();
    index.catch_up(&*store).await.unwrap();
    assert_eq!(index.len("col"), 0);
    assert_eq!(index.catch_up(&*store).await.unwrap(), 0, "nothing new");
}
