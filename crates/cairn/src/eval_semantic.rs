//! `cairn eval semantic-cache`: how a semantic cache keyed on a question's embedding would do on
//! labelled question pairs. A paraphrase pair above the threshold is a right hit (one answer
//! serves both); a near-miss pair above it is a false hit (a wrong answer served). Per
//! threshold: the hit rate on paraphrases, and false hits as a share of all hits, for
//! similarity alone and with the agreement check the cache also applies; then the lowest
//! threshold that keeps false hits under 1% of hits.

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
pub fn semantic_cache(config: &Config, pairs: &Path, model: &str, show: bool) -> Result<()> {
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
    let agreed: Vec<bool> = pairs.iter().map(|p| cairn_gateway::agree(&p.a, &p.b).is_ok()).collect();
    let same = scored.iter().filter(|s| s.1).count();
    println!(
        "\n{} pairs ({same} paraphrases, {} near-misses), model {}\n",
        scored.len(),
        scored.len() - same,
        dir.display()
    );
    println!("A hit needs similarity at or above the threshold; Cairn's cache also needs the questions to agree");
    println!("(numbers, polarity, direction, every content word matched). False hits are a share of all hits.\n");
    println!("| threshold | similarity alone: hit rate | false hits | with agreement: hit rate | false hits | hits | false |");
    println!("|---|---|---|---|---|---|---|");
    let rate = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 * 100.0 };
    let mut safe = None;
    for step in 0..=10 {
        let t = 0.50 + step as f32 * 0.05;
        let tally = |gate: &dyn Fn(usize) -> bool| {
            let hits: Vec<usize> = (0..scored.len()).filter(|&i| scored[i].0 >= t && gate(i)).collect();
            let right = hits.iter().filter(|&&i| scored[i].1).count();
            (right, hits.len() - right)
        };
        let (right, wrong) = tally(&|_| true);
        let (right_a, wrong_a) = tally(&|i| agreed[i]);
        if safe.is_none() && right_a + wrong_a > 0 && rate(wrong_a, right_a + wrong_a) < 1.0 {
            safe = Some((t, rate(right_a, same)));
        }
        println!(
            "| {t:.2} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {} | {wrong_a} |",
            rate(right, same),
            rate(wrong, right + wrong),
            rate(right_a, same),
            rate(wrong_a, right_a + wrong_a),
            right_a + wrong_a,
        );
    }
    let default = cairn_core::config::SemanticCacheConfig::DEFAULT_THRESHOLD;
    match safe {
        Some((t, hit)) => println!(
            "\nlowest threshold with false hits under 1% of hits (with agreement): {t:.2} (hit rate {hit:.1}%); Cairn's default: {default:.2}"
        ),
        None => println!("\nno threshold keeps false hits under 1% of hits; Cairn's default: {default:.2}"),
    }
    if show {
        println!("\nPairs the cache decides wrongly at the default threshold:");
        for (i, p) in pairs.iter().enumerate() {
            let hit = scored[i].0 >= default && agreed[i];
            if hit != p.same {
                let why = cairn_gateway::agree(&p.a, &p.b).err().map(|d| format!("{d:?}")).unwrap_or_default();
                println!(
                    "  {} {:.3} {why}: {} | {}",
                    if p.same { "missed" } else { "FALSE HIT" },
                    scored[i].0,
                    p.a,
                    p.b
                );
            }
        }
    }
    Ok(())
}
