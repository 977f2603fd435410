//! Helpers for the tests that run `cairn` as a real process: a free port, a node started with
//! its log in the test's folder, and waiting until it serves.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin key every test node bootstraps with.
pub const ADMIN_KEY: &str = "sk-cairn-process-test-admin-key-0123456789abcdef";

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[allow(dead_code)] // not every test binary that shares this module uses it
/// Writes `dir/cairn.toml` for a test node on database `url` (a second's shutdown grace,
/// warnings logged as JSON) with the sections in `rest`; returns its path.
pub fn write_node_config(dir: &Path, url: &str, rest: &str) -> std::path::PathBuf {
    let path = dir.join("cairn.toml");
    let text = format!(
        "[server]\nshutdown_grace_secs = 1\n[storage]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\nformat = \"json\"\n{rest}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `cairn ARGS --config CONFIG` on `port`, with its output in `dir/NAME.log`.
pub fn spawn(dir: &Path, name: &str, config: &Path, args: &[&str], port: u16) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("CAIRN_ADMIN_KEY", ADMIN_KEY)
        .env("CAIRN_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("CAIRN_DATA_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start cairn")
}

/// Waits until the node on `port` is ready; returns its base URL.
pub async fn ready(client: &reqwest::Client, port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(tokio::time::Instant::now() < deadline, "cairn serve did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    base
}

#[allow(dead_code)] // not every test binary that shares this module uses it
/// Words starting with `prefix` in a document's stored chunks, with how often each appears
/// (the tests mark every sentence with a word no other sentence has).
pub async fn stored_markers(
    store: &dyn cairn_core::store::Store,
    col: &str,
    doc: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for c in store.document_chunks(col, doc).await.unwrap() {
        for w in c.text.split_whitespace().filter(|w| w.starts_with(prefix)) {
            *out.entry(w.to_owned()).or_default() += 1;
        }
    }
    out
}
