//! The span trees of Cairn's longer flows, read back through `/v1/traces`: an ingestion job
//! joins the trace of the request that enqueued it, a search shows its phases and the chunks
//! it returned, a RAG answer its retrieval, generation and citations, and an agent run its
//! model calls and tool calls. On SQLite and PostgreSQL.

use cairn_testkit::{Scripted, StandIn, TestServer};
use serde_json::{json, Value};

use crate::runs::{agent, server, wait_job, wait_run};
use crate::traces::flatten;

/// POSTs `body` to `path` as `key`; returns the status, the body and the trace id.
pub async fn post_traced(s: &TestServer, path: &str, key: &str, body: &Value) -> (u16, Value, String) {
    let resp = s.client.post(format!("{}{path}", s.base)).bearer_auth(key).json(body).send().await.unwrap();
    let trace = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null), trace)
}

/// The one span named `name`, and that there is exactly one.
fn one<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "{name} in {:#?}", spans.iter().map(|s| &s["name"]).collect::<Vec<_>>());
    found[0]
}

/// The names of the direct children of `span`.
fn children(span: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        span["children"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

async fn flows(postgres: bool) {
    let up = StandIn::start().await;
    let s = server(&up, postgres).await;
    let acme = s.key("acme", "member", json!({})).await;
    let (_, col) = s.post("/v1/collections", &acme, &json!({"name": "policies", "embedding_model": "embed"})).await;
    let col = col["id"].as_str().unwrap().to_owned();

    // Ingestion: the job's attempt is a child of the request that enqueued it.
    let docs = json!({"documents": [{"id": "refunds",
        "text": "Refunds are allowed within 30 days of delivery. Write to help@example.com."}]});
    let (status, accepted, upload_trace) =
        post_traced(&s, &format!("/v1/collections/{col}/documents"), &acme, &docs).await;
    assert_eq!(status, 202, "{accepted}");
    let job = accepted["data"][0]["job_id"].as_str().unwrap();
    wait_job(&s, &acme, job).await;
    let trace = s.trace(&upload_trace, &acme, 5).await;
    let spans = flatten(&trace["spans"]);
    let root = one(&spans, "POST /v1/collections/{id}/documents");
    let attempt = one(&spans, "job knowledge.ingest");
    assert_eq!(attempt["parent_id"], root["span_id"], "the job joins the enqueuing request's trace");
    assert_eq!((attempt["kind"].as_str(), attempt["status"].as_str()), (Some("consumer"), Some("ok")));
    assert_eq!(attempt["attributes"]["cairn.job.id"], job);
    assert_eq!(attempt["attributes"]["cairn.job.outcome"], "succeeded");
    assert_eq!(
        children(attempt),
        ["embeddings embed", "guard pii"],
        "the chunks' embeddings are the job's model call; the PII guard's verdict beside it"
    );
    let guard = one(&spans, "guard pii");
    assert_eq!(guard["attributes"]["cairn.guard.pii_policy"], "mask");
    assert_eq!(guard["attributes"]["cairn.guard.redactions"], 1, "{guard}");
    assert_eq!(guard["attributes"]["cairn.guard.redactions.email"], 1, "{guard}");
    let embed = one(&spans, "embeddings embed");
    assert_eq!(embed["attributes"]["gen_ai.operation.name"], "embeddings");
    assert_eq!(children(embed), ["embeddings embed-model"]);

    // A search: its query embedding and each phase under it, and the chunks it returned.
    let (status, hits, search_trace) =
        post_traced(&s, &format!("/v1/collections/{col}/search"), &acme, &json!({"query": "refunds delivery"})).await;
    assert_eq!(status, 200, "{hits}");
    let trace = s.trace(&search_trace, &acme, 7).await;
    let spans = flatten(&trace["spans"]);
    let retrieve = one(&spans, &format!("retrieve {col}"));
    assert_eq!(
        children(retrieve),
        ["embeddings embed", &format!("fusion {col}"), &format!("keyword {col}"), &format!("vector {col}")]
    );
    let chunk = hits["data"][0]["chunk_id"].as_u64().unwrap();
    assert_eq!(retrieve["attributes"]["cairn.search.chunks"], format!("{col}:{chunk}"));
    assert_eq!(retrieve["attributes"]["cairn.search.mode"], "hybrid");
    assert_eq!(one(&spans, &format!("keyword {col}"))["attributes"]["cairn.search.candidates"], 1);
    assert!(retrieve["attributes"].get("cairn.search.texts").is_none(), "no text under metadata capture");

    // A RAG answer: retrieval, then generation, then its citations.
    up.reply_with(&["Refunds are allowed for 30 days [1]."]);
    let question = json!({"question": "How long do refunds last?", "model": "fast"});
    let (status, answer, answer_trace) =
        post_traced(&s, &format!("/v1/collections/{col}/answer"), &acme, &question).await;
    assert_eq!(status, 200, "{answer}");
    let trace = s.trace(&answer_trace, &acme, 9).await;
    let spans = flatten(&trace["spans"]);
    let rag = one(&spans, &format!("answer {col}"));
    assert_eq!(children(rag), ["chat fast", &format!("retrieve {col}")]);
    assert_eq!(rag["attributes"]["gen_ai.operation.name"], "rag");
    assert_eq!(rag["attributes"]["cairn.rag.citations"], format!("[1] {col}:{chunk}"));
    assert_eq!(rag["attributes"]["cairn.rag.found"], true);
    assert!(rag["attributes"].get("gen_ai.output.messages").is_none());
    assert_eq!(children(one(&spans, "chat fast")), ["chat up-model"]);

    // An agent run with a tool call: the run's job, the run, its model calls and its tool call
    // (whose search nests under it).
    let id = agent(
        &s,
        &acme,
        json!({
            "name": "support", "model": "fast", "instructions": "Answer from the policies.",
            "tools": {"search": {"type": "knowledge_search", "knowledge_search": {"collections": [col]}}},
        }),
    )
    .await;
    up.script([
        Scripted::Calls(vec![("search".into(), json!({"query": "refunds delivery"}))]),
        Scripted::Text("Within 30 days.".into()),
    ]);
    let body = json!({"agent_id": id, "messages": [{"role": "user", "content": "How long for refunds?"}]});
    let (status, run, run_trace) = post_traced(&s, "/v1/runs", &acme, &body).await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap();
    wait_run(&s, &acme, run_id, &["succeeded"]).await;
    let trace = s.trace(&run_trace, &acme, 12).await;
    assert_eq!(trace["trace"]["run_id"], run_id);
    let spans = flatten(&trace["spans"]);
    let root = one(&spans, "POST /v1/runs");
    let job = one(&spans, "job agent.run");
    assert_eq!(job["parent_id"], root["span_id"]);
    let invoke = one(&spans, &format!("invoke_agent {id}"));
    assert_eq!(invoke["parent_id"], job["span_id"]);
    assert_eq!(invoke["attributes"]["gen_ai.operation.name"], "invoke_agent");
    assert_eq!(invoke["attributes"]["cairn.run.id"], run_id);
    assert_eq!(children(invoke), ["chat fast", "chat fast", "execute_tool search"]);
    let tool = one(&spans, "execute_tool search");
    assert_eq!(tool["attributes"]["gen_ai.tool.name"], "search");
    assert_eq!(tool["status"], "ok");
    assert_eq!(children(tool), [format!("retrieve {col}")]);
    // Found by its run.
    let (_, list) = s.get(&format!("/v1/traces?run_id={run_id}"), &acme).await;
    assert_eq!(list["data"][0]["trace_id"], run_trace.as_str(), "{list}");

    // The metrics count what the traces show.
    let metrics = s.metrics().await;
    for line in [
        "cairn_agent_runs_total{state=\"succeeded\"} 1",
        "cairn_agent_tool_calls_total{outcome=\"ok\"} 1",
        "cairn_knowledge_search_seconds_count{mode=\"hybrid\"} 3",
        "cairn_spans_dropped_total 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains("cairn_tenant_cost_usd_total{tenant=\"acme\",model=\"fast\"}"), "{metrics}");
    assert!(metrics.contains("cairn_model_output_tokens_per_second_count{model=\"fast\"}"), "{metrics}");
}

#[tokio::test]
async fn ingestion_search_answers_and_runs_are_span_trees_sqlite() {
    flows(false).await;
}

#[tokio::test]
async fn ingestion_search_answers_and_runs_are_span_trees_postgres() {
    flows(true).await;
}
