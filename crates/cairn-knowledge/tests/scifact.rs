//! Retrieval quality on the BEIR SciFact test set (`../shared/data/scifact`): the keyword
//! retriever alone must reach nDCG@10 0.66 (published BM25: 0.665 multi-field, 0.679 single).

use std::path::PathBuf;

use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::eval::{mrr_at, ndcg_at, recall_at};
use cairn_knowledge::Bm25Index;

#[test]
fn bm25_on_scifact() {
    let dir = PathBuf::from("../../../shared/data/scifact");
    let data = BeirDataset::load(&dir).expect("SciFact in ../shared/data/scifact");
    let mut index = Bm25Index::default();
    for (n, d) in data.corpus.iter().enumerate() {
        index.insert(n as u64, &format!("{}\n{}", d.title, d.text));
    }
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for (id, text) in &data.queries {
        let rel = &data.qrels[id];
        let ranked: Vec<String> =
            index.search(text, 100, &|_| true).into_iter().map(|(d, _)| data.corpus[d as usize].id.clone()).collect();
        ndcg += ndcg_at(&ranked, rel, 10);
        recall += recall_at(&ranked, rel, 100);
        mrr += mrr_at(&ranked, rel, 10);
    }
    let n = data.queries.len() as f64;
    let (ndcg, recall, mrr) = (ndcg / n, recall / n, mrr / n);
    println!("SciFact BM25 over {n} queries: nDCG@10 {ndcg:.4}, recall@100 {recall:.4}, MRR@10 {mrr:.4}");
    assert_eq!(data.queries.len(), 300);
    assert!(ndcg >= 0.66, "nDCG@10 {ndcg:.4} below 0.66");
    assert!(recall >= 0.90, "recall@100 {recall:.4}");
}

#[test]
fn a_malformed_dataset_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("beir-bad-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    std::fs::write(dir.join("corpus.jsonl"), "{\"_id\": \"1\", \"text\": \"x\"}\nnot json\n").unwrap();
    let err = BeirDataset::load(&dir).unwrap_err().to_string();
    assert!(err.contains("corpus.jsonl:2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(BeirDataset::load(&dir).is_err());
}
