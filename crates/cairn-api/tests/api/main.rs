//! End-to-end tests of the HTTP API: the real server over loopback, talking to stand-in
//! providers started by each test (see `cairn-testkit`).
//! Test files are named relative to this package folder, where cargo and nextest run tests.

mod access;
mod agents;
mod audit;
mod bad_input;
mod budgets;
mod cache;
mod contract;
mod dashboard;
mod durability;
mod feedback;
mod filters;
mod gateway;
mod guards;
mod guards_output;
mod hostile;
mod jobs;
mod knowledge;
mod listing;
mod local;
mod local_chat;
mod mcp;
mod otlp;
mod rag;
mod resilience;
mod routing;
mod runs;
mod runs_loop;
mod runs_memory;
mod sdk;
mod semantic_cache;
mod tenancy;
mod tools;
mod traces;
mod traces_flows;

use cairn_testkit::{StandIn, TestServer};
use serde_json::{json, Value};

/// Prices chosen so one stand-in call (11 input, 4 output tokens) costs exactly $0.19.
const PRICES: &str = "input_usd_per_mtok = 10000.0, output_usd_per_mtok = 20000.0";

/// A config with: `fast` (OpenAI-style, `up`), `chain` (`up` then `backup`), `claude`
/// (Anthropic-style), `embed` (embeddings), `quick` (short timeouts, no fallback) and `narrow`
/// (a provider allowing one concurrent request), `resilient` (a dead provider, then `backup`).
pub fn config(up: &StandIn, backup: &StandIn) -> String {
    std::env::set_var("STANDIN_KEY", "sk-upstream-secret");
    format!(
        r#"
[server]
max_body_bytes = 65536

[gateway]
max_retries = 2
backoff_base_ms = 5
backoff_max_ms = 3000
breaker_failure_threshold = 3
breaker_open_ms = 60000

[gateway.timeouts]
first_token_ms = 3000
total_ms = 10000

[providers.up]
kind = "openai"
base_url = "{up}"
api_key_env = "STANDIN_KEY"
headers = {{ "x-team" = "search" }}

[providers.backup]
kind = "openai"
base_url = "{backup}"

[providers.narrow]
kind = "openai"
base_url = "{up}"
max_concurrency = 1

[providers.gone]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[providers.claude]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "STANDIN_KEY"

[models.fast]
targets = [{{ provider = "up", model = "up-model", {PRICES} }}]

[models.chain]
targets = [{{ provider = "up", model = "up-model", {PRICES} }}, {{ provider = "backup", model = "backup-model", {PRICES} }}]

[models.claude]
targets = [{{ provider = "claude", model = "claude-model", {PRICES} }}]

[models.embed]
kind = "embedding"
targets = [{{ provider = "up", model = "embed-model" }}]

[models.narrow]
targets = [{{ provider = "narrow", model = "up-model", timeouts = {{ first_token_ms = 300 }} }}]

[models.resilient]
targets = [{{ provider = "gone", model = "m" }}, {{ provider = "backup", model = "backup-model" }}]

[models.gpt]
targets = [{{ provider = "up", model = "gpt-4o-mini", {PRICES} }}]

[models.notools]
targets = [{{ provider = "up", model = "up-model" }}, {{ provider = "backup", model = "backup-model", tools = false }}]

[models.quick]
targets = [{{ provider = "up", model = "up-model", timeouts = {{ first_token_ms = 300, total_ms = 600 }} }}]
"#,
        up = up.openai_url(),
        backup = backup.openai_url(),
        anthropic = up.anthropic_url(),
    )
}

/// A stand-in pair and a server configured against them.
pub async fn setup() -> (TestServer, StandIn, StandIn) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let server = TestServer::start(&config(&up, &backup)).await;
    (server, up, backup)
}

/// A minimal chat request body.
pub fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// Usage for the caller's tenant, after writing every pending record.
pub async fn usage(server: &TestServer, key: &str, query: &str) -> (u16, Value) {
    server.flush().await;
    server.get(&format!("/v1/usage{query}"), key).await
}
