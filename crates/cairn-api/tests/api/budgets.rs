//! Budgets under concurrency: each call holds its worst case before it runs, so however many
//! calls race, streamed or not, on one node or two sharing PostgreSQL, what is admitted never
//! costs more than the budget covers. Rate limits hold across two nodes whether their buckets
//! live in PostgreSQL or in Redis (`gateway.shared_limits = "redis"`).

use cairn_testkit::TestServer;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::{config, usage};
use cairn_testkit::StandIn;

/// One stand-in call costs exactly $0.19 (see `PRICES`); this budget covers five of them.
const BUDGET: f64 = 0.95;

fn call(stream: bool) -> Value {
    let mut body = json!({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "Say hello"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// Fires 40 calls at once across `servers` with one key; returns how many were admitted.
async fn race(servers: &[&TestServer], key: &str, stream: bool) -> usize {
    let calls = (0..40).map(|i| {
        let s = servers[i % servers.len()];
        async move {
            let resp = s.send_chat(key, &call(stream)).await;
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").is_some();
            let body = resp.text().await.unwrap_or_default();
            if status == 429 {
                assert!(retry_after, "a refusal says when to retry");
                assert!(body.contains("budget_exceeded"), "{body}");
            } else {
                assert_eq!(status, 200, "{body}");
            }
            status == 200
        }
    });
    join_all(calls).await.into_iter().filter(|ok| *ok).count()
}

async fn spent(s: &TestServer, key: &str) -> f64 {
    let (_, report) = usage(s, key, "").await;
    report["totals"]["cost_usd"].as_f64().unwrap()
}

async fn budget_holds(stream: bool) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let s = TestServer::start(&config(&up, &backup)).await;
    let key = s.key("acme", "member", json!({"monthly_budget_usd": BUDGET})).await;
    let admitted = race(&[&s], &key, stream).await;
    assert!((1..=5).contains(&admitted), "{admitted} calls admitted");
    let cost = spent(&s, &key).await;
    assert!(cost <= BUDGET + 1e-9, "spent ${cost} of ${BUDGET}");
    assert!((cost - 0.19 * admitted as f64).abs() < 1e-9, "every admitted call settled at its real cost");
    assert_eq!(up.request_count(), admitted, "refused calls never reach the provider");
}

#[tokio::test]
async fn concurrent_calls_never_overspend() {
    budget_holds(false).await;
}

#[tokio::test]
async fn concurrent_streams_never_overspend() {
    budget_holds(true).await;
}

#[tokio::test]
async fn two_nodes_sharing_postgres_never_overspend() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let url = cairn_store::conformance::fresh_pg_database().await;
    let a = TestServer::start_with(&config(&up, &backup), Some(url.clone())).await;
    let b = TestServer::start_with(&config(&up, &backup), Some(url)).await;
    let key = a.key("acme", "member", json!({"monthly_budget_usd": BUDGET})).await;
    let admitted = race(&[&a, &b], &key, false).await;
    assert!((1..=5).contains(&admitted), "{admitted} calls admitted");
    b.flush().await;
    let cost = spent(&a, &key).await;
    assert!(cost <= BUDGET + 1e-9, "spent ${cost} of ${BUDGET}");
}

#[tokio::test]
async fn a_call_whose_worst_case_does_not_fit_is_refused_before_it_runs() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let s = TestServer::start(&config(&up, &backup)).await;
    let key = s.key("acme", "member", json!({"monthly_budget_usd": BUDGET})).await;
    // Without max_tokens the call may write `gateway.reserve_output_tokens` tokens: far more
    // than the budget covers at these prices.
    let (status, body) = s.post("/v1/chat/completions", &key, &crate::chat("fast")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("budget_exceeded")), "{body}");
    assert_eq!(up.request_count(), 0);
    // A free model is not blocked by a budget with room left, and a budget of $0 admits nothing.
    let zero = s.key("acme", "member", json!({"monthly_budget_usd": 0.0})).await;
    let embed = json!({"model": "embed", "input": "hello"});
    assert_eq!(s.post("/v1/embeddings", &key, &embed).await.0, 200);
    assert_eq!(s.post("/v1/embeddings", &zero, &embed).await.0, 429);
}

#[tokio::test]
async fn every_call_has_its_own_id_and_the_request_id_as_a_column() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let s = TestServer::start(&config(&up, &backup)).await;
    let resp = s.send_chat(&s.admin_key, &crate::chat("fast")).await;
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.status(), 200);
    s.flush().await;
    let store = cairn_store::open(&s.database_url, 1).await.unwrap();
    let records = store.usage_by_request(&request_id).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_ne!(records[0].id, request_id);
    assert!(uuid::Uuid::parse_str(&records[0].id).is_ok_and(|u| u.get_version_num() == 7), "{}", records[0].id);
}

/// Fires 40 calls at once across `servers` with one key; returns how many were admitted, each
/// refusal checked to be a rate limit.
async fn race_rate(servers: &[&TestServer], key: &str) -> usize {
    let calls = (0..40).map(|i| {
        let s = servers[i % servers.len()];
        async move {
            let resp = s
                .send_chat(
                    key,
                    &json!({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}),
                )
                .await;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            if status == 429 {
                assert!(body.contains("rate_limit"), "{body}");
            } else {
                assert_eq!(status, 200, "{body}");
            }
            status == 200
        }
    });
    join_all(calls).await.into_iter().filter(|ok| *ok).count()
}

/// `config` with rate buckets in the test Redis (`CAIRN_TEST_REDIS_URL`), under a key prefix
/// no other test uses.
fn on_redis(config: &str) -> String {
    let url = std::env::var("CAIRN_TEST_REDIS_URL")
        .expect("CAIRN_TEST_REDIS_URL is not set: run the suite with scripts/test.sh, which starts Redis");
    let prefix = uuid::Uuid::new_v4().simple();
    let config = config.replacen("[gateway]\n", "[gateway]\nshared_limits = \"redis\"\n", 1);
    format!("{config}\n[redis]\nurl = \"{url}\"\nkey_prefix = \"cairn-test:{prefix}:\"\n")
}

#[tokio::test]
async fn a_rate_limit_holds_across_two_nodes_sharing_postgres() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    rate_limit_across_two_nodes(&up, &config(&up, &backup)).await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_two_nodes_sharing_redis() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let config = on_redis(&config(&up, &backup));
    rate_limit_across_two_nodes(&up, &config).await;
}

#[tokio::test]
async fn a_token_rate_limit_in_redis_holds_on_the_other_node() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let config = on_redis(&config(&up, &backup));
    let url = cairn_store::conformance::fresh_pg_database().await;
    let a = TestServer::start_with(&config, Some(url.clone())).await;
    let b = TestServer::start_with(&config, Some(url)).await;
    let (_, ready) = b.get("/readyz", "").await;
    assert_eq!(ready["node"]["rate_limits"], "redis", "{ready}");
    // Ten tokens a minute: one call's worst case (its prompt and 50 output tokens) drives the
    // shared bucket into debt, and the other node refuses the next call.
    let key = a.key("acme", "member", json!({"tokens_per_minute": 10})).await;
    let body = json!({"model": "fast", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let (status, v) = a.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = b.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(status, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("10 tokens per minute"), "{v}");
    assert_eq!(up.request_count(), 1, "the refused call never reached the provider");
}

/// Six requests a minute for one key, raced across two nodes on one PostgreSQL with `config`.
async fn rate_limit_across_two_nodes(up: &StandIn, config: &str) {
    let url = cairn_store::conformance::fresh_pg_database().await;
    let a = TestServer::start_with(config, Some(url.clone())).await;
    let b = TestServer::start_with(config, Some(url)).await;
    let key = a.key("acme", "member", json!({"requests_per_minute": 6})).await;
    let started = std::time::Instant::now();
    let admitted = race_rate(&[&a, &b], &key).await;
    // Six a minute: the bucket starts full and refills one every ten seconds.
    let refilled = (started.elapsed().as_secs_f64() / 10.0).floor() as usize;
    assert!(admitted >= 6 && admitted <= 6 + refilled, "{admitted} calls admitted at 6 per minute over two nodes");
    assert_eq!(up.request_count(), admitted, "refused calls never reach the provider");
    // Both nodes refuse the next call: one bucket.
    for s in [&a, &b] {
        let (status, body) = s.post("/v1/chat/completions", &key, &crate::chat("fast")).await;
        assert_eq!(status, 429, "{body}");
    }
}
