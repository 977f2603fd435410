//! `cairn eval answers` as a real process against a real server: every question answered
//! through the API, citations scored against the dataset, faithfulness graded by a judge
//! model, scores attached to each answer as feedback, the evaluation stored and readable.

use std::process::{Command, Output};
use std::time::Duration;

use cairn_testkit::{StandIn, TestServer};
use serde_json::json;

async fn cairn(base: &str, key: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args).env("CAIRN_URL", base).env("CAIRN_API_KEY", key).env_remove("CAIRN_CONFIG");
    tokio::task::spawn_blocking(move || cmd.output().expect("run cairn")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_scored_stored_and_attached_as_feedback() {
    let (up, judge) = (StandIn::start().await, StandIn::start().await);
    let config = format!(
        "[jobs]\npoll_ms = 20\n[knowledge]\nanswer_model = \"writer\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [providers.judge]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.embed]\nkind = \"embedding\"\ntargets = [{{ provider = \"up\", model = \"e\" }}]\n\
         [models.writer]\ntargets = [{{ provider = \"up\", model = \"w\" }}]\n\
         [models.grader]\ntargets = [{{ provider = \"judge\", model = \"g\" }}]\n",
        up.openai_url(),
        judge.openai_url()
    );
    let s = TestServer::start(&config).await;
    let key = s.key("acme", "member", json!({})).await;
    let (status, col) = s.post("/v1/collections", &key, &json!({"name": "policies", "embedding_model": "embed"})).await;
    assert_eq!(status, 201, "{col}");
    let col_id = col["id"].as_str().unwrap().to_owned();
    let docs = json!({"documents": [
        {"id": "refunds", "text": "Refunds are allowed within 30 days of delivery."},
    ]});
    let (status, accepted) = s.post(&format!("/v1/collections/{col_id}/documents"), &key, &docs).await;
    assert_eq!(status, 202, "{accepted}");
    let job = accepted["data"][0]["job_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.get(&format!("/v1/jobs/{job}"), &key).await.1["state"] != "succeeded" {
        assert!(tokio::time::Instant::now() < deadline, "ingestion stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    up.reply_with(&["Refunds are allowed for 30 days [1]."]);
    judge.reply_with(&["{\"score\": 0.5, \"reason\": \"half of it is supported\"}"]);

    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("qa.jsonl");
    std::fs::write(
        &dataset,
        "{\"question\": \"How long do refunds last?\", \"expected_documents\": [\"refunds\"]}\n\n\
         {\"question\": \"Who pays for shipping?\", \"expected_documents\": [\"shipping\"]}\n",
    )
    .unwrap();
    let args =
        ["eval", "answers", "--dataset", dataset.to_str().unwrap(), "--collection", "policies", "--judge", "grader"];
    let out = cairn(&s.base, &key, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| **mean** | | **50.0%** | **50.0%** | **50.0%** | |"), "{stdout}");

    // Stored: the means over both questions, each question's scores.
    let (status, list) = s.get("/v1/evals", &key).await;
    assert_eq!(status, 200);
    let eval_id = list["data"][0]["id"].as_str().unwrap();
    let (_, e) = s.get(&format!("/v1/evals/{eval_id}"), &key).await;
    assert_eq!((e["collection_id"].as_str(), e["dataset"].as_str()), (Some(col_id.as_str()), Some("qa.jsonl")));
    assert_eq!((e["judge"].as_str(), e["questions"].as_u64()), (Some("grader"), Some(2)));
    let items = e["items"].as_array().unwrap();
    assert_eq!(items[0]["cited"], json!(["refunds"]));
    assert_eq!((items[0]["citation_precision"].as_f64(), items[0]["citation_recall"].as_f64()), (Some(1.0), Some(1.0)));
    assert_eq!((items[1]["citation_precision"].as_f64(), items[1]["citation_recall"].as_f64()), (Some(0.0), Some(0.0)));
    assert_eq!(items[0]["faithfulness"].as_f64(), Some(0.5));
    // The judge saw the cited source and the answer.
    let asked = judge.bodies();
    assert_eq!(asked.len(), 2);
    let prompt = asked[0]["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("within 30 days of delivery") && prompt.contains("[1]."), "{prompt}");

    // Each answer carries its scores as feedback, from the evaluation.
    let answer_id = items[0]["answer_id"].as_str().unwrap();
    s.flush().await;
    let (status, fb) = s.get(&format!("/v1/answers/{answer_id}/feedback"), &key).await;
    assert_eq!(status, 200, "{fb}");
    let names: Vec<&str> = fb["data"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["citation_precision", "citation_recall", "faithfulness"]);
    assert_eq!(fb["data"][2]["author"], "cairn eval answers");

    // A bad dataset is refused by line, before anything is asked.
    std::fs::write(&dataset, "{\"question\": \"ok\"}\n{\"questio\": 1}\n").unwrap();
    let out = cairn(&s.base, &key, &args).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&out.stderr));
}
