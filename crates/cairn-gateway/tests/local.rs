//! The in-process provider: dynamic batching, overload, and missing or corrupt models.
//! Needs the MiniLM model in the cache (`cairn models pull minilm`; scripts/test.sh does it).

use std::sync::atomic::Ordering;

use cairn_core::config::LocalConfig;
use cairn_core::openai::{EmbeddingInput, EmbeddingRequest, EmbeddingVector};
use cairn_gateway::provider::{LocalProvider, Provider};
use cairn_gateway::ProviderError;

fn config(max_batch: usize, queue: usize) -> LocalConfig {
    LocalConfig { threads: 1, max_batch, max_wait_ms: 20, queue, ..LocalConfig::default() }
}

fn request(input: EmbeddingInput) -> EmbeddingRequest {
    EmbeddingRequest::new("x", input)
}

fn floats(v: &EmbeddingVector) -> &[f32] {
    match v {
        EmbeddingVector::Float(f) => f,
        EmbeddingVector::Base64(_) => panic!("expected floats"),
    }
}

#[tokio::test]
async fn concurrent_requests_are_batched_without_changing_results() {
    let p = LocalProvider::new(&config(32, 64));
    let texts: Vec<String> = (0..16).map(|i| format!("sentence number {i} about batching")).collect();
    let alone: Vec<Vec<f32>> = {
        let mut out = Vec::new();
        for t in &texts {
            let r = p.embed(&request(EmbeddingInput::Text(t.clone())), "minilm").await.unwrap();
            out.push(floats(&r.data[0].embedding).to_vec());
        }
        out
    };
    let before = p.embedder("minilm").await.unwrap().stats.batches.load(Ordering::Relaxed);
    let requests: Vec<_> = texts.iter().map(|t| request(EmbeddingInput::Text(t.clone()))).collect();
    let calls = requests.iter().map(|r| p.embed(r, "minilm"));
    let together = futures::future::join_all(calls).await;
    let batches = p.embedder("minilm").await.unwrap().stats.batches.load(Ordering::Relaxed) - before;
    assert!(batches < 16, "16 concurrent requests ran as {batches} batches");
    for (resp, want) in together.iter().zip(&alone) {
        let got = floats(&resp.as_ref().unwrap().data[0].embedding);
        let diff = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "batching changed a vector by {diff}");
    }
}

#[tokio::test]
async fn a_full_queue_answers_unavailable_with_retry_after() {
    let p = LocalProvider::new(&config(1, 1));
    p.warm_up("minilm").await.unwrap();
    let long = "a long sentence that takes a while to embed ".repeat(20);
    let requests: Vec<_> = (0..20).map(|_| request(EmbeddingInput::Text(long.clone()))).collect();
    let calls = requests.iter().map(|r| p.embed(r, "minilm"));
    let results = futures::future::join_all(calls).await;
    let refused =
        results.iter().filter(|r| matches!(r, Err(ProviderError::Unavailable { retry_after: Some(_), .. }))).count();
    assert!(refused > 0, "no request was refused with a queue of one");
    assert!(results.iter().any(Result::is_ok));
}

#[tokio::test]
async fn bad_requests_and_missing_or_corrupt_models() {
    let p = LocalProvider::new(&config(32, 64));
    let mut r = request(EmbeddingInput::Text("x".into()));
    r.dimensions = Some(128);
    assert!(p.embed(&r, "minilm").await.unwrap_err().is_client_error());
    let tokens = request(EmbeddingInput::Tokens(vec![1, 2, 3]));
    assert!(p.embed(&tokens, "minilm").await.unwrap_err().is_client_error());

    let dir = tempfile::tempdir().unwrap();
    let empty = LocalProvider::new(&LocalConfig { models_dir: dir.path().into(), ..config(32, 64) });
    let err = empty.embed(&request(EmbeddingInput::Text("x".into())), "minilm").await.unwrap_err();
    assert!(err.to_string().contains("cairn models pull minilm"), "{err}");

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::write(broken.join(f), b"{ definitely not a model").unwrap();
    }
    let err = empty.embed(&request(EmbeddingInput::Text("x".into())), "broken").await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }) && err.to_string().contains("cannot be loaded"), "{err}");
}
