//! Durable jobs through the HTTP API: webhook jobs delivered to a real receiver, retries,
//! dead letters and replay, the SSE event stream, metrics, and bad input.

use std::time::Duration;

use cairn_testkit::{Receiver, TestServer};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[jobs]
poll_ms = 20
backoff_base_ms = 20
backoff_max_ms = 100
webhook_allowed_hosts = ["127.0.0.1"]
"#;

/// Polls a job until it is in `state` (bounded).
async fn wait_state(server: &TestServer, key: &str, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, job) = server.get(&format!("/v1/jobs/{id}"), key).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == state {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job stuck: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn hook(receiver: &Receiver, extra: Value) -> Value {
    let mut body = json!({"type": "webhook", "payload": {"url": receiver.url(), "body": {"order": 7}}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn a_webhook_job_is_delivered_once_with_its_idempotency_key() {
    let server = TestServer::start(CONFIG).await;
    let receiver = Receiver::start().await;
    let key = server.key("acme", "member", json!({})).await;
    let (status, job) = server.post("/v1/jobs", &key, &hook(&receiver, json!({"idempotency_key": "order-7"}))).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!((job["state"].as_str(), job["tenant_id"].as_str()), (Some("queued"), Some("acme")));
    // The same key again: the first job, 200.
    let (status, again) = server.post("/v1/jobs", &key, &hook(&receiver, json!({"idempotency_key": "order-7"}))).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));

    let done = wait_state(&server, &key, &id, "succeeded").await;
    assert_eq!(done["result"], json!({"status": 200}));
    assert_eq!(done["attempts_history"][0]["outcome"], "succeeded");
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].key.as_str(), deliveries[0].attempt), (id.as_str(), 1));
    assert_eq!(deliveries[0].body, json!({"order": 7}));

    let (_, types) = server.get("/v1/jobs/types", &key).await;
    let names: Vec<_> = types["data"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(names, ["noop", "webhook"]);
    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"cairn_job_attempts_total{type="webhook",outcome="succeeded"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"cairn_jobs_enqueued_total{type="webhook"} 1"#));
    assert!(metrics.contains("cairn_job_wait_seconds_bucket"));
}

#[tokio::test]
async fn failures_retry_then_dead_letter_and_replay() {
    let server = TestServer::start(CONFIG).await;
    let receiver = Receiver::start().await;
    let key = server.key("acme", "member", json!({})).await;
    // Two 5xx answers, then success on the third attempt.
    receiver.fail_next(500);
    receiver.fail_next(503);
    let (_, job) = server.post("/v1/jobs", &key, &hook(&receiver, json!({"max_attempts": 3}))).await;
    let done = wait_state(&server, &key, job["id"].as_str().unwrap(), "succeeded").await;
    let outcomes: Vec<_> = done["attempts_history"].as_array().unwrap().iter().map(|a| a["outcome"].clone()).collect();
    assert_eq!(outcomes, [json!("failed"), json!("failed"), json!("succeeded")]);
    assert_eq!(done["attempts_history"][0]["error"], "the webhook answered 500 Internal Server Error");

    // A 4xx is not worth retrying: dead at once. Then replayed, it succeeds.
    receiver.fail_next(404);
    let (_, job) = server.post("/v1/jobs", &key, &hook(&receiver, json!({"max_attempts": 5}))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let dead = wait_state(&server, &key, &id, "dead").await;
    assert_eq!(dead["attempts"], 1);
    let (_, listed) = server.get("/v1/jobs?state=dead", &key).await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let (status, replayed) = server.post(&format!("/v1/jobs/{id}/retry"), &key, &json!({})).await;
    assert_eq!((status, replayed["state"].as_str()), (200, Some("queued")));
    let done = wait_state(&server, &key, &id, "succeeded").await;
    assert_eq!(done["attempts_history"].as_array().unwrap().len(), 2);

    // Bulk replay: nothing dead left.
    let (status, n) = server.post("/v1/jobs/dead/retry", &key, &json!({})).await;
    assert_eq!((status, n["count"].as_u64()), (200, Some(0)));
}

#[tokio::test]
async fn the_event_stream_follows_a_job_to_its_end() {
    let server = TestServer::start(CONFIG).await;
    let receiver = Receiver::start().await;
    receiver.hold(Duration::from_millis(200));
    let key = server.key("acme", "member", json!({})).await;
    let (_, job) = server.post("/v1/jobs", &key, &hook(&receiver, json!({"delay_ms": 100}))).await;
    let id = job["id"].as_str().unwrap();
    let resp =
        server.client.get(format!("{}/v1/jobs/{id}/events", server.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The stream ends by itself after the final state.
    let text = resp.text().await.unwrap();
    let states: Vec<String> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(text.contains("event: job"));
    assert_eq!(states.first().map(String::as_str), Some("queued"), "{states:?}");
    assert!(states.iter().any(|s| s == "running"), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("succeeded"), "{states:?}");
}

#[tokio::test]
async fn a_running_job_can_be_cancelled() {
    let server = TestServer::start(CONFIG).await;
    let receiver = Receiver::start().await;
    receiver.hold(Duration::from_secs(30));
    let key = server.key("acme", "member", json!({})).await;
    let (_, job) = server.post("/v1/jobs", &key, &hook(&receiver, json!({}))).await;
    let id = job["id"].as_str().unwrap();
    receiver.wait_for_deliveries(1, Duration::from_secs(10)).await;
    let (status, flagged) = server.post(&format!("/v1/jobs/{id}/cancel"), &key, &json!({})).await;
    assert_eq!((status, flagged["cancel_requested"].as_bool()), (200, Some(true)), "{flagged}");
    let done = wait_state(&server, &key, id, "cancelled").await;
    assert_eq!(done["attempts_history"][0]["outcome"], "cancelled");
    let (status, err) = server.post(&format!("/v1/jobs/{id}/cancel"), &key, &json!({})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("conflict")));
}

#[tokio::test]
async fn bad_job_requests_get_clear_errors_and_tenants_stay_apart() {
    let server = TestServer::start(CONFIG).await;
    let receiver = Receiver::start().await;
    let acme = server.key("acme", "member", json!({})).await;
    let globex = server.key("globex", "member", json!({})).await;
    let reader = server.key("acme", "reader", json!({})).await;
    let post_raw = |body: &'static str| {
        server
            .client
            .post(format!("{}/v1/jobs", server.base))
            .bearer_auth(&acme)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post_raw("{not json").await.unwrap().status(), 400);
    assert_eq!(post_raw(r#"{"type": "noop", "bogus": 1}"#).await.unwrap().status(), 400);
    assert_eq!(post_raw(r#"{"type": 5}"#).await.unwrap().status(), 400);
    let cases = [
        (json!({"type": "nope"}), "type"),
        (json!({"type": "noop", "payload": [1]}), "payload"),
        (json!({"type": "noop", "max_attempts": 0}), "max_attempts"),
        (json!({"type": "noop", "priority": 99999}), "priority"),
    ];
    for (body, param) in cases {
        let (status, err) = server.post("/v1/jobs", &acme, &body).await;
        assert_eq!((status, err["error"]["param"].as_str()), (400, Some(param)), "{body}: {err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    // A well-formed webhook to a host off the tenant's allow-list is forbidden, not malformed.
    let off_list = json!({"type": "webhook", "payload": {"url": "http://10.0.0.1/x"}});
    let (status, err) = server.post("/v1/jobs", &acme, &off_list).await;
    assert_eq!((status, err["error"]["type"].as_str()), (403, Some("permission_error")), "{err}");
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"type": "noop"})).collect();
    assert_eq!(server.post("/v1/jobs/batch", &acme, &json!({"jobs": too_many})).await.0, 400);
    assert_eq!(server.post("/v1/jobs", &reader, &json!({"type": "noop"})).await.0, 403);
    assert_eq!(server.post("/v1/jobs", "sk-cairn-wrong", &json!({"type": "noop"})).await.0, 401);
    assert_eq!(server.get("/v1/jobs?state=bogus", &acme).await.0, 400);
    assert_eq!(server.get("/v1/jobs/job_nope", &acme).await.0, 404);
    assert_eq!(server.post("/v1/jobs/purge", &acme, &json!({"older_than_secs": 0})).await.0, 403);
    // Nothing was stored by any of the refused requests.
    let (_, mine) = server.get("/v1/jobs", &acme).await;
    assert_eq!(mine["data"], json!([]));

    let (_, job) = server.post("/v1/jobs", &acme, &hook(&receiver, json!({}))).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(server.post(&format!("/v1/jobs/{id}/retry"), &acme, &json!({})).await.0, 409);
    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/events")] {
        assert_eq!(server.get(&path, &globex).await.0, 404, "{path}");
    }
    assert_eq!(server.post(&format!("/v1/jobs/{id}/cancel"), &globex, &json!({})).await.0, 404);
    let (_, theirs) = server.get("/v1/jobs", &globex).await;
    assert_eq!(theirs["data"], json!([]));
    assert_eq!(server.get("/v1/jobs?tenant_id=acme", &globex).await.0, 403);
    let (status, all) = server.get("/v1/jobs?tenant_id=acme", &server.admin_key).await;
    assert_eq!((status, all["data"].as_array().map(Vec::len)), (200, Some(1)));
}

/// The receiver written from the docs, in Python, and its verdicts, one line per delivery.
struct PythonReceiver {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    url: String,
}

impl PythonReceiver {
    async fn start(secret: &str) -> PythonReceiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let python = std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = "tests/api/webhook_receiver.py";
        let mut child = tokio::process::Command::new(python)
            .args([script, &port.to_string(), secret])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python receiver starts");
        let stdout = child.stdout.take().unwrap();
        let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let mut receiver = PythonReceiver { child, lines, url: format!("http://127.0.0.1:{port}/hook") };
        assert_eq!(receiver.verdict().await, "ready");
        receiver
    }

    /// The receiver's verdict on the next delivery.
    async fn verdict(&mut self) -> String {
        let next = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line()).await;
        next.expect("a delivery within 20 s").unwrap().unwrap_or_default()
    }
}

#[tokio::test]
async fn webhooks_are_signed_per_tenant_and_verified_by_a_receiver_written_from_the_docs() {
    let config = "[jobs]\npoll_ms = 20\nmax_attempts = 1\nwebhook_tenant_hosts = { acme = [\"127.0.0.1\"] }\n";
    let server = TestServer::start(config).await;
    let admin = server.key("acme", "admin", json!({})).await;
    let member = server.key("acme", "member", json!({})).await;
    let other = server.key("globex", "admin", json!({})).await;
    let (status, secret) = server.get("/v1/webhooks/secret", &admin).await;
    assert_eq!(status, 200, "{secret}");
    let secret = secret["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, theirs) = server.get("/v1/webhooks/secret", &other).await;
    assert_ne!(theirs["secret"], json!(secret), "each tenant signs with its own secret");
    assert_eq!(server.get("/v1/webhooks/secret", &member).await.0, 403, "members cannot read it");
    assert_eq!(server.get("/v1/webhooks/secret?tenant_id=acme", &other).await.0, 403);

    let mut receiver = PythonReceiver::start(&secret).await;
    let url = receiver.url.clone();
    let hook =
        |headers: Value| json!({"type": "webhook", "payload": {"url": url, "body": {"order": 8}, "headers": headers}});
    // Delivered, signed, and verified by the receiver.
    let (status, job) = server.post("/v1/jobs", &member, &hook(json!({"x-team": "ops"}))).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(receiver.verdict().await, format!("valid {id} acme"));
    wait_state(&server, &member, id, "succeeded").await;
    // Nobody may set Cairn's own headers, nor call a host on another tenant's list.
    for forged in
        [json!({"webhook-signature": "v1,forged"}), json!({"X-Cairn-Tenant": "globex"}), json!({"webhook-id": "x"})]
    {
        let (status, body) = server.post("/v1/jobs", &member, &hook(forged.clone())).await;
        assert_eq!(status, 400, "{forged}: {body}");
    }
    let (status, body) = server.post("/v1/jobs", &other, &hook(json!({}))).await;
    assert_eq!(status, 403, "globex may not call acme's hosts: {body}");
    // After a rotation the receiver's old secret no longer verifies: signatures are real.
    let (status, rotated) = server.post("/v1/webhooks/secret", &admin, &json!({})).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], json!(secret));
    let (_, job) = server.post("/v1/jobs", &member, &hook(json!({}))).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(receiver.verdict().await, format!("invalid {id} acme"));
    let dead = wait_state(&server, &member, id, "dead").await;
    assert!(dead["attempts_history"][0]["error"].as_str().unwrap().contains("401"), "{dead}");
    let _ = receiver.child.kill().await;
}
