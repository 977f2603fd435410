//! `cairn-bench search`: query latency of the keyword, vector and hybrid retrievers at
//! 100,000 chunks, excluding the query's embedding, with and without a metadata filter.
//! Chunk texts are SciFact sentences (repeated with a suffix to reach the count); vectors are
//! random unit vectors (latency does not depend on their content); queries are SciFact claims.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::{fuse, Bm25Index, Fusion, VectorIndex};
use rand::{Rng, SeedableRng};

use crate::load::percentile;

/// Runs the benchmark and prints a Markdown table.
pub fn run(dataset: &Path, chunks: usize, dim: usize) -> Result<()> {
    let data = BeirDataset::load(dataset)?;
    let sentences: Vec<&str> =
        data.corpus.iter().flat_map(|d| d.text.split(". ")).filter(|s| s.split_whitespace().count() >= 5).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut keyword = Bm25Index::default();
    let mut vector = VectorIndex::new(dim);
    let start = Instant::now();
    for i in 0..chunks {
        keyword.insert(i as u64, &format!("{} part {}", sentences[i % sentences.len()], i / sentences.len()));
        let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        vector.insert(i as u64, &v)?;
    }
    println!("## Search latency (cairn-bench search, {chunks} chunks, {dim} dimensions, one thread)\n");
    println!("index build: {:.1} s\n", start.elapsed().as_secs_f64());
    println!("| query | filter | p50 | p99 |\n|---|---|---|---|");
    let queries: Vec<(&str, Vec<f32>)> =
        data.queries.iter().map(|(_, q)| (q.as_str(), (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())).collect();
    // A filter that keeps 30% of chunks, as a metadata condition on, say, a document source.
    let filters: [(&str, &dyn Fn(u64) -> bool); 2] = [("none", &|_| true), ("30% of chunks", &|id| id % 10 < 3)];
    for (fname, allow) in filters {
        let mut kw = Vec::new();
        let mut vec = Vec::new();
        let mut hybrid = Vec::new();
        for (text, qv) in &queries {
            let t = Instant::now();
            let a = keyword.search(text, 100, allow);
            kw.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let b = vector.search(qv, 100, allow)?;
            vec.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let a2 = keyword.search(text, 100, allow);
            let b2 = vector.search(qv, 100, allow)?;
            std::hint::black_box(fuse(Fusion::Convex { keyword_weight: 0.5 }, &a2, &b2, 10));
            hybrid.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box((a, b));
        }
        for (label, mut v) in [("keyword", kw), ("vector (exact)", vec), ("hybrid", hybrid)] {
            v.sort_by(f64::total_cmp);
            println!("| {label} | {fname} | {:.2} ms | {:.2} ms |", percentile(&v, 0.5), percentile(&v, 0.99));
        }
    }
    Ok(())
}
