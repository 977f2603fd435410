//! Retrieval quality on the BEIR SciFact test set (`../shared/data/scifact`): the keyword
//! retriever alone must reach nDCG@10 0.66 (published BM25: 0.665 multi-field, 0.679 single).

use std::collections::HashMap;
use std::path::PathBuf;

use cairn_knowledge::eval::{mrr_at, ndcg_at, recall_at, Judgements};
use cairn_knowledge::Bm25Index;
use serde_json::Value;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/scifact")
}

fn jsonl(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(data().join(name)).expect("SciFact data in ../shared/data/scifact");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn bm25_on_scifact() {
    let corpus = jsonl("corpus.jsonl");
    let mut index = Bm25Index::default();
    let ids: Vec<String> = corpus.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    for (n, d) in corpus.iter().enumerate() {
        let text = format!("{}\n{}", d["title"].as_str().unwrap_or(""), d["text"].as_str().unwrap_or(""));
        index.insert(n as u64, &text);
    }
    let qrels = std::fs::read_to_string(data().join("qrels/test.tsv")).unwrap();
    let mut judged: HashMap<String, Judgements> = HashMap::new();
    for line in qrels.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        judged.entry(f[0].to_owned()).or_default().insert(f[1].to_owned(), f[2].parse().unwrap());
    }
    let (mut ndcg, mut recall, mut mrr, mut n) = (0.0, 0.0, 0.0, 0);
    for q in jsonl("queries.jsonl") {
        let Some(rel) = judged.get(q["_id"].as_str().unwrap()) else { continue };
        let ranked: Vec<String> = index
            .search(q["text"].as_str().unwrap(), 100, &|_| true)
            .into_iter()
            .map(|(d, _)| ids[d as usize].clone())
            .collect();
        ndcg += ndcg_at(&ranked, rel, 10);
        recall += recall_at(&ranked, rel, 100);
        mrr += mrr_at(&ranked, rel, 10);
        n += 1;
    }
    let (ndcg, recall, mrr) = (ndcg / n as f64, recall / n as f64, mrr / n as f64);
    println!("SciFact BM25 over {n} queries: nDCG@10 {ndcg:.4}, recall@100 {recall:.4}, MRR@10 {mrr:.4}");
    assert_eq!(n, 300);
    assert!(ndcg >= 0.66, "nDCG@10 {ndcg:.4} below 0.66");
    assert!(recall >= 0.90, "recall@100 {recall:.4}");
}
