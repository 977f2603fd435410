//! Feedback on traces, RAG answers and agent runs, and stored evaluations, through the HTTP
//! API: every score kind, feedback sent the moment a response arrives, the trace showing what
//! it was given, bad input, roles, and tenants kept apart. On SQLite and PostgreSQL.

use cairn_testkit::{Scripted, StandIn};
use serde_json::{json, Value};

use crate::runs::{agent, server, wait_job, wait_run};
use crate::traces_flows::post_traced;

async fn feedback_everywhere(postgres: bool) {
    let up = StandIn::start().await;
    let s = server(&up, postgres).await;
    let acme = s.key("acme", "member", json!({})).await;
    let acme_reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    // A chat's trace, scored at once (its spans may still be queued): three kinds of score.
    let (status, _, trace) = post_traced(
        &s,
        "/v1/chat/completions",
        &acme,
        &json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let path = format!("/v1/traces/{trace}/feedback");
    let (status, fb) = s.post(&path, &acme, &json!({"name": "helpful", "score": true, "author": "user-7"})).await;
    assert_eq!(status, 201, "{fb}");
    assert_eq!((fb["target"].as_str(), fb["trace_id"].as_str()), (Some("trace"), Some(trace.as_str())));
    assert_eq!((fb["score"].as_bool(), fb["author"].as_str()), (Some(true), Some("user-7")));
    assert!(fb["id"].as_str().unwrap().starts_with("fb_"));
    let (status, _) = s.post(&path, &acme, &json!({"name": "rating", "score": 4.5, "comment": "good"})).await;
    assert_eq!(status, 201);
    let (status, _) = s.post(&path, &acme, &json!({"score": "off-topic"})).await;
    assert_eq!(status, 201);
    let (status, list) = s.get(&path, &acme_reader).await;
    assert_eq!(status, 200);
    let scores: Vec<Value> = list["data"].as_array().unwrap().iter().map(|f| f["score"].clone()).collect();
    assert_eq!(scores, [json!(true), json!(4.5), json!("off-topic")]);
    assert_eq!(list["data"][2]["name"], "feedback", "the default name");
    let (_, detail) = s.get(&format!("/v1/traces/{trace}"), &acme).await;
    assert_eq!(detail["feedback"].as_array().unwrap().len(), 3, "the trace shows its feedback");

    // Bad input: clear 400s naming the field; nothing stored.
    for (body, param) in [
        (json!({"score": null}), None),
        (json!({"score": {"a": 1}}), None),
        (json!({"score": [1]}), None),
        (json!({"score": ""}), Some("score")),
        (json!({"score": "x".repeat(129)}), Some("score")),
        (json!({"score": 1e13}), Some("score")),
        (json!({"score": 1, "name": "has space"}), Some("name")),
        (json!({"score": 1, "name": ""}), Some("name")),
        (json!({"score": 1, "comment": "x".repeat(4001)}), Some("comment")),
        (json!({"score": 1, "author": "x".repeat(257)}), Some("author")),
        (json!({"score": 1, "extra": 1}), None),
        (json!("score"), None),
    ] {
        let (status, err) = s.post(&path, &acme, &body).await;
        assert_eq!(status, 400, "{body} -> {err}");
        if let Some(param) = param {
            assert_eq!(err["error"]["param"], param, "{err}");
        }
    }
    assert_eq!(s.get(&path, &acme).await.1["data"].as_array().unwrap().len(), 3);

    // Unknown and malformed ids, readers, and another tenant: 404, 403, 404.
    for id in ["0123456789abcdef0123456789abcdef", "nope", "../x"] {
        let (status, _) = s.post(&format!("/v1/traces/{id}/feedback"), &acme, &json!({"score": 1})).await;
        assert_eq!(status, 404, "{id}");
    }
    assert_eq!(s.post(&path, &acme_reader, &json!({"score": 1})).await.0, 403);
    assert_eq!(s.post(&path, &globex, &json!({"score": 1})).await.0, 404, "another tenant's trace is unknown");
    assert_eq!(s.get(&path, &globex).await.0, 404);
    assert_eq!(s.get(&format!("/v1/traces/{trace}"), &globex).await.0, 404);

    // A RAG answer: its id names its span; feedback on it shows on its trace.
    let (_, col) = s.post("/v1/collections", &acme, &json!({"name": "policies", "embedding_model": "embed"})).await;
    let col = col["id"].as_str().unwrap().to_owned();
    let docs = json!({"documents": [{"id": "refunds", "text": "Refunds are allowed within 30 days of delivery."}]});
    let (status, accepted) = s.post(&format!("/v1/collections/{col}/documents"), &acme, &docs).await;
    assert_eq!(status, 202);
    wait_job(&s, &acme, accepted["data"][0]["job_id"].as_str().unwrap()).await;
    up.reply_with(&["Refunds are allowed for 30 days [1]."]);
    let question = json!({"question": "How long do refunds last?", "model": "fast"});
    let (status, answer, answer_trace) =
        post_traced(&s, &format!("/v1/collections/{col}/answer"), &acme, &question).await;
    assert_eq!(status, 200, "{answer}");
    let answer_id = answer["id"].as_str().unwrap();
    assert!(answer_id.starts_with(&format!("ans_{answer_trace}")), "{answer_id}");
    let (status, fb) =
        s.post(&format!("/v1/answers/{answer_id}/feedback"), &acme, &json!({"name": "correct", "score": false})).await;
    assert_eq!(status, 201, "{fb}");
    assert_eq!(fb["trace_id"], answer_trace.as_str());
    let (_, detail) = s.get(&format!("/v1/traces/{answer_trace}"), &acme).await;
    assert_eq!(detail["feedback"][0]["target"], "answer");
    // A made-up answer id: a real trace, but a span that is not an answer.
    let root = detail["spans"][0]["span_id"].as_str().unwrap();
    let fake = format!("ans_{answer_trace}{root}");
    assert_eq!(s.post(&format!("/v1/answers/{fake}/feedback"), &acme, &json!({"score": 1})).await.0, 404);
    assert_eq!(s.post(&format!("/v1/answers/{answer_id}/feedback"), &globex, &json!({"score": 1})).await.0, 404);

    // An agent run, by its id.
    let id = agent(&s, &acme, json!({"name": "support", "model": "fast", "instructions": "Be brief."})).await;
    up.script([Scripted::Text("Within 30 days.".into())]);
    let body = json!({"agent_id": id, "messages": [{"role": "user", "content": "How long for refunds?"}]});
    let (status, run, run_trace) = post_traced(&s, "/v1/runs", &acme, &body).await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap();
    wait_run(&s, &acme, run_id, &["succeeded"]).await;
    s.trace(&run_trace, &acme, 3).await;
    let (status, fb) = s.post(&format!("/v1/runs/{run_id}/feedback"), &acme, &json!({"score": 0.2})).await;
    assert_eq!(status, 201, "{fb}");
    assert_eq!(fb["trace_id"], run_trace.as_str(), "a run's feedback joins its trace");
    assert_eq!(s.get(&format!("/v1/runs/{run_id}/feedback"), &acme).await.1["data"].as_array().unwrap().len(), 1);
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/feedback"), &globex, &json!({"score": 1})).await.0, 404);
    assert_eq!(s.post("/v1/runs/run_nope/feedback", &acme, &json!({"score": 1})).await.0, 404);

    // Evaluations: averages computed by the server; read per tenant.
    let item = |p: f64, r: f64, f: Option<f64>| {
        json!({"question": "q", "answer_id": null, "expected": ["refunds"], "cited": ["refunds"],
               "citation_precision": p, "citation_recall": r, "faithfulness": f, "error": null})
    };
    let eval = json!({"collection_id": col, "dataset": "qa.jsonl", "model": null, "judge": "fast",
                      "items": [item(1.0, 1.0, Some(0.5)), item(0.5, 0.0, None)]});
    let (status, stored) = s.post("/v1/evals", &acme, &eval).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!((stored["questions"].as_u64(), stored["citation_precision"].as_f64()), (Some(2), Some(0.75)));
    assert_eq!((stored["citation_recall"].as_f64(), stored["faithfulness"].as_f64()), (Some(0.5), Some(0.5)));
    let eval_id = stored["id"].as_str().unwrap();
    let (_, list) = s.get("/v1/evals", &acme_reader).await;
    assert_eq!(list["data"][0]["id"], eval_id);
    assert_eq!(s.get(&format!("/v1/evals/{eval_id}"), &acme).await.1["items"].as_array().unwrap().len(), 2);
    assert_eq!(s.get(&format!("/v1/evals/{eval_id}"), &globex).await.0, 404);
    assert!(s.get("/v1/evals", &globex).await.1["data"].as_array().unwrap().is_empty());
    let mut bad = eval.clone();
    bad["items"] = json!([item(1.5, 1.0, None)]);
    assert_eq!(s.post("/v1/evals", &acme, &bad).await.0, 400);
    bad["items"] = json!([]);
    assert_eq!(s.post("/v1/evals", &acme, &bad).await.0, 400);
    assert_eq!(s.post("/v1/evals", &acme_reader, &eval).await.0, 403);
}

#[tokio::test]
async fn feedback_on_traces_answers_and_runs_sqlite() {
    feedback_everywhere(false).await;
}

#[tokio::test]
async fn feedback_on_traces_answers_and_runs_postgres() {
    feedback_everywhere(true).await;
}
