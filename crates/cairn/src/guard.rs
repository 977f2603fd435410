//! `cairn guard train` and `cairn guard eval`: fit the injection classifier on a labelled set
//! and report its detection and false-positive rates, direct and indirect, on held-out texts.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use cairn_core::config::Config;
use cairn_gateway::guard::StaticVectors;
use cairn_guard::train::{evaluate, train as fit, Example, TrainOptions};
use cairn_guard::{InjectionModel, Source, TextVectors};

fn read_set(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect()
}

fn vectors(config: &Config, model: &str) -> Result<StaticVectors> {
    StaticVectors::load(&cairn_gateway::models_dir(&config.local), model).map_err(|e| anyhow!("{e}"))
}

/// Trains on `set`'s train split with `model`'s word vectors; writes the model to `out`.
pub fn train(config: &Config, set: &Path, out: &Path, model: &str, options: &TrainOptions) -> Result<()> {
    let examples = read_set(set)?;
    let vectors = vectors(config, model)?;
    let started = std::time::Instant::now();
    let trained = fit(&examples, Some(&vectors as &dyn TextVectors), model, options, &mut |stage| {
        eprintln!("  {stage} ({:.0?})", started.elapsed())
    });
    std::fs::write(out, serde_json::to_string(&trained)?).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} (thresholds: direct {:.3}, indirect {:.3})",
        out.display(),
        trained.direct_threshold,
        trained.indirect_threshold
    );
    report(&trained, &vectors, &examples, "test")
}

/// Measures a model (default: the built-in one) on `set`'s `split`.
pub fn eval(config: &Config, set: &Path, classifier: Option<&Path>, model: &str, split: &str) -> Result<()> {
    let examples = read_set(set)?;
    let trained = match classifier {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?).with_context(|| format!("{}", p.display()))?,
        None => InjectionModel::builtin().map_err(|e| anyhow!(e))?,
    };
    report(&trained, &vectors(config, model)?, &examples, split)
}

fn report(m: &InjectionModel, vectors: &StaticVectors, set: &[Example], split: &str) -> Result<()> {
    let v = Some(vectors as &dyn TextVectors);
    println!("\n{split} split, at the model's thresholds:\n");
    println!("| source | threshold | injections | clean | detection | false positives |");
    println!("|---|---|---|---|---|---|");
    for (name, source) in [("direct", Source::Direct), ("indirect", Source::Indirect)] {
        let t = m.threshold(source);
        let r = evaluate(m, v, set, split, source, t);
        println!(
            "| {name} | {t:.3} | {} | {} | {:.1}% | {:.1}% |",
            r.positives,
            r.negatives,
            r.detection * 100.0,
            r.false_positives * 100.0
        );
    }
    for (name, source) in [("direct", Source::Direct), ("indirect", Source::Indirect)] {
        let screen = cairn_guard::InjectionScreen::new();
        let t = m.threshold(source);
        let mut wrong: Vec<(f32, &Example, &str)> = set
            .iter()
            .filter(|e| e.split == split && e.source == source)
            .map(|e| {
                let (score, passage) = m.score(&screen, v, &e.text, source);
                (score, e, passage)
            })
            .filter(|(score, e, _)| (*score >= t) != e.label)
            .collect();
        // The most confident mistakes of each kind: false alarms by highest score, misses by lowest.
        wrong.sort_by(|a, b| b.0.total_cmp(&a.0));
        let alarms = wrong.iter().filter(|(_, e, _)| !e.label).take(6);
        let misses = wrong.iter().rev().filter(|(_, e, _)| e.label).take(6);
        if !wrong.is_empty() {
            println!("\nworst {name} mistakes (score, label, text):");
        }
        // False alarms show the passage that scored; misses, the planted payload or the text.
        for (score, e, passage) in alarms.chain(misses) {
            let shown = if e.label { e.payload.as_deref().unwrap_or(&e.text) } else { passage };
            let text: String = shown.chars().take(110).collect::<String>().replace('\n', " ");
            println!("  {score:.3} {} {text}", if e.label { "injection" } else { "clean" });
        }
    }
    println!("\nacross thresholds (detection / false positives):\n");
    println!("| threshold | direct | indirect |");
    println!("|---|---|---|");
    for t in [0.3f32, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95] {
        let d = evaluate(m, v, set, split, Source::Direct, t);
        let i = evaluate(m, v, set, split, Source::Indirect, t);
        println!(
            "| {t:.2} | {:.1}% / {:.1}% | {:.1}% / {:.1}% |",
            d.detection * 100.0,
            d.false_positives * 100.0,
            i.detection * 100.0,
            i.false_positives * 100.0
        );
    }
    Ok(())
}
