//! The OpenAPI document is the contract: schemathesis (from PyPI) generates requests for every
//! route from `/openapi.json` and runs all of its checks against a live server: no 5xx, every
//! status code documented, every response in its schema, every input the schema forbids
//! refused, every input it allows accepted. Any new finding fails the suite.
//!
//! `schemathesis-baseline.json` lists the findings known and not yet fixed (rules the schema
//! cannot state yet: a tool message needs its `tool_call_id`, a job's payload depends on its
//! type, ...); each is an open item, not an accepted behaviour. Set
//! `CAIRN_SCHEMATHESIS_UPDATE_BASELINE=1` to record the current ones after fixing some.
//!
//! Not yet part of the default run: besides those findings, schemathesis 4.32 itself stops
//! with an internal error on part of this schema. Run it with `scripts/contract.sh`.

use cairn_testkit::{StandIn, TestServer};
use serde_json::json;

#[tokio::test]
#[ignore = "known findings remain (schemathesis-baseline.json); run with scripts/contract.sh"]
async fn schemathesis_finds_nothing_on_any_route() {
    let st = std::env::var("CAIRN_TEST_SCHEMATHESIS")
        .expect("CAIRN_TEST_SCHEMATHESIS is not set: run the suite with scripts/test.sh, which installs schemathesis");
    let up = StandIn::start().await;
    let s = TestServer::start(&crate::config(&up, &up)).await;
    // A collection, so routes under an existing one are reached too.
    let (status, col) =
        s.post("/v1/collections", &s.admin_key, &json!({"name": "docs", "embedding_model": "embed"})).await;
    assert_eq!(status, 201, "{col}");
    let out = tokio::process::Command::new(st)
        .args(["run", &format!("{}/openapi.json", s.base), "--url", &s.base, "--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {}", s.admin_key)])
        // A fixed seed: every run of the suite tries the same cases.
        .args(["--workers", "2", "--max-examples", "30", "--generation-deterministic", "--seed", "20261129"])
        .args(["--baseline", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis-baseline.json")])
        .args(std::env::var("CAIRN_SCHEMATHESIS_UPDATE_BASELINE").map(|_| "--baseline-update"))
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("schemathesis runs");
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
