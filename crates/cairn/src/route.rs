//! `cairn route train` and `cairn route eval`: fit the cost router's weights on the labelled
//! set's training half, and report its accuracy, the share it sends to the large model per
//! threshold, and how long a decision takes.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use cairn_core::config::{Config, ModelSize};
use cairn_core::openai::{ChatMessage, ChatRequest, ChatRole};
use cairn_gateway::guard::StaticVectors;
use cairn_gateway::routing::features::{asked, features, WIDTH};
use cairn_gateway::routing::{parse_set, Examples, Labelled, RoutingModel};
use cairn_guard::train::{fit, TrainOptions};
use cairn_guard::TextVectors;

fn read(set: &Path) -> Result<Vec<Labelled>> {
    let text = std::fs::read_to_string(set).with_context(|| format!("reading {}", set.display()))?;
    parse_set(&text).map_err(|e| anyhow!("{}: {e}", set.display()))
}

fn request(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::text(ChatRole::User, text)], ..Default::default() }
}

/// The features of each example of `split`, its meaning compared with the training half.
fn rows(set: &[Labelled], split: &str, v: &StaticVectors) -> Vec<([f32; WIDTH], bool)> {
    let examples = Examples(set.iter().filter(|e| e.split == "train").map(|e| (v.mean(&e.text), e.label)).collect());
    set.iter()
        .filter(|e| e.split == split)
        .map(|e| {
            let req = request(&e.text);
            let text = asked(&req);
            (features(&req, &text, examples.similarity(&v.mean(&text))), e.label == ModelSize::Large)
        })
        .collect()
}

fn vectors(config: &Config, model: &str) -> Result<StaticVectors> {
    StaticVectors::load(&cairn_gateway::models_dir(&config.local), model).map_err(|e| anyhow!("{e}"))
}

/// Fits the weights on `set`'s training half; writes them to `out`; reports on the test half.
pub fn train(config: &Config, set: &Path, out: &Path, model: &str) -> Result<()> {
    let set = read(set)?;
    let v = vectors(config, model)?;
    let train: Vec<(Vec<f32>, bool)> = rows(&set, "train", &v).into_iter().map(|(f, y)| (f.to_vec(), y)).collect();
    let options = TrainOptions { epochs: 3000, l2: 1e-3, ..Default::default() };
    let (weights, bias) = fit(&train, WIDTH, &options);
    let trained = RoutingModel { weights, bias };
    std::fs::write(out, serde_json::to_string_pretty(&trained)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    report(&trained, &set, "test", &v)
}

/// Reports a model (default: the built-in one) on `set`'s `split`.
pub fn eval(config: &Config, set: &Path, weights: Option<&Path>, model: &str, split: &str) -> Result<()> {
    let set = read(set)?;
    let trained = match weights {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?).with_context(|| format!("{}", p.display()))?,
        None => RoutingModel::builtin().map_err(|e| anyhow!(e))?,
    };
    report(&trained, &set, split, &vectors(config, model)?)
}

fn report(m: &RoutingModel, set: &[Labelled], split: &str, v: &StaticVectors) -> Result<()> {
    let rows = rows(set, split, v);
    let large = rows.iter().filter(|r| r.1).count();
    println!("\n{split} split: {} requests ({large} need the large model)\n", rows.len());
    println!("| threshold | accuracy | hard sent large | easy sent small | share sent large |");
    println!("|---|---|---|---|---|");
    for t in [0.3f32, 0.4, 0.5, 0.6, 0.7] {
        let (mut tp, mut tn, mut sent) = (0, 0, 0);
        for (f, y) in &rows {
            let big = m.score(f) >= t;
            sent += usize::from(big);
            tp += usize::from(big && *y);
            tn += usize::from(!big && !*y);
        }
        let n = rows.len().max(1) as f64;
        println!(
            "| {t:.1} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            (tp + tn) as f64 / n * 100.0,
            tp as f64 / large.max(1) as f64 * 100.0,
            tn as f64 / (rows.len() - large).max(1) as f64 * 100.0,
            sent as f64 / n * 100.0
        );
    }
    // A decision: the request's features, its vector against the examples, the score.
    let examples = Examples(set.iter().filter(|e| e.split == "train").map(|e| (v.mean(&e.text), e.label)).collect());
    let mut times = Vec::new();
    for e in set.iter().filter(|e| e.split == split).cycle().take(5000) {
        let started = Instant::now();
        let req = request(&e.text);
        let text = asked(&req);
        std::hint::black_box(m.score(&features(&req, &text, examples.similarity(&v.mean(&text)))));
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "\ndecision time over 5000 decisions ({} built-in examples): p50 {:.1} µs, p99 {:.1} µs",
        examples.0.len(),
        at(0.5),
        at(0.99)
    );
    Ok(())
}
