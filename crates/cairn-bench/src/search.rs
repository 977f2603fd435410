//! `cairn-bench search`: query latency of the keyword, vector and hybrid retrievers at
//! 100,000 chunks, excluding the query's embedding, with and without a metadata filter.
//! Chunk texts are SciFact sentences (repeated with a suffix to reach the count); vectors are
//! random unit vectors (latency does not depend on their content); queries are SciFact claims.

use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use anyhow::Result;
use cairn_core::filter::Filter;
use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::retrieve::{DatabaseRetriever, Retriever, SearchMode, SearchQuery};
use cairn_knowledge::{fuse, Bm25Index, Fusion, VectorIndex};
use rand::{Rng, SeedableRng};

use crate::load::percentile;
use crate::pgsearch::{self, Doc};

/// Runs the benchmark and prints a Markdown table; with `postgres` (a server URL), the same
/// chunks are also searched inside a fresh PostgreSQL database through the retrieval port.
pub async fn run(dataset: &Path, chunks: usize, dim: usize, postgres: Option<String>) -> Result<()> {
    let data = BeirDataset::load(dataset)?;
    let sentences: Vec<&str> =
        data.corpus.iter().flat_map(|d| d.text.split(". ")).filter(|s| s.split_whitespace().count() >= 5).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut keyword = Bm25Index::default();
    let mut vector = VectorIndex::new(dim);
    let start = Instant::now();
    let mut docs = Vec::new();
    for i in 0..chunks {
        let text = format!("{} part {}", sentences[i % sentences.len()], i / sentences.len());
        keyword.insert(i as u64, &text);
        let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        vector.insert(i as u64, &v)?;
        if postgres.is_some() {
            docs.push((text, v));
        }
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
    if let Some(url) = postgres {
        drop((keyword, vector));
        // Documents of 100 chunks in ten groups: `group < 3` keeps 30% of chunks, like the
        // in-memory filter above.
        let mut grouped: Vec<Doc> = Vec::new();
        for (i, (text, vector)) in docs.into_iter().enumerate() {
            if i % 100 == 0 {
                let n = grouped.len();
                grouped.push(Doc {
                    id: format!("{n:06}"),
                    metadata: serde_json::json!({ "group": n % 10 }),
                    chunks: Vec::new(),
                });
            }
            if let Some(d) = grouped.last_mut() {
                d.chunks.push((text, vector));
            }
        }
        on_postgres(&url, dim, grouped, &queries).await?;
    }
    Ok(())
}

/// The same searches inside PostgreSQL, through the retrieval port as the service runs them
/// (top 10; hybrid fuses the best 200 of each retriever).
async fn on_postgres(url: &str, dim: usize, docs: Vec<Doc>, queries: &[(&str, Vec<f32>)]) -> Result<()> {
    let n: usize = docs.iter().map(|d| d.chunks.len()).sum();
    let (store, search) = pgsearch::fresh(url).await?;
    let start = Instant::now();
    pgsearch::load(&store, dim as u32, docs).await?;
    println!(
        "\nPostgreSQL: {n} chunks written through the knowledge store in {:.1} s\n",
        start.elapsed().as_secs_f64()
    );
    println!("| query (PostgreSQL) | filter | p50 | p99 |\n|---|---|---|---|");
    let retriever = DatabaseRetriever::new(search);
    let thirty = Arc::new(Filter::parse(&serde_json::json!({"field": "group", "lt": 3}))?);
    for (fname, filter) in [("none", None), ("30% of chunks", Some(thirty))] {
        for mode in SearchMode::ALL {
            let mut times = Vec::with_capacity(queries.len());
            for (text, qv) in queries {
                let q = SearchQuery {
                    collection_id: pgsearch::COLLECTION.into(),
                    text: (*text).to_owned(),
                    vector: Some(Arc::from(qv.as_slice())),
                    mode,
                    k: 10,
                    filter: filter.clone(),
                };
                let t = Instant::now();
                let found = retriever.search(q).await?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(found);
            }
            times.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            println!("| {} | {fname} | {p50:.2} ms | {p99:.2} ms |", mode.as_str());
        }
    }
    Ok(())
}
