//! A real OTLP receiver for tests: Arize Phoenix (PyPI `arize-phoenix`, installed by
//! `scripts/phoenix-env.sh`; `CAIRN_TEST_PHOENIX` names the Python of its environment). It
//! stores the spans it receives in SQLite and answers span queries over its REST API.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// A Phoenix server on loopback, killed when dropped.
pub struct Phoenix {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Phoenix {
    /// Starts one over a fresh working folder; returns once it answers its health check.
    pub async fn start() -> Self {
        let python = std::env::var("CAIRN_TEST_PHOENIX")
            .unwrap_or_else(|_| panic!("CAIRN_TEST_PHOENIX is not set: run the suite with scripts/test.sh"));
        let bin = PathBuf::from(&python).with_file_name("phoenix");
        let dir = tempfile::tempdir().expect("temp dir");
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, grpc) = (free(), free());
        let log = std::fs::File::create(dir.path().join("phoenix.log")).expect("log file");
        let child = tokio::process::Command::new(bin)
            .arg("serve")
            .env("PHOENIX_WORKING_DIR", dir.path())
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc.to_string())
            // Offline: no usage reporting to the internet.
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start Phoenix");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let up = client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            let log = std::fs::read_to_string(dir.path().join("phoenix.log")).unwrap_or_default();
            assert!(tokio::time::Instant::now() < deadline, "Phoenix did not start:\n{log}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { base, client, _child: child, _dir: dir }
    }

    /// Its OTLP/HTTP traces endpoint.
    pub fn otlp_endpoint(&self) -> String {
        format!("{}/v1/traces", self.base)
    }

    /// The spans of `trace_id` in `project` once at least `n` arrived (fails after a minute).
    pub async fn spans(&self, project: &str, trace_id: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}/v1/projects/{project}/spans?trace_id={trace_id}&limit=1000", self.base);
            let resp = self.client.get(url).send().await.expect("query Phoenix");
            // A project appears with its first span; until then Phoenix answers 404.
            let spans = if resp.status().is_success() {
                let body: Value = resp.json().await.expect("Phoenix answers JSON");
                body["data"].as_array().cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            if spans.len() >= n {
                return spans;
            }
            assert!(tokio::time::Instant::now() < deadline, "Phoenix holds {} of {n} spans: {spans:?}", spans.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
