//! The OpenAPI document is the contract: schemathesis (from PyPI) generates requests for every
//! route from `/openapi.json` and runs all of its checks against a live server: no 5xx, every
//! status code documented, every response in its schema, every input the schema forbids
//! refused, every input it allows accepted. Any new finding fails the suite.
//!
//! All checks run (schemathesis' default: every check but response time), with two narrow
//! exceptions written down with their reasons in `schemathesis.toml`. Any finding fails the
//! suite.

use cairn_testkit::{StandIn, TestServer};
use serde_json::json;

#[tokio::test]
async fn schemathesis_finds_nothing_on_any_route() {
    let st = std::env::var("CAIRN_TEST_SCHEMATHESIS")
        .expect("CAIRN_TEST_SCHEMATHESIS is not set: run the suite with scripts/test.sh, which installs schemathesis");
    let up = StandIn::start().await;
    // schemathesis keeps pooled connections idle for longer than the default header-read
    // timeout (which also bounds keep-alive idling); a connection the server closes just as
    // the client reuses it is HTTP/1.1's keep-alive race, not a contract finding.
    let config = crate::config(&up, &up).replace("[server]\n", "[server]\nheader_read_timeout_secs = 600\n");
    let s = TestServer::start(&config).await;
    // A collection, so routes under an existing one are reached too.
    let (status, col) =
        s.post("/v1/collections", &s.admin_key, &json!({"name": "docs", "embedding_model": "embed"})).await;
    assert_eq!(status, 201, "{col}");
    let out = run_schemathesis(&st, &s).await;
    let report = String::from_utf8_lossy(&out.stdout);
    let saved = std::env::temp_dir().join("cairn-schemathesis-report.txt");
    let _ = std::fs::write(&saved, report.as_bytes());
    assert!(
        out.status.success(),
        "{report}\n{}\n(report saved in {})",
        String::from_utf8_lossy(&out.stderr),
        saved.display()
    );
}

/// One schemathesis run over every route of `s`, with every check.
async fn run_schemathesis(st: &str, s: &TestServer) -> std::process::Output {
    tokio::process::Command::new(st)
        .args(["--config-file", "tests/api/schemathesis.toml"])
        .args(["run", &format!("{}/openapi.json", s.base), "--url", &s.base])
        .args(["--header", &format!("Authorization: Bearer {}", s.admin_key)])
        // One worker: CPython 3.11 keeps the AST constructor's recursion depth in state shared
        // by threads, so Hypothesis describing lambdas on two worker threads at once now and
        // then dies with "AST constructor recursion depth mismatch" (python/cpython#106905),
        // which is no finding about Cairn. A fixed seed: every run tries the same cases.
        .args(["--workers", "1", "--max-examples", "30", "--generation-deterministic", "--seed", "20261129"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("schemathesis runs")
}
