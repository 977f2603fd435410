//! `cairn eval semantic-cache`: how a semantic cache keyed on a question's embedding would do on
//! labelled question pairs. A paraphrase pair above the threshold is a right hit (one answer
//! serves both); a near-miss pair above it is a false hit (a wrong answer served). Per
//! threshold: the hit rate on paraphrases, and false hits as a share of all hits; then the
//! lowest threshold that keeps false hits under 1% of hits.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use cairn_core::config::Config;
use cairn_models::{catalog, Embedder, EmbedderOptions};
use serde::Deserialize;

/// One labelled pair.
#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    same: bool,
}

/// Runs the report on `pairs` with the embedding model `model`.
pub fn semantic_cache(config: &Config, pairs: &Path, model: &str) -> Result<()> {
    let text = std::fs::read_to_string(pairs).with_context(|| format!("reading {}", pairs.display()))?;
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", pairs.display(), i + 1)))
        .collect::<Result<_>>()?;
    let dir = catalog::resolve(&cairn_gateway::models_dir(&config.local), model).map_err(|e| anyhow!("{e}"))?;
    let embedder = Embedder::load(&dir, &EmbedderOptions::default()).map_err(|e| anyhow!("{e}"))?;
    let texts: Vec<&str> = pairs.iter().flat_map(|p| [p.a.as_str(), p.b.as_str()]).collect();
    let vectors = embedder.embed(&texts);
    let cosine = |a: &[f32], b: &[f32]| -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        dot / (norm(a) * norm(b))
    };
    let scored: Vec<(f32, bool)> =
        pairs.iter().enumerate().map(|(i, p)| (cosine(&vectors[2 * i], &vectors[2 * i + 1]), p.same)).collect();
    let same = scored.iter().filter(|s| s.1).count();
    println!(
        "\n{} pairs ({same} paraphrases, {} near-misses), model {}\n",
        scored.len(),
        scored.len() - same,
        dir.display()
    );
    println!("| threshold | hit rate (paraphrases) | false hits (share of hits) | hits | false hits |");
    println!("|---|---|---|---|---|");
    let mut safe = None;
    for step in 0..=20 {
        let t = 0.80 + step as f32 * 0.01;
        let hits: Vec<&(f32, bool)> = scored.iter().filter(|s| s.0 >= t).collect();
        let right = hits.iter().filter(|s| s.1).count();
        let wrong = hits.len() - right;
        let false_share = if hits.is_empty() { 0.0 } else { wrong as f64 / hits.len() as f64 };
        if safe.is_none() && false_share < 0.01 {
            safe = Some((t, right as f64 / same.max(1) as f64));
        }
        println!(
            "| {t:.2} | {:.1}% | {:.1}% | {} | {wrong} |",
            right as f64 / same.max(1) as f64 * 100.0,
            false_share * 100.0,
            hits.len()
        );
    }
    match safe {
        Some((t, rate)) => {
            println!("\nlowest threshold with false hits under 1% of hits: {t:.2} (hit rate {:.1}%)", rate * 100.0)
        }
        None => println!("\nno threshold from 0.80 to 1.00 keeps false hits under 1% of hits"),
    }
    Ok(())
}
