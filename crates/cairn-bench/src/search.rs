//! `cairn-bench search`: query latency of keyword, vector and hybrid search at a given number
//! of chunks (100,000 by default, 1,000,000 for the scale-out goals), excluding the query's
//! embedding, with and without a metadata filter that keeps 30% of chunks; with `--cairn`,
//! the start-up time and resident memory of a `cairn serve` node over the same corpus.
//!
//! The corpus is written through the knowledge store as ingestion writes it (documents of 100
//! chunks in ten metadata groups; texts are SciFact sentences, repeated with a suffix to reach
//! the count; vectors are generated with a low intrinsic dimension like embeddings, see
//! `ann::generate`), then searched through the retrieval port as the service searches: the
//! embedded default (SQLite, the live index with its HNSW graphs) and, with `--postgres`,
//! inside PostgreSQL. Queries are the SciFact claims.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_core::filter::Filter;
use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::live::{LiveIndex, LiveOptions};
use cairn_knowledge::retrieve::{DatabaseRetriever, Phase, Retriever, SearchMode, SearchQuery};

use crate::load::percentile;
use crate::pgsearch::{self, Doc};
use crate::startup;

/// Chunks per document.
pub(crate) const PER_DOC: usize = 100;

/// The dataset's sentences of five words or more, the texts chunks are made of.
pub(crate) fn sentences(data: &BeirDataset) -> Vec<&str> {
    data.corpus.iter().flat_map(|d| d.text.split(". ")).filter(|s| s.split_whitespace().count() >= 5).collect()
}

/// The text of chunk `i`: a sentence, with a suffix telling its repetitions apart.
pub(crate) fn chunk_text(sentences: &[&str], i: usize) -> String {
    format!("{} part {}", sentences[i % sentences.len()], i / sentences.len())
}

/// The PostgreSQL server to search in, and whether its database already holds the corpus.
pub struct Postgres {
    /// A server URL (a fresh database is made), or with `loaded` the database to search.
    pub url: String,
    /// The database holds the corpus already (an earlier run's): nothing is written.
    pub loaded: bool,
}

/// Where the embedded run keeps its data.
pub struct Embedded {
    /// A folder kept after the run (reused when it holds the corpus), or a temporary one.
    pub dir: Option<std::path::PathBuf>,
}

/// Runs the benchmark and prints Markdown tables.
pub async fn run(
    dataset: &Path,
    chunks: usize,
    dim: usize,
    postgres: Option<Postgres>,
    cairn: Option<&Path>,
    embedded: Option<Embedded>,
) -> Result<()> {
    let data = BeirDataset::load(dataset)?;
    let sentences = sentences(&data);
    let (vectors, query_vectors) = crate::ann::generate(chunks, data.queries.len(), dim);
    let corpus = || -> Vec<Doc> {
        (0..chunks.div_ceil(PER_DOC))
            .map(|d| Doc {
                id: format!("{d:07}"),
                metadata: serde_json::json!({ "group": d % 10 }),
                chunks: (d * PER_DOC..((d + 1) * PER_DOC).min(chunks))
                    .map(|i| (chunk_text(&sentences, i), vectors[i * dim..(i + 1) * dim].to_vec()))
                    .collect(),
            })
            .collect()
    };
    let queries: Vec<(&str, &[f32])> =
        data.queries.iter().map(|(_, q)| q.as_str()).zip(query_vectors.chunks_exact(dim)).collect();
    println!("## Search latency (cairn-bench search, {chunks} chunks, {dim} dimensions)\n");

    let dir = tempfile::tempdir()?;
    let mut nodes = match embedded {
        Some(e) => {
            let data_dir = e.dir.unwrap_or_else(|| dir.path().join("data"));
            embedded_runs(dir.path(), &data_dir, (chunks, dim), corpus, &queries, cairn).await?
        }
        None => Vec::new(),
    };

    if let Some(pg) = postgres {
        let (store, search, db_url) = if pg.loaded {
            let (store, search) = cairn_store::open_with_search(&pg.url, 16).await?;
            println!("\nPostgreSQL: searching the corpus already in {}\n", pg.url);
            (store, search.context("PostgreSQL offers search")?, pg.url)
        } else {
            let (store, search, db_url) = pgsearch::fresh(&pg.url).await?;
            let start = Instant::now();
            pgsearch::load(&store, dim as u32, corpus(), Some(&db_url)).await?;
            println!(
                "\nPostgreSQL: {chunks} chunks written through the knowledge store in {:.1} s \
                 (HNSW index built after the writes) into {db_url}\n",
                start.elapsed().as_secs_f64()
            );
            (store, search, db_url)
        };
        measure("PostgreSQL", &DatabaseRetriever::new(search), &queries).await?;
        drop(store);
        if let Some(cairn) = cairn {
            let pg_dir = dir.path().join("pg");
            std::fs::create_dir_all(&pg_dir)?;
            let (secs, rss) = startup::node(cairn, dir.path(), &pg_dir, &db_url, "database").await?;
            nodes.push(format!("| PostgreSQL, database retrieval | {secs:.2} s | {rss:.0} MB |"));
        }
    }
    if !nodes.is_empty() {
        println!("\n### `cairn serve` start-up at {chunks} chunks (until `/readyz` answers 200)\n");
        println!("| storage and retrieval | start-up | resident memory when ready |\n|---|---|---|");
        nodes.iter().for_each(|row| println!("{row}"));
    }
    Ok(())
}

/// The embedded runs: the corpus written into SQLite in `data_dir` (unless an earlier run left
/// it there), searched through the live index, and with `cairn`, the node's start-ups over it
/// (rows of the start-up table); `dir` is scratch space.
async fn embedded_runs(
    dir: &Path,
    data_dir: &Path,
    (chunks, dim): (usize, usize),
    corpus: impl FnOnce() -> Vec<Doc>,
    queries: &[(&str, &[f32])],
    cairn: Option<&Path>,
) -> Result<Vec<String>> {
    let mut nodes = Vec::new();
    let db = data_dir.join("cairn.db");
    let loaded = db.exists();
    std::fs::create_dir_all(data_dir)?;
    let sqlite_url = format!("sqlite://{}", db.display());
    let store = cairn_store::open(&sqlite_url, 4).await?;
    if loaded {
        println!("Embedded (SQLite): searching the corpus already in {}", db.display());
    } else {
        let docs = corpus();
        let start = Instant::now();
        pgsearch::load(&store, dim as u32, docs, None).await?;
        println!("Embedded (SQLite): {chunks} chunks written in {:.1} s", start.elapsed().as_secs_f64());
    }
    let start = Instant::now();
    let options = LiveOptions { dir: Some(data_dir.join("indexes")), ..LiveOptions::default() };
    let live = LiveIndex::open_with(store.clone(), options).await?;
    // A kept folder from a run with another `--chunks`, or one cut short while writing.
    anyhow::ensure!(
        live.len(pgsearch::COLLECTION) == chunks,
        "{} holds {} chunks, not {chunks}: use another --embedded-dir",
        db.display(),
        live.len(pgsearch::COLLECTION)
    );
    let how = if loaded { "opened (saved HNSW graph loaded, BM25 built)" } else { "built (BM25 and HNSW, one thread)" };
    println!("live index {how} in {:.1} s\n", start.elapsed().as_secs_f64());
    measure("embedded", &live, queries).await?;
    drop((live, store));

    if let Some(cairn) = cairn {
        // Both starts load the graph saved above; then, without it, the node rebuilds it
        // (not in a kept folder, whose saved graph later runs load).
        for run in ["first", "second"] {
            let (secs, rss) = startup::node(cairn, dir, data_dir, &sqlite_url, "memory").await?;
            nodes.push(format!("| SQLite, memory retrieval ({run} start) | {secs:.2} s | {rss:.0} MB |"));
        }
        if !data_dir.starts_with(dir) {
            return Ok(nodes);
        }
        std::fs::remove_dir_all(data_dir.join("indexes"))?;
        let (secs, rss) = startup::node(cairn, dir, data_dir, &sqlite_url, "memory").await?;
        nodes.push(format!("| SQLite, memory retrieval (no saved index: graph rebuilt) | {secs:.2} s | {rss:.0} MB |"));
    }
    Ok(nodes)
}

/// The searches through `retriever` as the service runs them (top 10; hybrid fuses the best
/// `FUSION_DEPTH` of each retriever), each query once per mode and filter; prints p50 and p99, and for
/// hybrid, those of each leg (its keyword and vector retrieval, which run concurrently).
async fn measure(label: &str, retriever: &dyn Retriever, queries: &[(&str, &[f32])]) -> Result<()> {
    println!("| query ({label}) | filter | p50 | p99 | keyword leg p50 / p99 | vector leg p50 / p99 |");
    println!("|---|---|---|---|---|---|");
    let thirty = Arc::new(Filter::parse(&serde_json::json!({"field": "group", "lt": 3}))?);
    for (fname, filter) in [("none", None), ("30% of chunks", Some(thirty))] {
        for mode in SearchMode::ALL {
            let (mut times, mut words, mut meaning) = (Vec::new(), Vec::new(), Vec::new());
            for (text, qv) in queries {
                let q = SearchQuery {
                    collection_id: pgsearch::COLLECTION.into(),
                    text: (*text).to_owned(),
                    vector: Some(Arc::from(*qv)),
                    mode,
                    k: 10,
                    filter: filter.clone(),
                };
                let t = Instant::now();
                let found = retriever.search(q).await?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                if mode == SearchMode::Hybrid {
                    let ms = |p: Option<Phase>| p.map_or(0.0, |p| (p.end_ns - p.start_ns) as f64 / 1e6);
                    words.push(ms(found.phases.keyword));
                    meaning.push(ms(found.phases.vector));
                }
                std::hint::black_box(found);
            }
            let spread = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                (percentile(&v, 0.5), percentile(&v, 0.99))
            };
            let legs = |v: Vec<f64>| match spread(v) {
                (p50, _) if p50.is_nan() => "-".to_owned(),
                (p50, p99) => format!("{p50:.2} / {p99:.2} ms"),
            };
            let (p50, p99) = spread(times);
            println!(
                "| {} | {fname} | {p50:.2} ms | {p99:.2} ms | {} | {} |",
                mode.as_str(),
                legs(words),
                legs(meaning)
            );
        }
    }
    Ok(())
}
