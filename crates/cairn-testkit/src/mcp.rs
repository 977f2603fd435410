//! A real MCP server for tests: `mcp_server.py`, written with the official Python `mcp` SDK
//! (installed by `scripts/python-env.sh`; `CAIRN_TEST_PYTHON` names its interpreter). Its
//! `record` tool appends each key to a log file, so tests count side effects.

use std::path::PathBuf;
use std::time::Duration;

/// The Python interpreter with the `mcp` package.
pub fn python() -> String {
    std::env::var("CAIRN_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("CAIRN_TEST_PYTHON is not set: run the suite with scripts/test.sh"))
}

/// The server script.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp_server.py")
}

/// A server process over Streamable HTTP on loopback, killed when dropped.
pub struct McpServer {
    /// Its endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// Where `record` writes.
    pub log: PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl McpServer {
    /// Starts one that needs `Authorization: Bearer TOKEN` when `token` is given; returns once
    /// it accepts connections.
    pub async fn http(token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("records.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = tokio::process::Command::new(python());
        cmd.arg(script()).arg("http").arg(port.to_string()).arg("--log").arg(&log).kill_on_drop(true);
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        let child = cmd.spawn().expect("start the MCP server");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the MCP server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { url: format!("http://127.0.0.1:{port}/mcp"), log, _child: child, _dir: dir }
    }

    /// The keys `record` was called with, in order.
    pub fn records(&self) -> Vec<String> {
        records(&self.log)
    }
}

/// The keys recorded in log file `log`.
pub fn records(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// The operator config (TOML) of a stdio server `name` for `tenants`, recording to `log`.
pub fn stdio_config(name: &str, tenants: &[&str], log: &std::path::Path) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let args = [script().display().to_string(), "stdio".into(), "--log".into(), log.display().to_string()];
    format!(
        "[agents.mcp_servers.{name}]\ncommand = {}\nargs = [{}]\ntenants = [{}]\n",
        quote(&python()),
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "),
        tenants.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ")
    )
}
