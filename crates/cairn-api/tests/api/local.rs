//! The in-process embedding model through the real HTTP API, as an ordinary gateway model.
//! Needs MiniLM in the model cache (scripts/test.sh pulls it).

use cairn_testkit::TestServer;
use serde_json::{json, Value};

use crate::usage;

fn config(models_dir: Option<&str>) -> String {
    let dir = models_dir.map(|d| format!("models_dir = \"{d}\"\n")).unwrap_or_default();
    format!(
        "[local]\nthreads = 1\n{dir}\n[providers.local]\nkind = \"local\"\n\n\
         [models.\"local/minilm\"]\nkind = \"embedding\"\ntargets = [{{ provider = \"local\", model = \"minilm\" }}]\n"
    )
}

fn first_reference() -> (String, Vec<f64>) {
    // Relative to the package folder, where the test runs: a path fixed at compile time would
    // name the checkout that built the binary, which a shared target folder may not be.
    let path = "../../../shared/data/reference-embeddings.jsonl";
    let text = std::fs::read_to_string(path).expect("reference embeddings");
    let line = text.lines().find(|l| l.contains("\"text\": \"The")).unwrap_or_else(|| text.lines().nth(5).unwrap());
    let v: Value = serde_json::from_str(line).unwrap();
    (
        v["text"].as_str().unwrap().into(),
        v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
    )
}

#[tokio::test]
async fn local_embeddings_through_the_gateway() {
    let s = TestServer::start(&config(None)).await;
    let (text, want) = first_reference();
    let (status, body) = s
        .post("/v1/embeddings", &s.admin_key, &json!({"model": "local/minilm", "input": [text, "second input"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<f64> = body["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(got.len(), 384);
    let cosine: f64 = got.iter().zip(&want).map(|(a, b)| a * b).sum::<f64>()
        / (got.iter().map(|a| a * a).sum::<f64>().sqrt() * want.iter().map(|b| b * b).sum::<f64>().sqrt());
    assert!(cosine >= 0.999, "cosine {cosine} for {text:?}");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 4);

    let (_, models) = s.get("/v1/models", &s.admin_key).await;
    assert_eq!(models["data"][0]["id"], "local/minilm");
    assert_eq!(models["data"][0]["cairn"]["kind"], "embedding");

    let (status, body) =
        s.post("/v1/embeddings", &s.admin_key, &json!({"model": "local/minilm", "input": "x", "dimensions": 64})).await;
    assert_eq!(status, 400, "{body}");

    let (_, u) = usage(&s, &s.admin_key, "").await;
    assert_eq!(u["totals"]["requests"], 2);
    assert_eq!(u["totals"]["errors"], 1);
}

#[tokio::test]
async fn a_missing_local_model_is_a_503_that_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&config(Some(dir.path().to_str().unwrap()))).await;
    let (status, body) = s.post("/v1/embeddings", &s.admin_key, &json!({"model": "local/minilm", "input": "x"})).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("cairn models pull minilm"), "{body}");
}
