//! The dashboard in a real browser: headless Chromium from Debian's packages, driven by
//! Playwright's Python library (`scripts/browser-env.sh`; `CAIRN_TEST_BROWSER` names its
//! Python, `CAIRN_TEST_CHROMIUM` the browser). This test prepares a tenant's data through the
//! API (traced chats, a dead job, a failed ingestion, a run waiting for approval, an
//! evaluation) and a second tenant with nothing; `tests/ui/dashboard.py` checks the pages
//! against the API, acts from them, and writes a screenshot of each page.

use std::time::Duration;

use cairn_testkit::{Receiver, Scripted, StandIn, TestServer};
use serde_json::{json, Value};

use crate::runs::{agent, wait_job, wait_run};

async fn until_state(s: &TestServer, key: &str, path: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = s.get(path, key).await;
        if v["state"] == state {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path} never reached {state}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_acts_and_keeps_tenants_apart() {
    let python = std::env::var("CAIRN_TEST_BROWSER")
        .unwrap_or_else(|_| panic!("CAIRN_TEST_BROWSER is not set: run the suite with scripts/test.sh"));
    let chromium = std::env::var("CAIRN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let up = StandIn::start().await;
    let receiver = Receiver::start().await;
    let s = TestServer::start(&format!("{}\n[tracing]\ncapture = \"full\"\n", crate::runs::config(&up))).await;
    let acme = s.key("acme", "admin", json!({"monthly_budget_usd": 100.0})).await;
    let globex = s.key("globex", "admin", json!({})).await;
    let (_, me) = s.get("/v1/me", &acme).await;

    // Traced chats.
    let mut trace = String::new();
    for i in 0..3 {
        let body = json!({"model": "chain", "max_tokens": 8, "messages": [{"role": "user", "content": format!("Question {i}")}]});
        let resp = s.send_chat(&acme, &body).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        if i == 0 {
            trace = resp.headers()["x-cairn-trace-id"].to_str().unwrap().to_owned();
        }
    }

    // A dead job: its one attempt is refused.
    receiver.fail_next(500);
    let hook = json!({"type": "webhook", "max_attempts": 1, "payload": {"url": receiver.url(), "body": {"n": 1}}});
    let (status, job) = s.post("/v1/jobs", &acme, &hook).await;
    assert_eq!(status, 201, "{job}");
    let dead_job = job["id"].as_str().unwrap().to_owned();
    until_state(&s, &acme, &format!("/v1/jobs/{dead_job}"), "dead").await;

    // A collection with one good and one failed ingestion (the model changed its dimensions).
    let (_, col) = s.post("/v1/collections", &acme, &json!({"name": "policies", "embedding_model": "embed"})).await;
    let col = col["id"].as_str().unwrap().to_owned();
    let add = |id: &str| json!({"documents": [{"id": id, "text": "Refunds are allowed within 30 days."}]});
    let (_, accepted) = s.post(&format!("/v1/collections/{col}/documents"), &acme, &add("good")).await;
    wait_job(&s, &acme, accepted["data"][0]["job_id"].as_str().unwrap()).await;
    up.embed_with_dimensions(8);
    s.post(&format!("/v1/collections/{col}/documents"), &acme, &add("broken")).await;
    until_state(&s, &acme, &format!("/v1/collections/{col}/documents/broken"), "failed").await;
    up.embed_with_dimensions(4);

    // A run waiting for a person to approve a refund.
    let agent_id = agent(
        &s,
        &acme,
        json!({
            "name": "support", "model": "fast", "instructions": "Refund when asked.",
            "tools": {"refund": {"type": "webhook", "approval": "always", "webhook": {"url": receiver.url(),
                "parameters": {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}}}},
        }),
    )
    .await;
    up.script([Scripted::Calls(vec![("refund".into(), json!({"order": 7}))]), Scripted::Text("Refunded.".into())]);
    let body = json!({"agent_id": agent_id, "messages": [{"role": "user", "content": "Refund order 7"}]});
    let (status, run) = s.post("/v1/runs", &acme, &body).await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap().to_owned();
    wait_run(&s, &acme, &run_id, &["requires_action"]).await;

    // A stored evaluation.
    let item = json!({"question": "q", "answer_id": null, "expected": ["good"], "cited": ["good"],
        "citation_precision": 1.0, "citation_recall": 1.0, "faithfulness": 0.9, "error": null});
    let eval = json!({"collection_id": col, "dataset": "qa.jsonl", "model": null, "judge": "fast", "items": [item]});
    assert_eq!(s.post("/v1/evals", &acme, &eval).await.0, 201);
    s.flush().await;
    s.trace(&trace, &acme, 3).await;

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let input = json!({
        "base": s.base, "key_a": acme, "key_b": globex, "tenant_a": "acme", "key_a_id": me["key_id"],
        "trace": trace, "dead_job": dead_job, "run": run_id, "chromium": chromium, "shots": shots,
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/dashboard.py");
    let out =
        tokio::process::Command::new(python).arg(script).arg(input.to_string()).output().await.expect("run Playwright");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "dashboard checks failed:\n{stdout}\n{stderr}");
    for page in ["login", "overview", "traces", "trace", "usage", "jobs", "knowledge", "runs", "evals"] {
        assert!(shots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
    println!("screenshots: {}", shots.display());
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_with_a_strict_policy() {
    let s = TestServer::start("").await;
    let resp = s.client.get(format!("{}/ui", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "redirected to /ui/");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = resp.text().await.unwrap();
    for asset in ["app.js", "overview.js", "traces.js", "operate.js", "app.css"] {
        assert!(html.contains(&format!("/ui/{asset}")), "{asset} linked");
        let r = s.client.get(format!("{}/ui/{asset}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing from elsewhere");
    for bad in ["/ui/nope.js", "/ui/..%2Fapp.js", "/ui/app.js%00"] {
        let r = s.client.get(format!("{}{bad}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
}
