//! Scale-out with real processes on one PostgreSQL: two `cairn serve` (searching inside the
//! database, rate limits in it) and two `cairn worker`. Documents are uploaded and searched
//! through both servers; one server and one worker are killed with SIGKILL while embeddings
//! are slow, mid-ingestion. Every document ends ingested exactly once (each sentence stored
//! once) and is found from both servers (the killed one restarted); a key whose budget covers
//! five calls admits at most five of forty concurrent calls split across the servers, and a
//! rate limit of six a minute holds across both. The same limits hold with the rate buckets in
//! a Redis of the test's own (`gateway.shared_limits = "redis"`); when that Redis dies, limited
//! keys get a 503 (never an unchecked call), `/readyz` names it, and both recover once it is
//! back.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use cairn_testkit::{Fault, StandIn};
use common::{free_port, ready, spawn, stored_markers, ADMIN_KEY};
use futures::future::join_all;
use serde_json::{json, Value};

const DOCS: usize = 12;
const SENTENCES: usize = 48;
/// One stand-in call costs $0.19 at these prices (as in the API's budget tests).
const PRICES: &str = "input_usd_per_mtok = 10000.0, output_usd_per_mtok = 20000.0";

/// The nodes' config on database `url`, with `extra` TOML at the end.
fn write_config(dir: &Path, url: &str, up: &StandIn, extra: &str) -> std::path::PathBuf {
    let rest = format!(
        r#"
[jobs]
workers_in_serve = false
lease_ms = 1500
poll_ms = 50
backoff_base_ms = 50
backoff_max_ms = 500
[providers.up]
kind = "openai"
base_url = "{base}"
[models.emb]
kind = "embedding"
targets = [{{ provider = "up", model = "up-embed", timeouts = {{ first_token_ms = 10000, total_ms = 20000 }} }}]
[models.fast]
targets = [{{ provider = "up", model = "up-model", {PRICES} }}]
{extra}
"#,
        base = up.openai_url()
    );
    common::write_node_config(dir, url, &rest)
}

/// A server that runs no jobs (the workers do), or a worker.
fn start(dir: &Path, name: &str, config: &Path, worker: bool) -> (Child, u16) {
    let port = free_port();
    let args: &[&str] = if worker { &["worker"] } else { &["serve"] };
    (spawn(dir, name, config, args, port), port)
}

async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, key: &str, body: &Value) -> (u16, Value) {
    let resp = client.request(method, url).bearer_auth(key).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(client: &reqwest::Client, url: String, key: &str, body: &Value) -> Value {
    let (status, v) = call(client, reqwest::Method::POST, url, key, body).await;
    assert!((200..300).contains(&status), "{status}: {v}");
    v
}

/// A document whose every sentence carries a marker no other sentence has.
fn text(doc: &str) -> String {
    (0..SENTENCES)
        .map(|i| format!("Marker {doc}s{i} belongs to one sentence of this document."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until every job succeeded (read through `base`).
async fn all_succeeded(client: &reqwest::Client, base: &str, jobs: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    for job in jobs {
        loop {
            let (_, j) =
                call(client, reqwest::Method::GET, format!("{base}/v1/jobs/{job}"), ADMIN_KEY, &Value::Null).await;
            if j["state"] == "succeeded" {
                break;
            }
            assert_ne!(j["state"], "dead", "{j}");
            assert!(tokio::time::Instant::now() < deadline, "{job} did not complete: {j}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Fires 40 chat calls at once, alternating between `bases`; returns how many were admitted.
async fn race(client: &reqwest::Client, bases: &[&str], key: &str, refusal: &str) -> usize {
    let body = json!({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "Say hello"}]});
    let calls = (0..40).map(|i| {
        let (url, body) = (format!("{}/v1/chat/completions", bases[i % bases.len()]), body.clone());
        async move {
            let (status, v) = call(client, reqwest::Method::POST, url, key, &body).await;
            if status == 429 {
                assert!(v.to_string().contains(refusal), "{v}");
            } else {
                assert_eq!(status, 200, "{v}");
            }
            status == 200
        }
    });
    join_all(calls).await.into_iter().filter(|ok| *ok).count()
}

async fn key(client: &reqwest::Client, base: &str, limits: Value) -> String {
    let _ = call(client, reqwest::Method::POST, format!("{base}/v1/admin/tenants"), ADMIN_KEY, &json!({"id": "acme"}))
        .await;
    let body = json!({"tenant_id": "acme", "role": "member", "name": "k", "limits": limits});
    post(client, format!("{base}/v1/admin/keys"), ADMIN_KEY, &body).await["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_and_two_workers_on_postgres_survive_sigkill() {
    let url = cairn_store::conformance::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let config = write_config(dir.path(), &url, &up, "");
    let client = reqwest::Client::new();
    let (mut a, a_port) = start(dir.path(), "serve-a", &config, false);
    let a_base = ready(&client, a_port).await;
    let (mut b, b_port) = start(dir.path(), "serve-b", &config, false);
    let b_base = ready(&client, b_port).await;
    let (mut w1, _) = start(dir.path(), "worker-1", &config, true);
    let (_, node) = call(&client, reqwest::Method::GET, format!("{b_base}/readyz"), "", &Value::Null).await;
    assert_eq!(
        (node["node"]["retrieval"].as_str(), node["node"]["rate_limits"].as_str()),
        (Some("database"), Some("database")),
        "{node}"
    );

    let col = post(
        &client,
        format!("{a_base}/v1/collections"),
        ADMIN_KEY,
        &json!({"name": "spread", "embedding_model": "emb", "chunk_max_tokens": 16, "chunk_overlap_tokens": 0}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Slow embeddings, so the kills land mid-document.
    up.push((0..4000).map(|_| Fault::SlowFirstToken(Duration::from_millis(250))));
    let before = up.request_count();
    let mut jobs = Vec::new();
    for d in 0..DOCS {
        let base = if d % 2 == 0 { &a_base } else { &b_base };
        let doc = format!("d{d}");
        let accepted = post(
            &client,
            format!("{base}/v1/collections/{col}/documents"),
            ADMIN_KEY,
            &json!({"documents": [{"id": doc, "text": text(&doc)}]}),
        )
        .await;
        jobs.push(accepted["data"][0]["job_id"].as_str().unwrap().to_owned());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while up.request_count() < before + 4 {
        assert!(tokio::time::Instant::now() < deadline, "ingestion did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The second worker joins once the first holds jobs (a worker starting late under load
    // could otherwise find none left to hold when it is killed).
    let (mut w2, _) = start(dir.path(), "worker-2", &config, true);
    // Searches meanwhile, through both servers: answered, whatever is indexed yet.
    for base in [&a_base, &b_base] {
        let (status, hits) = call(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/collections/{col}/search"),
            ADMIN_KEY,
            &json!({"query": "d0s1"}),
        )
        .await;
        assert_eq!(status, 200, "{hits}");
    }
    b.kill().unwrap();
    b.wait().unwrap();
    w1.kill().unwrap();
    w1.wait().unwrap();

    // The other worker takes over the killed one's jobs once their leases lapse.
    let mut unfinished = 0;
    for job in &jobs {
        let (_, j) =
            call(&client, reqwest::Method::GET, format!("{a_base}/v1/jobs/{job}"), ADMIN_KEY, &Value::Null).await;
        unfinished += usize::from(j["state"] != "succeeded");
    }
    assert!(unfinished > 0, "the kills landed mid-work");
    all_succeeded(&client, &a_base, &jobs).await;
    let mut retried = 0;
    for job in &jobs {
        let (_, j) =
            call(&client, reqwest::Method::GET, format!("{a_base}/v1/jobs/{job}"), ADMIN_KEY, &Value::Null).await;
        retried += usize::from(j["attempts"].as_u64().unwrap_or(0) > 1);
    }
    assert!(retried > 0, "a job the killed worker held was run again by the other");
    let store = cairn_store::open(&url, 2).await.unwrap();
    for d in 0..DOCS {
        let doc = format!("d{d}");
        let want: BTreeMap<String, usize> = (0..SENTENCES).map(|i| (format!("{doc}s{i}"), 1)).collect();
        assert_eq!(
            stored_markers(&*store, &col, &doc, &format!("{doc}s")).await,
            want,
            "{doc}: every sentence exactly once"
        );
    }

    // Searchable from both servers (the killed one restarted).
    let (mut b2, b2_port) = start(dir.path(), "serve-b2", &config, false);
    let b2_base = ready(&client, b2_port).await;
    for d in 0..DOCS {
        for base in [&a_base, &b2_base] {
            let marker = format!("d{d}s7");
            let hits = post(
                &client,
                format!("{base}/v1/collections/{col}/search"),
                ADMIN_KEY,
                &json!({"query": marker, "mode": "keyword", "top_k": 3}),
            )
            .await;
            let found: Vec<&str> =
                hits["data"].as_array().unwrap().iter().filter_map(|h| h["document_id"].as_str()).collect();
            assert_eq!(found, [format!("d{d}")], "{marker} through {base}: {hits}");
        }
    }

    limits_hold_across(&client, &[&a_base, &b2_base]).await;

    for p in [&mut a, &mut b2, &mut w2] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// One budget and one rate limit across the servers at `bases`: a budget of five calls admits
/// at most five of forty concurrent calls, six requests a minute admit six (plus what refilled
/// while the race ran).
async fn limits_hold_across(client: &reqwest::Client, bases: &[&str]) {
    let budget = key(client, bases[0], json!({"monthly_budget_usd": 0.95})).await;
    let admitted = race(client, bases, &budget, "budget_exceeded").await;
    assert!((1..=5).contains(&admitted), "{admitted} calls admitted on a budget of five");
    let limited = key(client, bases[0], json!({"requests_per_minute": 6})).await;
    let started = std::time::Instant::now();
    let admitted = race(client, bases, &limited, "rate_limit").await;
    let refilled = (started.elapsed().as_secs_f64() / 10.0).floor() as usize;
    assert!(admitted >= 6 && admitted <= 6 + refilled, "{admitted} calls admitted at six a minute over two servers");
}

/// A Redis of the test's own on `port` (so that it can be killed), from Debian's package.
fn own_redis(port: u16) -> Child {
    std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server on PATH (scripts/redis.sh installs it)")
}

/// `/readyz` on `base`: its status and body.
/// The log at `path` once it holds `line` (within 10 s).
async fn logged(path: &Path, line: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let logs = std::fs::read_to_string(path).unwrap_or_default();
        if logs.contains(line) || tokio::time::Instant::now() > deadline {
            return logs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(client: &reqwest::Client, base: &str) -> (u16, Value) {
    call(client, reqwest::Method::GET, format!("{base}/readyz"), "", &Value::Null).await
}

/// Polls `/readyz` on `base` until it answers `status`.
async fn until_ready_is(client: &reqwest::Client, base: &str, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (got, body) = readyz(client, base).await;
        if got == status {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{base}/readyz stayed {got}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_rate_limits_through_redis() {
    let url = cairn_store::conformance::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let redis_port = free_port();
    let mut redis = own_redis(redis_port);
    let extra = format!("[gateway]\nshared_limits = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}/0\"\n");
    let config = write_config(dir.path(), &url, &up, &extra);
    let client = reqwest::Client::new();
    let (mut a, a_port) = start(dir.path(), "serve-a", &config, false);
    let a_base = ready(&client, a_port).await;
    let (mut b, b_port) = start(dir.path(), "serve-b", &config, false);
    let b_base = ready(&client, b_port).await;
    let (_, node) = readyz(&client, &b_base).await;
    assert_eq!(node["node"]["rate_limits"], "redis", "{node}");

    limits_hold_across(&client, &[&a_base, &b_base]).await;

    // Redis dies: a limited key is refused as unavailable, never let through unchecked; a key
    // without rate limits needs no Redis and is served; readiness names what is missing.
    let limited = key(&client, &a_base, json!({"requests_per_minute": 1000})).await;
    redis.kill().unwrap();
    redis.wait().unwrap();
    let body = json!({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "Say hello"}]});
    for base in [&a_base, &b_base] {
        let chat = format!("{base}/v1/chat/completions");
        let (status, v) = call(&client, reqwest::Method::POST, chat.clone(), &limited, &body).await;
        assert_eq!(status, 503, "{v}");
        assert!(v["error"]["message"].as_str().unwrap_or("").contains("rate limits are unreachable"), "{v}");
        let (status, v) = call(&client, reqwest::Method::POST, chat, ADMIN_KEY, &body).await;
        assert_eq!(status, 200, "{v}");
        let unready = until_ready_is(&client, base, 503).await;
        assert_eq!(unready["reason"], "rate limit store unreachable", "{unready}");
    }
    // An outage is logged, not once per call.
    let refused =
        (0..40).map(|_| call(&client, reqwest::Method::POST, format!("{a_base}/v1/chat/completions"), &limited, &body));
    assert!(join_all(refused).await.iter().all(|(status, _)| *status == 503));
    // The log is written from a thread of its own: wait for the warning to land.
    let warning = "the shared rate limits did not answer";
    let logs = logged(&dir.path().join("serve-a.log"), warning).await;
    assert!(!logs.contains(&limited), "a key's secret reached the log");
    let warned = logs.matches(warning).count();
    assert!((1..=2).contains(&warned), "{warned} warnings for 41 refused calls");

    // Back: both servers reconnect by themselves.
    let mut redis = own_redis(redis_port);
    for base in [&a_base, &b_base] {
        until_ready_is(&client, base, 200).await;
        let chat = format!("{base}/v1/chat/completions");
        let (status, v) = call(&client, reqwest::Method::POST, chat, &limited, &body).await;
        assert_eq!(status, 200, "{v}");
    }

    for p in [&mut a, &mut b, &mut redis] {
        let _ = p.kill();
        let _ = p.wait();
    }
}
