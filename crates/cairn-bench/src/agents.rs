//! `cairn-bench agents`: what the agent runtime adds to each step of a run. A real `cairn
//! serve` (SQLite) runs N concurrent runs of S steps against a stand-in model that answers
//! after a fixed latency: each step is a streamed model call that asks for one `http_request`
//! tool call to the benchmark's own endpoint, then the tool call; the last step answers.
//!
//! The stand-in and the tool endpoint note when each request arrives and when its answer is
//! sent, per run and step. A step's runtime overhead is everything between those: from the
//! model's answer to the tool request (read the stream, journal the output, check the
//! arguments, journal the start), plus from the tool's answer to the next model request
//! (journal the result, rebuild the prompt, pass the gateway). Model and tool time are
//! excluded by construction. Journal size is read back through the API: bytes per step for a
//! run of 10 steps and one of 100.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::load::{percentile, HttpClient};
use crate::{rss_mb, BENCH_KEY};

/// When each request of a run's step arrived and was answered.
#[derive(Default)]
struct Marks {
    /// (run tag, step) -> (arrived, answered), for model calls.
    model: HashMap<(String, usize), (Instant, Instant)>,
    /// (run tag, step) -> (arrived, answered), for tool calls.
    tool: HashMap<(String, usize), (Instant, Instant)>,
}

struct Upstream {
    latency: Duration,
    tool_base: String,
    marks: Mutex<Marks>,
}

/// The run's tag (its first user message, `run-I-S`) and its step count.
fn tag_of(body: &Value) -> Option<(String, usize)> {
    let first = body["messages"].as_array()?.iter().find(|m| m["role"] == "user")?;
    let tag = first["content"].as_str()?.to_owned();
    let steps = tag.rsplit('-').next()?.parse().ok()?;
    Some((tag, steps))
}

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]});
    format!("data: {c}\n\n")
}

async fn chat(State(up): State<Arc<Upstream>>, body: Bytes) -> Response {
    let arrived = Instant::now();
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some((tag, steps)) = tag_of(&body) else {
        return Response::builder().status(400).body(Body::from("no run tag")).unwrap_or_default();
    };
    let step = body["messages"].as_array().map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
    tokio::time::sleep(up.latency).await;
    let mut out = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    if step + 1 < steps {
        let args = json!({"url": format!("{}/tool?run={tag}&n={step}", up.tool_base)}).to_string();
        let call = json!({"index": 0, "id": format!("call_{step}"), "type": "function",
            "function": {"name": "lookup", "arguments": args}});
        out += &chunk(json!({"tool_calls": [call]}), Value::Null);
        out += &chunk(json!({}), json!("tool_calls"));
    } else {
        out += &chunk(json!({"content": "Done."}), Value::Null);
        out += &chunk(json!({}), json!("stop"));
    }
    let usage = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
        "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}});
    out += &format!("data: {usage}\n\ndata: [DONE]\n\n");
    up.marks.lock().model.insert((tag, step), (arrived, Instant::now()));
    Response::builder().header("content-type", "text/event-stream").body(Body::from(out)).unwrap_or_default()
}

async fn tool(State(up): State<Arc<Upstream>>, Query(q): Query<HashMap<String, String>>) -> &'static str {
    let arrived = Instant::now();
    let (Some(run), Some(n)) = (q.get("run"), q.get("n").and_then(|n| n.parse::<usize>().ok())) else {
        return "bad";
    };
    up.marks.lock().tool.insert((run.clone(), n), (arrived, Instant::now()));
    "ok"
}

async fn start_upstream(latency: Duration) -> Result<(SocketAddr, Arc<Upstream>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let up = Arc::new(Upstream { latency, tool_base: format!("http://{addr}"), marks: Mutex::default() });
    let app = Router::new().route("/v1/chat/completions", post(chat)).route("/tool", get(tool)).with_state(up.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, up))
}

/// One JSON call to Cairn.
async fn call(client: &HttpClient, method: &str, url: &str, body: Option<&Value>) -> Result<Value> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {BENCH_KEY}"))
        .body(Full::new(Bytes::from(body.map(Value::to_string).unwrap_or_default())))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("{method} {url}: {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Starts run `tag` and returns its id.
async fn start_run(client: &HttpClient, base: &str, agent: &str, tag: &str) -> Result<String> {
    let body = json!({"agent_id": agent, "messages": [{"role": "user", "content": tag}]});
    let run = call(client, "POST", &format!("{base}/v1/runs"), Some(&body)).await?;
    Ok(run["id"].as_str().context("no run id")?.to_owned())
}

/// Waits until run `id` ended; fails unless it succeeded.
async fn finish(client: &HttpClient, base: &str, id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let run = call(client, "GET", &format!("{base}/v1/runs/{id}"), None).await?;
        match run["state"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("failed" | "cancelled" | "expired") => bail!("run {id} ended {}: {}", run["state"], run["reason"]),
            _ if Instant::now() > deadline => bail!("run {id} did not end"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Journal bytes per step of run `id` (each entry's data as JSON), and of its last 10 entries.
async fn journal_bytes(client: &HttpClient, base: &str, id: &str) -> Result<(usize, f64, f64)> {
    let page = call(client, "GET", &format!("{base}/v1/runs/{id}/steps?limit=1000"), None).await?;
    let sizes: Vec<usize> =
        page["data"].as_array().context("no steps")?.iter().map(|s| s["data"].to_string().len()).collect();
    let total: usize = sizes.iter().sum();
    let tail = &sizes[sizes.len().saturating_sub(10)..];
    Ok((
        sizes.len(),
        total as f64 / sizes.len().max(1) as f64,
        tail.iter().sum::<usize>() as f64 / tail.len().max(1) as f64,
    ))
}

/// Journal bytes per step of a run of `steps` steps with `n` entries of `avg` bytes.
fn per_step_bytes(n: usize, avg: f64, steps: f64) -> f64 {
    n as f64 * avg / steps
}

/// Per-step overheads and start-to-first-call times, in ms, from the upstream's marks.
fn gaps(marks: &Marks, started: &[(String, Instant, String)], steps: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut per_step = Vec::new();
    let mut first_call = Vec::new();
    for (tag, at, _) in started {
        if let Some((arrived, _)) = marks.model.get(&(tag.clone(), 0)) {
            first_call.push(arrived.duration_since(*at).as_secs_f64() * 1e3);
        }
        for k in 0..steps.saturating_sub(1) {
            let (Some(m), Some(t), Some(next)) = (
                marks.model.get(&(tag.clone(), k)),
                marks.tool.get(&(tag.clone(), k)),
                marks.model.get(&(tag.clone(), k + 1)),
            ) else {
                bail!("marks missing for {tag} step {k}");
            };
            let (to_tool, to_model) = (t.0.duration_since(m.1), next.0.duration_since(t.1));
            if std::env::var_os("CAIRN_BENCH_DETAIL").is_some() {
                eprintln!(
                    "{tag} {k} to_tool {:.2} to_model {:.2}",
                    to_tool.as_secs_f64() * 1e3,
                    to_model.as_secs_f64() * 1e3
                );
            }
            per_step.push((to_tool + to_model).as_secs_f64() * 1e3);
        }
    }
    Ok((per_step, first_call))
}

/// The agent benchmark (see the module docs).
pub async fn run(cairn: PathBuf, runs: usize, steps: usize, latency_ms: u64, peer: Option<PathBuf>) -> Result<()> {
    let (addr, up) = start_upstream(Duration::from_millis(latency_ms)).await?;
    let dir = tempfile::tempdir()?;
    let extra = "[jobs]\nwebhook_allowed_hosts = [\"127.0.0.1\"]";
    let (server, port, _) = crate::start_cairn(&cairn, dir.path(), addr, extra).await?;
    let client = crate::load::client();
    let base = format!("http://127.0.0.1:{port}");
    let agent = call(
        &client,
        "POST",
        &format!("{base}/v1/agents"),
        Some(&json!({
            "name": "bench", "model": "bench", "instructions": "Look things up, then answer.",
            "limits": {"max_steps": 1000, "max_tool_calls": 10000, "max_repeats": 100},
            "tools": {"lookup": {"type": "http_request", "description": "Looks a thing up."}},
        })),
    )
    .await?;
    let agent = agent["id"].as_str().context("no agent id")?.to_owned();

    // Warm up: one run end to end.
    let warm = start_run(&client, &base, &agent, &format!("warm-{steps}")).await?;
    finish(&client, &base, &warm).await?;

    let began = Instant::now();
    let mut started = Vec::with_capacity(runs);
    for i in 0..runs {
        let tag = format!("run-{i}-{steps}");
        let at = Instant::now();
        started.push((tag.clone(), at, start_run(&client, &base, &agent, &tag).await?));
    }
    // Waiting reads nothing from Cairn until every run made its last model call, so the
    // measurement is not loaded by the benchmark's own polling.
    let deadline = Instant::now() + Duration::from_secs(600);
    while started.iter().any(|(tag, _, _)| !up.marks.lock().model.contains_key(&(tag.clone(), steps - 1))) {
        if Instant::now() > deadline {
            bail!("the runs did not reach their last step");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, _, id) in &started {
        finish(&client, &base, id).await?;
    }
    let wall = began.elapsed();
    let rss = rss_mb(server.0.id());

    // Overhead per step, and from the start request to the first model call.
    let (mut per_step, mut first_call) = gaps(&up.marks.lock(), &started, steps)?;
    per_step.sort_by(f64::total_cmp);
    first_call.sort_by(f64::total_cmp);

    // Journal size at 10 and 100 steps.
    let ten = start_run(&client, &base, &agent, "size-10").await?;
    let hundred = start_run(&client, &base, &agent, "size-100").await?;
    finish(&client, &base, &ten).await?;
    finish(&client, &base, &hundred).await?;
    let (n10, avg10, tail10) = journal_bytes(&client, &base, &ten).await?;
    let (n100, avg100, tail100) = journal_bytes(&client, &base, &hundred).await?;

    println!("## Agent runs (cairn-bench agents: {runs} concurrent runs x {steps} steps, model latency {latency_ms} ms, SQLite)\n");
    println!("| measure | value |\n|---|---|");
    println!("| runtime overhead per step, p50 | {:.2} ms |", percentile(&per_step, 0.50));
    println!("| runtime overhead per step, p99 | {:.2} ms |", percentile(&per_step, 0.99));
    println!("| runtime overhead per step, max | {:.2} ms |", per_step.last().copied().unwrap_or(f64::NAN));
    println!("| steps measured | {} |", per_step.len());
    println!(
        "| start request to first model call, p50 / p99 | {:.2} / {:.2} ms |",
        percentile(&first_call, 0.5),
        percentile(&first_call, 0.99)
    );
    println!(
        "| wall time, all runs | {:.2} s (ideal {:.2} s) |",
        wall.as_secs_f64(),
        steps as f64 * latency_ms as f64 / 1e3
    );
    println!("| Cairn resident memory after the runs | {rss:.1} MB |");
    println!(
        "| journal: run of 10 steps | {n10} entries, {:.0} bytes per step, {avg10:.0} bytes/entry (last 10 entries: {tail10:.0}) |",
        per_step_bytes(n10, avg10, 10.0)
    );
    println!(
        "| journal: run of 100 steps | {n100} entries, {:.0} bytes per step, {avg100:.0} bytes/entry (last 10 entries: {tail100:.0}) |",
        per_step_bytes(n100, avg100, 100.0)
    );
    drop(server);
    if let Some(python) = peer {
        let db = dir.path().join("langgraph.db");
        let peer = run_peer(&python, addr, runs, steps, &db, &up).await?;
        let cairn = Side {
            p50: percentile(&per_step, 0.50),
            p99: percentile(&per_step, 0.99),
            wall: wall.as_secs_f64(),
            bytes_10: per_step_bytes(n10, avg10, 10.0),
            bytes_100: per_step_bytes(n100, avg100, 100.0),
        };
        println!("\n## Side by side: Cairn and LangGraph {LANGGRAPH} with its SQLite checkpointer (same workload, same stand-in)\n");
        println!("| measure | Cairn | LangGraph + SQLite | LangGraph / Cairn |\n|---|---|---|---|");
        let row = |name: &str, unit: &str, c: f64, p: f64| {
            println!("| {name} | {c:.2} {unit} | {p:.2} {unit} | {:.1}x |", p / c);
        };
        row("runtime overhead per step, p50", "ms", cairn.p50, peer.p50);
        row("runtime overhead per step, p99", "ms", cairn.p99, peer.p99);
        row("wall time, all runs", "s", cairn.wall, peer.wall);
        row("stored bytes per step, run of 10 steps", "B", cairn.bytes_10, peer.bytes_10);
        row("stored bytes per step, run of 100 steps", "B", cairn.bytes_100, peer.bytes_100);
    }
    Ok(())
}

/// The LangGraph version the peer script is pinned to (`scripts/bench-agents.sh`).
const LANGGRAPH: &str = "1.2.24";

/// One runtime's figures in the side-by-side table.
struct Side {
    p50: f64,
    p99: f64,
    wall: f64,
    bytes_10: f64,
    bytes_100: f64,
}

/// Runs `bench/langgraph_agents.py` against the same stand-in: its steps are marked by the
/// same upstream, so its overhead per step is measured exactly as Cairn's.
async fn run_peer(
    python: &std::path::Path,
    addr: SocketAddr,
    runs: usize,
    steps: usize,
    db: &std::path::Path,
    up: &Upstream,
) -> Result<Side> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/langgraph_agents.py");
    let began = Instant::now();
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(["--upstream", &format!("http://{addr}"), "--runs", &runs.to_string(), "--steps", &steps.to_string()])
        .arg("--db")
        .arg(db)
        .output()
        .await
        .context("running the LangGraph peer")?;
    if !out.status.success() {
        bail!("the LangGraph peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sizes: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).context("the peer's sizes")?;
    let tags: Vec<(String, Instant, String)> =
        (0..runs).map(|i| (format!("peer-{i}-{steps}"), began, String::new())).collect();
    let (mut per_step, _) = gaps(&up.marks.lock(), &tags, steps)?;
    per_step.sort_by(f64::total_cmp);
    // The peer's wall time: from its first run's first model call to its last run's last one.
    let marks = up.marks.lock();
    let first = tags.iter().filter_map(|(t, _, _)| marks.model.get(&(t.clone(), 0)).map(|m| m.0)).min();
    let last = tags.iter().filter_map(|(t, _, _)| marks.model.get(&(t.clone(), steps - 1)).map(|m| m.1)).max();
    let wall = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => f64::NAN,
    };
    Ok(Side {
        p50: percentile(&per_step, 0.50),
        p99: percentile(&per_step, 0.99),
        wall,
        bytes_10: sizes["bytes_10"].as_f64().unwrap_or(f64::NAN),
        bytes_100: sizes["bytes_100"].as_f64().unwrap_or(f64::NAN),
    })
}
