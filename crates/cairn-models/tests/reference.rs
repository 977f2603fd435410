//! The embedder reproduces sentence-transformers' all-MiniLM-L6-v2 vectors
//! (`../shared/data/reference-embeddings.jsonl`) with cosine similarity of at least 0.999.

use std::path::PathBuf;

use cairn_models::{Embedder, EmbedderOptions};

/// Folder of the MiniLM model: `CAIRN_TEST_MINILM_DIR`, else the default model cache.
fn model_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CAIRN_TEST_MINILM_DIR") {
        return dir.into();
    }
    let cache = std::env::var("CAIRN_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cairn/models"));
    cache.join("minilm")
}

fn reference() -> Vec<(String, Vec<f32>)> {
    // Relative to the package folder, where the test runs: a path fixed at compile time would
    // name the checkout that built the binary, which a shared target folder may not be.
    let path = "../../../shared/data/reference-embeddings.jsonl";
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reference embeddings at {path}: {e}"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            (v["text"].as_str().unwrap().to_owned(), e)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_the_reference_vectors() {
    let dir = model_dir();
    let embedder = Embedder::load(&dir, &EmbedderOptions { threads: 1 })
        .unwrap_or_else(|e| panic!("{e}: run `cairn models pull` (scripts/test.sh does)"));
    assert_eq!(embedder.dimensions(), 384);
    assert_eq!(embedder.max_tokens(), 256, "window from sentence_bert_config.json, not tokenizer.json");
    let refs = reference();
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    // One batch and one at a time must agree: packing sequences cannot change results.
    let batched = embedder.embed(&texts);
    let mut worst = (1.0f32, String::new());
    for (i, (text, want)) in refs.iter().enumerate() {
        let single = &embedder.embed(&[text.as_str()])[0];
        let (cb, cs) = (cosine(&batched[i], want), cosine(single, want));
        if cb.min(cs) < worst.0 {
            worst = (cb.min(cs), text.chars().take(60).collect());
        }
    }
    assert!(worst.0 >= 0.999, "worst cosine {} for {:?}", worst.0, worst.1);
}
