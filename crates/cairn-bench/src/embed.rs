//! `cairn-bench embed`: sentences per second of the in-process embedding model at batch 1 and
//! batch 32, on ~50-word sentences (SciFact abstracts cut to 50 words).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_models::{Embedder, EmbedderOptions};

/// Up to `n` sentences of about `words` words from the SciFact corpus.
fn sentences(corpus: &Path, n: usize, words: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(corpus).with_context(|| format!("reading {}", corpus.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(|t| t.split_whitespace().take(words).collect::<Vec<_>>().join(" ")))
        .filter(|s| s.split_whitespace().count() == words)
        .take(n)
        .collect())
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(model: &Path, corpus: &Path, threads: usize, seconds: u64) -> Result<()> {
    let embedder =
        Embedder::load(model, &EmbedderOptions { threads }).with_context(|| format!("loading {}", model.display()))?;
    let texts = sentences(corpus, 2048, 50)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs.iter().map(|t| embedder.tokenize(t).len()).sum();
    println!("## Embedding throughput (cairn-bench embed, {threads} threads)\n");
    println!(
        "model: {}; sentences: 50 words, {:.1} tokens on average\n",
        model.display(),
        tokens as f64 / refs.len() as f64
    );
    println!("| batch | sentences/s | ms per batch |\n|---|---|---|");
    for batch in [1usize, 32] {
        embedder.embed(&refs[..batch]); // warm-up
        let (mut done, mut batches) = (0usize, 0usize);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(seconds) {
            let from = (done % (refs.len() - batch)).min(refs.len() - batch);
            embedder.embed(&refs[from..from + batch]);
            done += batch;
            batches += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!("| {batch} | {:.1} | {:.1} |", done as f64 / secs, secs * 1000.0 / batches as f64);
    }
    Ok(())
}
