//! Agent runs through the HTTP API, against a stand-in model that scripts tool calls: a run
//! that searches a collection, asks a person before a side effect and answers; client tools;
//! bad arguments and unknown tools read by the model; caps that end runs gracefully; busy
//! threads; the resumable event stream; cancellation; tenants kept apart. On SQLite and
//! PostgreSQL.

use std::time::Duration;

use cairn_testkit::{Receiver, Scripted, StandIn, TestServer};
use serde_json::{json, Value};

/// The stand-in config plus fast job polling and the loopback on the webhook allow-list.
pub fn config(up: &StandIn) -> String {
    format!(
        "{}\n[jobs]\npoll_ms = 20\nbackoff_base_ms = 20\nbackoff_max_ms = 200\nwebhook_allowed_hosts = [\"127.0.0.1\"]\n",
        crate::config(up, up)
    )
}

/// A server on SQLite, or on a fresh PostgreSQL database.
pub async fn server(up: &StandIn, postgres: bool) -> TestServer {
    let url = if postgres { Some(cairn_store::conformance::fresh_pg_database().await) } else { None };
    TestServer::start_with(&config(up), url).await
}

/// Polls run `id` until its state is one of `states` (bounded).
pub async fn wait_run(s: &TestServer, key: &str, id: &str, states: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, run) = s.get(&format!("/v1/runs/{id}"), key).await;
        assert_eq!(status, 200, "{run}");
        if states.iter().any(|st| run["state"] == *st) {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "run stuck: {run}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls job `id` until it succeeded (bounded).
pub async fn wait_job(s: &TestServer, key: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.get(&format!("/v1/jobs/{id}"), key).await.1["state"] != "succeeded" {
        assert!(tokio::time::Instant::now() < deadline, "job {id} stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kinds of run `id`'s journal, in order.
pub async fn kinds(s: &TestServer, key: &str, id: &str) -> Vec<String> {
    let (status, page) = s.get(&format!("/v1/runs/{id}/steps?limit=1000"), key).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().iter().map(|st| st["kind"].as_str().unwrap().to_owned()).collect()
}

/// Creates agent `spec` for `key`'s tenant; returns its id.
pub async fn agent(s: &TestServer, key: &str, spec: Value) -> String {
    let (status, a) = s.post("/v1/agents", key, &spec).await;
    assert_eq!(status, 201, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// Starts a one-off run of `agent` on `input`; returns its id.
pub async fn start(s: &TestServer, key: &str, agent: &str, input: &str) -> String {
    let (status, run) =
        s.post("/v1/runs", key, &json!({"agent_id": agent, "messages": [{"role": "user", "content": input}]})).await;
    assert_eq!((status, run["state"].as_str()), (202, Some("queued")), "{run}");
    run["id"].as_str().unwrap().to_owned()
}

async fn searches_asks_and_answers(postgres: bool) {
    let up = StandIn::start().await;
    let s = server(&up, postgres).await;
    let receiver = Receiver::start().await;
    let acme = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    // A collection with the refund policy, searched by keyword.
    let (_, col) = s.post("/v1/collections", &acme, &json!({"name": "policies", "embedding_model": "embed"})).await;
    let col = col["id"].as_str().unwrap().to_owned();
    let docs = json!({"documents": [{"id": "refunds", "text": "Refunds are allowed within 30 days of delivery."}]});
    let (status, accepted) = s.post(&format!("/v1/collections/{col}/documents"), &acme, &docs).await;
    assert_eq!(status, 202, "{accepted}");
    wait_job(&s, &acme, accepted["data"][0]["job_id"].as_str().unwrap()).await;

    let id = agent(
        &s,
        &acme,
        json!({
            "name": "support", "model": "fast", "instructions": "Answer from the policies.",
            "tools": {
                "search": {"type": "knowledge_search", "knowledge_search": {"collections": [col]}},
                "refund": {
                    "type": "webhook", "approval": "always",
                    "webhook": {"url": receiver.url(), "parameters": {
                        "type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}},
                },
            },
        }),
    )
    .await;
    let (_, thread) = s.post("/v1/threads", &acme, &json!({})).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    up.script([
        Scripted::Calls(vec![("search".into(), json!({"query": "refunds delivery"}))]),
        Scripted::Calls(vec![("refund".into(), json!({"order": 7}))]),
        Scripted::Text("Refunded order 7.".into()),
    ]);
    let body =
        json!({"agent_id": id, "thread_id": thread, "messages": [{"role": "user", "content": "Refund order 7"}]});
    let (status, run) = s.post("/v1/runs", &acme, &body).await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap().to_owned();

    // Another tenant cannot see or drive it, nor start runs of the agent; a reader cannot approve.
    assert_eq!(s.get(&format!("/v1/runs/{run_id}"), &globex).await.0, 404);
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/cancel"), &globex, &json!({})).await.0, 404);
    let (status, err) =
        s.post("/v1/runs", &globex, &json!({"agent_id": id, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(status, 404, "{err}");
    let (status, _) = s.post("/v1/runs", &globex, &json!({"agent_id": id, "thread_id": thread})).await;
    assert_eq!(status, 404, "another tenant's agent and thread are as good as missing");

    // The search ran without asking; the refund waits for a person.
    let waiting = wait_run(&s, &acme, &run_id, &["requires_action"]).await;
    let pending = waiting["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{waiting}");
    assert_eq!((pending[0]["tool"].as_str(), pending[0]["kind"].as_str()), (Some("refund"), Some("approval")));
    assert!(receiver.deliveries().is_empty(), "nothing happens before the approval");
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
    let searched = chats[1].clone();
    let tool_message = searched["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").cloned().unwrap();
    assert!(tool_message["content"].as_str().unwrap().contains("within 30 days"), "{tool_message}");
    assert_eq!(searched["messages"][0]["content"], "Answer from the policies.");

    let call_id = pending[0]["call_id"].as_str().unwrap().to_owned();
    let approve = json!({"answers": [{"call_id": call_id, "decision": "approve"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/approvals"), &reader, &approve).await.0, 403);
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/approvals"), &globex, &approve).await.0, 404);
    let wrong = json!({"answers": [{"call_id": "call_99", "decision": "approve"}]});
    let (status, err) = s.post(&format!("/v1/runs/{run_id}/approvals"), &acme, &wrong).await;
    assert_eq!(status, 400, "{err}");
    let outputs = json!({"outputs": [{"call_id": call_id, "output": "done"}]});
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/tool_outputs"), &acme, &outputs).await.0, 400, "not a client tool");
    let bad_edit = json!({"answers": [{"call_id": call_id, "decision": "edit", "arguments": {"order": "seven"}}]});
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/approvals"), &acme, &bad_edit).await.0, 400);
    let resp = s
        .client
        .post(format!("{}/v1/runs/{run_id}/approvals", s.base))
        .bearer_auth(&acme)
        .json(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let approval_trace = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();

    let done = wait_run(&s, &acme, &run_id, &["succeeded", "failed"]).await;
    // The steps after the approval (the tool call, the answer) are in the approval's trace.
    let trace = s.trace(&approval_trace, &acme, 4).await;
    let spans = crate::traces::flatten(&trace["spans"]);
    let names: Vec<&str> = spans.iter().filter_map(|x| x["name"].as_str()).collect();
    assert!(names.contains(&"job agent.run") && names.contains(&"execute_tool refund"), "{names:?}");
    assert_eq!(
        (done["state"].as_str(), done["answer"].as_str()),
        (Some("succeeded"), Some("Refunded order 7.")),
        "{done}"
    );
    assert_eq!(done["usage"]["model_calls"], 3);
    assert_eq!(done["usage"]["tool_calls"], 2);
    assert!(done["usage"]["cost_usd"].as_f64().unwrap() > 0.0, "{done}");
    // Every model call of the run was charged to the key that started it, at the same cost.
    let (_, usage) = crate::usage(&s, &acme, "?model=fast").await;
    assert_eq!(usage["totals"]["requests"], 3, "{usage}");
    let charged = usage["totals"]["cost_usd"].as_f64().unwrap();
    assert!((charged - done["usage"]["cost_usd"].as_f64().unwrap()).abs() < 1e-9, "{usage} vs {done}");
    // The side effect happened once, keyed run:step:call, with the arguments as its body.
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].key, format!("{run_id}:2:{call_id}"));
    assert_eq!(deliveries[0].body, json!({"order": 7}));
    assert_eq!(
        kinds(&s, &acme, &run_id).await,
        [
            "started",
            "model_output",
            "tool_started",
            "tool_result",
            "model_output",
            "action_requested",
            "action_taken",
            "tool_started",
            "tool_result",
            "model_output",
            "ended"
        ]
    );
    let (_, steps) = s.get(&format!("/v1/runs/{run_id}/steps?after=6&limit=1"), &acme).await;
    assert_eq!(steps["data"][0]["data"]["by"].as_str().map(|b| b.starts_with("key_")), Some(true), "{steps}");
    // The thread holds the question and the answer, tagged with the run.
    let (_, messages) = s.get(&format!("/v1/threads/{thread}/messages"), &acme).await;
    let texts: Vec<(&str, &str)> = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["message"]["role"].as_str().unwrap(), m["message"]["content"].as_str().unwrap()))
        .collect();
    assert_eq!(texts, [("user", "Refund order 7"), ("assistant", "Refunded order 7.")]);
    // The approval is in the audit log, by the key that gave it; refused answers are not.
    let (_, audit) = s.get("/v1/audit?tenant=acme&action=run.approval", &s.admin_key).await;
    let entries = audit["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        (entries[0]["target"].as_str(), entries[0]["details"]["decision"].as_str()),
        (Some(run_id.as_str()), Some("approve"))
    );
    assert_eq!(entries[0]["details"]["tool"], "refund");
    assert_eq!(entries[0]["actor"], steps["data"][0]["data"]["by"]);
    // The run's answer is an AI decision: the model, the tools it used, the answer's hash.
    let (_, decided) = s.get("/v1/audit?tenant=acme&action=ai.decision", &s.admin_key).await;
    let run_entry = decided["data"].as_array().unwrap().iter().find(|e| e["target"] == run_id.as_str()).cloned();
    let run_entry = run_entry.unwrap_or_else(|| panic!("no decision for the run: {decided}"));
    assert_eq!(run_entry["details"]["state"], "succeeded");
    assert!(run_entry["details"]["tools"].as_array().unwrap().contains(&json!("refund")), "{run_entry}");
    assert_eq!(run_entry["details"]["output_sha256"], cairn_core::audit::sha256_hex("Refunded order 7."));
    // Answering a run that is not waiting is a conflict.
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/approvals"), &acme, &approve).await.0, 409);
    assert_eq!(s.post(&format!("/v1/runs/{run_id}/cancel"), &acme, &json!({})).await.0, 409);
}

#[tokio::test]
async fn a_run_searches_asks_a_person_and_answers_on_sqlite() {
    searches_asks_and_answers(false).await;
}

#[tokio::test]
async fn a_run_searches_asks_a_person_and_answers_on_postgres() {
    searches_asks_and_answers(true).await;
}
