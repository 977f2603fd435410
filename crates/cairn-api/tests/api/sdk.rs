//! The official OpenAI Python SDK works against Cairn with only `base_url` and `api_key` set.

use crate::setup;

/// Python interpreter with the `openai` package; `scripts/test.sh` prepares it.
const PYTHON_ENV: &str = "CAIRN_TEST_PYTHON";

#[tokio::test]
async fn the_official_openai_python_sdk_works_unchanged() {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| {
        panic!("{PYTHON_ENV} is not set: run the suite with scripts/test.sh, which installs the SDK")
    });
    let (s, _, _) = setup().await;
    let script = "tests/sdk/openai_sdk_check.py";
    let out = tokio::process::Command::new(python).arg(script).arg(&s.base).arg(&s.admin_key).output().await.unwrap();
    assert!(
        out.status.success(),
        "SDK check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
