//! Durable accounting without waiting for a commit, with a real process (the usage journal,
//! `cairn_gateway::journal`): `cairn serve` on SQLite answers chat calls while another
//! connection holds the database's write lock, so none of their usage records can be committed;
//! it is killed with SIGKILL; after a restart every call it answered is in `/v1/usage` at its
//! exact cost, once, and its key's budget has settled each call once.

mod common;

use std::path::Path;
use std::time::Duration;

use cairn_testkit::StandIn;
use common::{free_port, ready, spawn, ADMIN_KEY};
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};

/// One stand-in call (11 input, 4 output tokens) costs exactly $0.19 at these prices.
const COST: f64 = 0.19;

fn write_config(dir: &Path, up: &StandIn) -> std::path::PathBuf {
    let url = format!("sqlite://{}", dir.join("cairn.db").display());
    let rest = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.fast]\n\
         targets = [{{ provider = \"up\", model = \"up-model\", input_usd_per_mtok = 10000.0, output_usd_per_mtok = 20000.0 }}]\n",
        up.openai_url()
    );
    common::write_node_config(dir, &url, &rest)
}

/// A running `cairn serve` and its base URL.
struct Node {
    child: std::process::Child,
    base: String,
}

impl Node {
    async fn start(dir: &Path, name: &str, config: &Path, client: &reqwest::Client) -> Node {
        let port = free_port();
        let child = spawn(dir, name, config, &["serve"], port);
        Node { child, base: ready(client, port).await }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// One chat call with `key`; its status.
async fn chat(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    let body = json!({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "Say hello"}]});
    let resp = client.post(format!("{base}/v1/chat/completions")).bearer_auth(key).json(&body).send().await.unwrap();
    resp.status().as_u16()
}

async fn usage(client: &reqwest::Client, base: &str, key: &str) -> Value {
    client.get(format!("{base}/v1/usage")).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

/// The journals in the folder beside the database, with their sizes.
fn journals(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir.join("cairn-usage"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect()
}

/// Creates a member key whose monthly budget is `usd`; its secret.
async fn budgeted_key(client: &reqwest::Client, base: &str, usd: f64) -> String {
    let body = json!({"tenant_id": "default", "role": "member", "name": "b", "limits": {"monthly_budget_usd": usd}});
    let resp = client.post(format!("{base}/v1/admin/keys")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn calls_answered_before_a_kill_are_all_accounted_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let config = write_config(dir.path(), &up);
    let client = reqwest::Client::new();
    let node = Node::start(dir.path(), "serve-1", &config, &client).await;
    let key = budgeted_key(&client, &node.base, 100.0).await;
    // The first call takes budget credit from storage; the next ones are admitted against it
    // in memory.
    assert_eq!(chat(&client, &node.base, &key).await, 200);

    // Nothing can be committed while this is held: each answer that leaves has only the
    // journal to account for it. Waiting for the commit would take SQLite's 10 s busy timeout.
    let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
    let mut blocker = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();
    const CALLS: usize = 6;
    let calls = (0..CALLS).map(|_| chat(&client, &node.base, &key));
    let answered = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(calls))
        .await
        .expect("answered without waiting for a commit");
    assert!(answered.iter().all(|s| *s == 200), "{answered:?}");
    assert_eq!(up.request_count(), CALLS + 1);
    node.kill();
    let held = journals(dir.path());
    assert!(held.len() == 2 && held.iter().sum::<u64>() > 0, "the dead process's journal holds its records: {held:?}");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();

    let node = Node::start(dir.path(), "serve-2", &config, &client).await;
    assert_eq!(
        journals(dir.path()),
        vec![0, 0],
        "replayed and removed; only the new process's own (two files) is left"
    );
    let u = usage(&client, &node.base, &key).await;
    let calls = CALLS as f64 + 1.0;
    assert_eq!(u["totals"]["requests"], CALLS + 1, "{u}");
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - COST * calls).abs() < 1e-9, "{u}");
    // The budget's settled spend counts each call once, at its real cost.
    let settled: i64 =
        sqlx::query_scalar("SELECT SUM(settled_nusd) FROM key_spend").fetch_one(&mut blocker).await.unwrap();
    assert_eq!(settled, 190_000_000 * (CALLS as i64 + 1));
    node.kill();
}
