//! Crash safety of agent runs with a real process: `cairn serve` is killed with SIGKILL while
//! runs are in a model stream, and while runs are in a webhook tool call. After a restart every
//! run ends `succeeded`, no finished model call is made again, and the receiver applied each
//! side effect exactly once: an interrupted call of an idempotent tool is made again with the
//! same idempotency key, which the receiver deduplicates. A run waiting for an approval when
//! the process dies still waits after the restart, and goes on once answered. An MCP call cut
//! by the crash (a tool not marked idempotent) asks a person before it is made again.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cairn_testkit::{Fault, Receiver, StandIn};
use common::{free_port, ready, spawn, ADMIN_KEY};
use serde_json::{json, Value};

const RUNS: usize = 4;

fn write_config(dir: &Path, url: &str, up: &StandIn) -> std::path::PathBuf {
    let rest = format!(
        r#"
[jobs]
lease_ms = 1500
poll_ms = 50
backoff_base_ms = 50
backoff_max_ms = 500
webhook_allowed_hosts = ["127.0.0.1"]
[providers.up]
kind = "openai"
base_url = "{}"
[models.fast]
targets = [{{ provider = "up", model = "up-model", timeouts = {{ first_token_ms = 20000, total_ms = 30000 }} }}]
"#,
        up.openai_url()
    );
    common::write_node_config(dir, url, &rest)
}

/// A fresh folder and the URL of a SQLite database in it.
fn sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    (dir, url)
}

/// Starts `cairn serve` with `config` on a free port (its log named `name`); the process and
/// its base URL, once ready.
async fn serve(dir: &Path, name: &str, config: &Path, client: &reqwest::Client) -> (std::process::Child, String) {
    let port = free_port();
    let child = spawn(dir, name, config, &["serve"], port);
    (child, ready(client, port).await)
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> Value {
    let resp = client.post(url).bearer_auth(ADMIN_KEY).json(body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).bearer_auth(ADMIN_KEY).send().await.unwrap().json().await.unwrap()
}

/// Polls run `run` on `base` until it is in `state` (fails if it ends otherwise, or stalls).
async fn wait_state(client: &reqwest::Client, base: &str, run: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = get(client, format!("{base}/v1/runs/{run}")).await;
        if r["state"] == state {
            return r;
        }
        let ended = ["succeeded", "failed", "cancelled", "expired"].contains(&r["state"].as_str().unwrap_or(""));
        assert!(!ended, "{run} ended otherwise: {r}");
        assert!(tokio::time::Instant::now() < deadline, "{run} is not {state}: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where a crash lands.
#[derive(Clone, Copy, Debug)]
enum KillDuring {
    /// The runs' first model calls are streaming.
    ModelStream,
    /// The runs' webhook calls are at the receiver.
    WebhookCall,
}

async fn runs_survive_a_kill(url: String, during: KillDuring) {
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let receiver = Receiver::start().await;
    let config = write_config(dir.path(), &url, &up);
    let client = reqwest::Client::new();
    let (mut server, base) = serve(dir.path(), "serve-1", &config, &client).await;

    // Unscripted, the stand-in calls the first tool it is offered, always with the same
    // arguments: the second call is a loop, so each run makes one webhook call and answers.
    let agent = post(
        &client,
        format!("{base}/v1/agents"),
        &json!({
            "name": "notifier", "model": "fast",
            "limits": {"max_repeats": 2},
            "tools": {"notify": {"type": "webhook", "idempotent": true,
                "webhook": {"url": receiver.url(), "parameters": {"type": "object"}}}},
        }),
    )
    .await;
    let agent = agent["id"].as_str().unwrap().to_owned();
    match during {
        // The streams start, then stall between chunks.
        KillDuring::ModelStream => up.push((0..RUNS).map(|_| Fault::ChunkDelay(Duration::from_secs(20)))),
        KillDuring::WebhookCall => receiver.hold(Duration::from_secs(20)),
    }
    let (mut runs, mut traces) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let body = json!({"agent_id": agent, "messages": [{"role": "user", "content": format!("notify {i}")}]});
        let resp = client.post(format!("{base}/v1/runs")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        traces.push(resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned());
        runs.push(resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    match during {
        KillDuring::ModelStream => {
            while up.request_count() < RUNS {
                assert!(tokio::time::Instant::now() < deadline, "the model calls did not start");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        KillDuring::WebhookCall => receiver.wait_for_deliveries(RUNS, Duration::from_secs(60)).await,
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let calls_before = up.request_count();
    receiver.hold(Duration::ZERO);

    // Restarted: every run ends `succeeded` once its lease runs out and a worker resumes it.
    let (mut restarted, base) = serve(dir.path(), "serve-2", &config, &client).await;
    for run in &runs {
        let r = wait_state(&client, &base, run, "succeeded").await;
        assert_eq!(r["usage"]["model_calls"], 3, "{during:?}: call, loop, final answer: {r}");
    }
    // Each run's side effect was applied once, under one key (run:step:call), however often
    // the call was delivered.
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for d in receiver.deliveries() {
        *per_key.entry(d.key).or_default() += 1;
    }
    assert_eq!(per_key.len(), RUNS, "{during:?}: one side effect per run: {per_key:?}");
    for run in &runs {
        assert!(per_key.keys().any(|k| k.starts_with(&format!("{run}:1:"))), "{run}: {per_key:?}");
    }
    assert!(receiver.effects().values().all(|n| *n == 1));
    let after_restart = up.request_count() - calls_before;
    match during {
        // The interrupted first calls are made again (they were never journaled), then the
        // loop call and the final answer: three per run.
        KillDuring::ModelStream => assert_eq!(after_restart, 3 * RUNS, "model calls after the restart"),
        // The first calls were journaled: only the loop call and the final answer remain, and
        // each interrupted webhook call was made again, with the same key.
        KillDuring::WebhookCall => {
            assert_eq!(after_restart, 2 * RUNS, "no journaled model call is made again");
            assert!(per_key.values().all(|n| *n == 2), "{per_key:?}");
        }
    }
    // The attempt that finished each run, made by the restarted process, is still a span of
    // the trace of the request that started the run (the job row keeps its traceparent).
    for (run, trace) in runs.iter().zip(&traces) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let found = loop {
            let list = get(&client, format!("{base}/v1/traces?run_id={run}")).await;
            if list["data"].as_array().is_some_and(|d| !d.is_empty()) {
                break list;
            }
            assert!(tokio::time::Instant::now() < deadline, "{run}: no trace");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ids: Vec<&str> = found["data"].as_array().unwrap().iter().filter_map(|t| t["trace_id"].as_str()).collect();
        assert_eq!(ids, [trace.as_str()], "{run}: one trace, the starting request's: {found}");
    }
    let _ = restarted.kill();
    let _ = restarted.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_model_stream_sqlite() {
    // The folder lives as long as the test: it holds the database.
    let (_dir, url) = sqlite();
    runs_survive_a_kill(url, KillDuring::ModelStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_webhook_call_sqlite() {
    // The folder lives as long as the test: it holds the database.
    let (_dir, url) = sqlite();
    runs_survive_a_kill(url, KillDuring::WebhookCall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_webhook_call_postgres() {
    runs_survive_a_kill(cairn_store::conformance::fresh_pg_database().await, KillDuring::WebhookCall).await;
}

/// A run waiting for a person survives the process: killed while it waits, restarted, the
/// approval is answered on the new process and the run goes on to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_survives_a_restart_sqlite() {
    let (dir, url) = sqlite();
    let up = StandIn::start().await;
    let receiver = Receiver::start().await;
    let config = write_config(dir.path(), &url, &up);
    let client = reqwest::Client::new();
    let (mut server, base) = serve(dir.path(), "serve-1", &config, &client).await;
    let agent = post(
        &client,
        format!("{base}/v1/agents"),
        &json!({
            "name": "careful", "model": "fast", "limits": {"max_repeats": 2},
            "tools": {"notify": {"type": "webhook", "approval": "always",
                "webhook": {"url": receiver.url(), "parameters": {"type": "object"}}}},
        }),
    )
    .await;
    let body = json!({"agent_id": agent["id"], "messages": [{"role": "user", "content": "notify"}]});
    let run = post(&client, format!("{base}/v1/runs"), &body).await["id"].as_str().unwrap().to_owned();
    let waiting = wait_state(&client, &base, &run, "requires_action").await;
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut restarted, base) = serve(dir.path(), "serve-2", &config, &client).await;
    let again = get(&client, format!("{base}/v1/runs/{run}")).await;
    assert_eq!((again["state"].as_str(), &again["pending"]), (Some("requires_action"), &waiting["pending"]));
    let call = waiting["pending"][0]["call_id"].clone();
    let approve = json!({"answers": [{"call_id": call, "decision": "approve"}]});
    post(&client, format!("{base}/v1/runs/{run}/approvals"), &approve).await;
    wait_state(&client, &base, &run, "succeeded").await;
    assert_eq!(receiver.deliveries().len(), 1, "approved after the restart, made once");
    let _ = restarted.kill();
    let _ = restarted.wait();
}

/// An MCP tool call cut by the crash: the tool is not marked idempotent, so after the restart
/// the run asks a person instead of calling it again; approved, it is made again and the run
/// ends. (A real MCP server, the official Python SDK's, over Streamable HTTP.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_call_cut_by_a_crash_asks_a_person_sqlite() {
    let (dir, url) = sqlite();
    let mcp = cairn_testkit::mcp::McpServer::http(None).await;
    let up = StandIn::start().await;
    let config = write_config(dir.path(), &url, &up);
    let client = reqwest::Client::new();
    let (mut server, base) = serve(dir.path(), "serve-1", &config, &client).await;
    post(&client, format!("{base}/v1/mcp_servers"), &json!({"name": "effects", "url": mcp.url})).await;
    let tools = json!({"slow": {"type": "mcp", "mcp": {"server": "effects", "tool": "slow", "timeout_ms": 60000}}});
    let agent =
        post(&client, format!("{base}/v1/agents"), &json!({"name": "m", "model": "fast", "tools": tools})).await;
    up.script([
        cairn_testkit::Scripted::Calls(vec![("slow".into(), json!({"key": "k1", "seconds": 30}))]),
        cairn_testkit::Scripted::Text("Done.".into()),
    ]);
    let body = json!({"agent_id": agent["id"], "messages": [{"role": "user", "content": "do it"}]});
    let run = post(&client, format!("{base}/v1/runs"), &body).await["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !mcp.records().contains(&"start k1".to_owned()) {
        assert!(tokio::time::Instant::now() < deadline, "the MCP call did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut restarted, base) = serve(dir.path(), "serve-2", &config, &client).await;
    let waiting = wait_state(&client, &base, &run, "requires_action").await;
    assert_eq!(waiting["pending"][0]["kind"], "unresolved", "{waiting}");
    assert_eq!(mcp.records().iter().filter(|r| *r == "start k1").count(), 1, "not called again unasked");
    // Approved: made again (quickly this time), and the run ends.
    let call = waiting["pending"][0]["call_id"].clone();
    let edit = json!({"answers": [{"call_id": call, "decision": "edit", "arguments": {"key": "k1", "seconds": 0}}]});
    post(&client, format!("{base}/v1/runs/{run}/approvals"), &edit).await;
    let done = wait_state(&client, &base, &run, "succeeded").await;
    assert_eq!(done["answer"], "Done.", "{done}");
    assert_eq!(mcp.records().iter().filter(|r| *r == "start k1").count(), 2, "{:?}", mcp.records());
    let _ = restarted.kill();
    let _ = restarted.wait();
}
