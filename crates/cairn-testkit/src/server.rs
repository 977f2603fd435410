//! A real Cairn server for tests: the full app on a loopback port, over a temporary SQLite
//! file (or a fresh PostgreSQL database), with a reqwest client and the bootstrap admin key.

use std::time::Duration;

use cairn_core::config::Config;
use serde_json::Value;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

/// A running Cairn server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bootstrap admin key.
    pub admin_key: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// Cancel to start a graceful shutdown.
    pub shutdown: CancellationToken,
    /// The gateway service, to flush usage records before asserting on them.
    pub gateway: std::sync::Arc<cairn_gateway::GatewayService>,
    /// The trace service, to write queued spans and run retention passes in tests.
    pub traces: std::sync::Arc<cairn_telemetry::TraceService>,
    /// The server's storage URL (SQLite file or PostgreSQL database).
    pub database_url: String,
    /// Resolves when the server has shut down.
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts Cairn with `config_toml` over SQLite in a temporary folder.
    pub async fn start(config_toml: &str) -> TestServer {
        Self::start_with(config_toml, None).await
    }

    /// Starts Cairn with `config_toml`, on `database_url` when given (else temporary SQLite).
    pub async fn start_with(config_toml: &str, database_url: Option<String>) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::from_toml(config_toml).expect("valid test config");
        config.storage.data_dir = dir.path().to_path_buf();
        config.gateway.usage_flush_ms = 20;
        config.server.shutdown_grace_secs = config.server.shutdown_grace_secs.min(5);
        if let Some(url) = database_url {
            config.storage.url = url;
        }
        let database_url = config.storage.database_url();
        // The owner key is derived from the database, so a second node on the same database
        // (scale-out tests) shares it.
        let digest = sha2::Sha256::digest(database_url.as_bytes());
        let admin_key = format!("sk-cairn-test{}", hex::encode(&digest[..20]));
        let app = cairn::compose::app(config, Some(&admin_key)).await.expect("app builds");
        let gateway = app.state.gateway.clone();
        let traces = app.state.traces.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        let handle = tokio::spawn(cairn_api::serve(listener, app, async move { signal.cancelled().await }));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        TestServer { base, admin_key, client, shutdown, gateway, traces, database_url, handle, _dir: dir }
    }

    /// Writes every usage record and span queued so far.
    pub async fn flush(&self) {
        self.gateway.flush_usage().await;
        self.traces.flush().await;
    }

    /// The Prometheus text of `/metrics`, read with the owner key.
    pub async fn metrics(&self) -> String {
        let resp = self.client.get(format!("{}/metrics", self.base)).bearer_auth(&self.admin_key).send().await;
        let resp = resp.expect("request");
        assert_eq!(resp.status(), 200, "reading /metrics as the owner");
        resp.text().await.expect("metrics text")
    }

    /// Reads trace `id` as `key` once it holds at least `spans` spans (a streamed response's
    /// root span is queued only after its body ends, which the client may see first).
    pub async fn trace(&self, id: &str, key: &str, spans: i64) -> Value {
        for _ in 0..500 {
            self.flush().await;
            let (status, body) = self.get(&format!("/v1/traces/{id}"), key).await;
            if status == 200 && body["trace"]["span_count"].as_i64() >= Some(spans) {
                return body;
            }
            tokio::task::yield_now().await;
        }
        panic!("trace {id} never held {spans} spans");
    }

    /// POSTs a chat request and returns the raw response (for headers and streams).
    pub async fn send_chat(&self, key: &str, body: &Value) -> reqwest::Response {
        self.send_chat_with(key, body, &[]).await
    }

    /// `send_chat` with extra request headers.
    pub async fn send_chat_with(&self, key: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.post(format!("{}/v1/chat/completions", self.base)).bearer_auth(key).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    /// POSTs JSON with a bearer key; returns status and parsed body (Null if not JSON).
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let resp =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(key).json(body).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GETs with a bearer key; returns status and parsed body.
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).bearer_auth(key).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// DELETEs with a bearer key; returns the status.
    pub async fn delete(&self, path: &str, key: &str) -> u16 {
        let resp = self.client.delete(format!("{}{path}", self.base)).bearer_auth(key).send().await.expect("request");
        resp.status().as_u16()
    }

    /// Creates a tenant (if needed) and a key in it; returns the secret.
    pub async fn key(&self, tenant: &str, role: &str, limits: Value) -> String {
        let _ = self.post("/v1/admin/tenants", &self.admin_key, &serde_json::json!({"id": tenant})).await;
        let (status, body) = self
            .post(
                "/v1/admin/keys",
                &self.admin_key,
                &serde_json::json!({"tenant_id": tenant, "role": role, "name": "test", "limits": limits}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().expect("secret").to_owned()
    }

    /// Reads a streamed response into its `data:` payloads (without the `data: ` prefix).
    pub async fn stream(&self, key: &str, body: &Value) -> (u16, Vec<String>) {
        let resp = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => panic!("reading the stream failed: {e:?}"),
        };
        let events = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_owned)).collect();
        (status, events)
    }
}
