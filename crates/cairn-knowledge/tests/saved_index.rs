//! The live index's saved vector indexes on a real SQLite store: saved at start, loaded (not
//! rebuilt) at the next, reconciled with what changed in storage meanwhile, rebuilt from a
//! damaged file or other parameters, removed with their collection; and the HNSW search they
//! hold agrees with exact search.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cairn_core::filter::Filter;
use cairn_core::store::Store;
use cairn_knowledge::live::{LiveIndex, LiveOptions};
use cairn_knowledge::retrieve::{Hit, Retriever, SearchMode, SearchQuery};
use cairn_knowledge::AnnParams;
use serde_json::json;
use support::records::{chunk, collection, put, sqlite};

mod support;

const DIM: usize = 8;

/// A deterministic, well-spread vector for chunk `n` of document `doc`.
fn vector(doc: usize, n: usize) -> Vec<f32> {
    (0..DIM).map(|i| ((doc * 31 + n * 7 + i * 13) as f32 * 0.618).sin()).collect()
}

/// Writes document `d` (ten chunks) into `col`, in group `d % 3`.
async fn document(store: &dyn Store, col: &str, d: usize) {
    let chunks: Vec<_> = (0..10)
        .map(|n| chunk(n as u32, &format!("document {d} part {n} about topic{}", d % 5), &vector(d, n)))
        .collect();
    put(store, col, &format!("d{d}"), json!({"group": d % 3}), &chunks).await;
}

fn options(dir: &Path, m: usize) -> LiveOptions {
    LiveOptions {
        ann: AnnParams { m, ef_construction: 64, ef_search: 64, graph_from: 50 },
        dir: Some(dir.to_path_buf()),
        ..LiveOptions::default()
    }
}

async fn nearest(r: &dyn Retriever, col: &str, q: &[f32], filter: Option<serde_json::Value>) -> Vec<Hit> {
    let q = SearchQuery {
        collection_id: col.into(),
        text: String::new(),
        vector: Some(Arc::from(q)),
        mode: SearchMode::Vector,
        k: 10,
        filter: filter.map(|f| Arc::new(Filter::parse(&f).unwrap())),
    };
    r.search(q).await.unwrap().hits
}

fn docs(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.chunk.document_id.clone()).collect()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[tokio::test]
async fn a_saved_index_is_loaded_reconciled_and_rebuilt_only_when_unusable() {
    let (store, dir) = sqlite().await;
    let saved = dir.path().join("indexes");
    store.create_collection(&collection("col_a", DIM as u32)).await.unwrap();
    store.create_collection(&collection("col_small", DIM as u32)).await.unwrap();
    for d in 0..30 {
        document(&*store, "col_a", d).await;
    }
    document(&*store, "col_small", 0).await;
    let file = saved.join("col_a.ann");

    // First start: the graph is built and saved, owner-only; exact search agrees with it.
    let live = LiveIndex::open_with(store.clone(), options(&saved, 8)).await.unwrap();
    assert!(file.exists() && saved.join("col_small.ann").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o700);
    }
    let exact = LiveIndex::open(store.clone()).await.unwrap();
    let q = vector(4, 2);
    let want = nearest(&exact, "col_a", &q, None).await;
    assert_eq!(docs(&nearest(&live, "col_a", &q, None).await), docs(&want));
    assert_eq!(want[0].chunk.document_id, "d4");
    let group = Some(json!({"field": "group", "eq": 1}));
    let filtered = nearest(&live, "col_a", &q, group.clone()).await;
    assert_eq!(docs(&filtered), docs(&nearest(&exact, "col_a", &q, group.clone()).await));
    assert!(filtered.iter().all(|h| h.document.metadata["group"] == 1));
    drop(live);

    // Second start with nothing changed: loaded, not rebuilt (the file is not rewritten).
    let before = modified(&file);
    let live = LiveIndex::open_with(store.clone(), options(&saved, 8)).await.unwrap();
    assert_eq!(modified(&file), before);
    assert_eq!(docs(&nearest(&live, "col_a", &q, None).await), docs(&want));
    drop(live);

    // Changes made while no node ran: a document deleted, one replaced, one added, and a
    // collection deleted. The saved index is reconciled with storage and saved again.
    store.delete_document("col_a", "d4", 2).await.unwrap();
    let moved: Vec<_> = (0..10).map(|n| chunk(n as u32, "moved", &vector(99, n))).collect();
    put(&*store, "col_a", "d5", json!({"group": 2}), &moved).await;
    document(&*store, "col_a", 30).await;
    store.delete_collection("col_small", 3).await.unwrap();
    let live = LiveIndex::open_with(store.clone(), options(&saved, 8)).await.unwrap();
    assert_ne!(modified(&file), before, "the reconciled index is saved");
    assert!(!saved.join("col_small.ann").exists(), "a deleted collection's file is removed");
    let hits = nearest(&live, "col_a", &q, None).await;
    assert!(hits.iter().all(|h| h.chunk.document_id != "d4"), "a deleted document is never returned");
    assert_eq!(nearest(&live, "col_a", &vector(99, 3), None).await[0].chunk.document_id, "d5");
    assert_eq!(nearest(&live, "col_a", &vector(30, 1), None).await[0].chunk.document_id, "d30");
    assert_eq!(live.len("col_a"), 300);
    drop(live);

    // A damaged file: rebuilt from storage, same answers, saved whole again.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let live = LiveIndex::open_with(store.clone(), options(&saved, 8)).await.unwrap();
    assert_eq!(nearest(&live, "col_a", &vector(30, 1), None).await[0].chunk.document_id, "d30");
    assert_ne!(std::fs::read(&file).unwrap(), bytes);
    assert!(cairn_knowledge::AnnIndex::load(&file).is_ok());
    drop(live);

    // Other graph parameters: the saved graph is not used (rebuilt and saved with them).
    let before = modified(&file);
    let live = LiveIndex::open_with(store.clone(), options(&saved, 12)).await.unwrap();
    assert_ne!(modified(&file), before);
    assert_eq!(cairn_knowledge::AnnIndex::load(&file).unwrap().params().m, 12);

    // Deleting the collection while running removes its file.
    store.delete_collection("col_a", 4).await.unwrap();
    live.catch_up().await.unwrap();
    assert!(!file.exists());
}

#[tokio::test]
async fn an_unusable_index_folder_only_costs_the_saving() {
    let (store, dir) = sqlite().await;
    store.create_collection(&collection("col_a", DIM as u32)).await.unwrap();
    for d in 0..6 {
        document(&*store, "col_a", d).await;
    }
    // A file where the folder should be: the index is built in memory and searches work.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let live = LiveIndex::open_with(store.clone(), options(&blocked, 8)).await.unwrap();
    assert_eq!(nearest(&live, "col_a", &vector(2, 2), None).await[0].chunk.document_id, "d2");
}

#[tokio::test]
async fn a_graph_mostly_of_deleted_chunks_is_rebuilt_in_the_background_and_saved() {
    let (store, dir) = sqlite().await;
    let saved = dir.path().join("indexes");
    store.create_collection(&collection("col_a", DIM as u32)).await.unwrap();
    for d in 0..30 {
        document(&*store, "col_a", d).await;
    }
    let live = LiveIndex::open_with(store.clone(), options(&saved, 8)).await.unwrap();
    for d in 0..20 {
        store.delete_document("col_a", &format!("d{d}"), 2).await.unwrap();
    }
    live.catch_up().await.unwrap();
    // Searches meanwhile never see a deleted chunk.
    let hits = nearest(&live, "col_a", &vector(3, 3), None).await;
    assert!(hits.iter().all(|h| h.chunk.document_id.trim_start_matches('d').parse::<usize>().unwrap() >= 20));
    // The rebuild runs on a blocking thread, then saves: poll the file until it shows it.
    let file = saved.join("col_a.ann");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ix = cairn_knowledge::AnnIndex::load(&file).unwrap();
        if ix.len() == 100 && !ix.needs_rebuild() {
            assert!(ix.has_graph());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the graph was not rebuilt");
        tokio::task::yield_now().await;
    }
    assert_eq!(nearest(&live, "col_a", &vector(25, 4), None).await[0].chunk.document_id, "d25");
}
