//! Crash safety with real processes: a `cairn worker`, or `cairn serve` with its in-process
//! workers, is killed with SIGKILL while webhook jobs are in flight. Once the lease runs out
//! another process completes them. Every job must end exactly once in effect: the receiver
//! applies effects keyed by job id (the `Idempotency-Key`), and the test checks that none is
//! missing, none unexpected, and that each job finished once (one succeeded attempt), on
//! SQLite and on PostgreSQL.

use std::collections::BTreeSet;
mod common;

use std::path::Path;
use std::time::Duration;

use cairn_testkit::Receiver;
use common::{free_port, spawn, ADMIN_KEY};
use serde_json::{json, Value};

const JOBS: usize = 40;

/// A config for one node: short leases so a dead worker's jobs come back quickly.
fn write_config(dir: &Path, url: &str, workers_in_serve: bool) -> std::path::PathBuf {
    let path = dir.join(format!("cairn-{workers_in_serve}.toml"));
    let text = format!(
        r#"
[server]
shutdown_grace_secs = 1
[storage]
url = "{url}"
max_connections = 8
[jobs]
workers_in_serve = {workers_in_serve}
lease_ms = 1500
poll_ms = 50
default_concurrency = 8
backoff_base_ms = 50
backoff_max_ms = 500
webhook_allowed_hosts = ["127.0.0.1"]
[log]
level = "warn"
format = "json"
# A remote model, so no in-process model is loaded: this test is about jobs.
[providers.none]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[models.none]
targets = [{{ provider = "none", model = "m" }}]
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn ready(port: u16) -> Api {
        let client = reqwest::Client::new();
        Api { base: common::ready(&client, port).await, client }
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        let resp =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_KEY).json(body).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until every job succeeded; returns their ids.
    async fn wait_all_succeeded(&self) -> BTreeSet<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let page = self.get("/v1/jobs?state=succeeded&limit=500").await;
            let ids: BTreeSet<String> =
                page["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
            if ids.len() == JOBS {
                return ids;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {} of {JOBS} jobs succeeded", ids.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Enqueues the webhook jobs and returns their ids.
async fn enqueue(api: &Api, receiver: &Receiver) -> BTreeSet<String> {
    let jobs: Vec<Value> =
        (0..JOBS).map(|i| json!({"type": "webhook", "payload": {"url": receiver.url(), "body": {"n": i}}})).collect();
    let out = api.post("/v1/jobs/batch", &json!({ "jobs": jobs })).await;
    out["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

/// The checks every crash test ends with.
async fn assert_exactly_once(api: &Api, receiver: &Receiver, enqueued: &BTreeSet<String>) {
    let succeeded = api.wait_all_succeeded().await;
    assert_eq!(&succeeded, enqueued);
    let effects = receiver.effects();
    let applied: BTreeSet<String> = effects.keys().cloned().collect();
    assert_eq!(&applied, enqueued, "every job's effect applied, none unexpected");
    assert!(effects.values().all(|&n| n == 1));
    let deliveries = receiver.deliveries().len();
    assert!(deliveries > JOBS, "jobs in flight at the kill were delivered again ({deliveries} deliveries)");
    let mut expired = 0;
    for id in enqueued {
        let job = api.get(&format!("/v1/jobs/{id}")).await;
        let outcomes: Vec<&str> =
            job["attempts_history"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes.iter().filter(|o| **o == "succeeded").count(), 1, "{id} finished once: {outcomes:?}");
        expired += outcomes.iter().filter(|o| **o == "lease_expired").count();
    }
    assert!(expired >= 1, "the killed process's jobs were taken back after their lease ran out");
}

async fn a_killed_worker_loses_its_jobs_to_another(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.hold(Duration::from_millis(300));
    let config = write_config(dir.path(), &url, false);
    let port = free_port();
    let mut api_node = spawn(dir.path(), "serve", &config, &["serve"], port);
    let api = Api::ready(port).await;
    let mut first = spawn(dir.path(), "worker-1", &config, &["worker"], 0);
    let enqueued = enqueue(&api, &receiver).await;
    receiver.wait_for_deliveries(8, Duration::from_secs(30)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut second = spawn(dir.path(), "worker-2", &config, &["worker", "--metrics-bind", &metrics_addr], 0);
    assert_exactly_once(&api, &receiver, &enqueued).await;
    // The surviving worker took the dead one's jobs back, and says so in its metrics.
    let metrics = api.client.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap().text().await.unwrap();
    let expiries = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"cairn_job_lease_expiries_total{type="webhook"} "#))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(expiries.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(metrics.contains(r#"cairn_job_attempts_total{type="webhook",outcome="succeeded"}"#));
    for p in [&mut second, &mut api_node] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

async fn a_killed_server_resumes_its_jobs_after_restart(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.hold(Duration::from_millis(300));
    let config = write_config(dir.path(), &url, true);
    let port = free_port();
    let mut server = spawn(dir.path(), "serve-1", &config, &["serve"], port);
    let api = Api::ready(port).await;
    let enqueued = enqueue(&api, &receiver).await;
    receiver.wait_for_deliveries(8, Duration::from_secs(30)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let port = free_port();
    let mut restarted = spawn(dir.path(), "serve-2", &config, &["serve"], port);
    let api = Api::ready(port).await;
    assert_exactly_once(&api, &receiver, &enqueued).await;
    let _ = restarted.kill();
    let _ = restarted.wait();
}

fn sqlite_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    (dir, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_sqlite() {
    let (_dir, url) = sqlite_url();
    a_killed_worker_loses_its_jobs_to_another(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_postgres() {
    a_killed_worker_loses_its_jobs_to_another(cairn_store::conformance::fresh_pg_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_sqlite() {
    let (_dir, url) = sqlite_url();
    a_killed_server_resumes_its_jobs_after_restart(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_postgres() {
    a_killed_server_resumes_its_jobs_after_restart(cairn_store::conformance::fresh_pg_database().await).await;
}
