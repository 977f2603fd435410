//! The client against servers that misbehave (a Python script, one way per mode): every
//! failure is an error in bounded time, never a hang or a panic, and the pool recovers.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_mcp::{McpError, Pool, ServerConfig};
use serde_json::json;

fn server(mode: &str) -> ServerConfig {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/misbehaving_server.py");
    ServerConfig::Stdio { command: "python3".into(), args: vec![script.into(), mode.into()], env: BTreeMap::new() }
}

const SHORT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn pages_noise_pings_and_meta() {
    for mode in ["ok", "noise"] {
        let pool = Pool::new();
        let tools = pool.tools(mode, &server(mode)).await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["first", "echo"], "{mode}: both pages");
        assert_eq!(tools[0].input_schema, json!({"type": "object"}), "a tool without a schema takes an object");
        let out = pool.call(mode, &server(mode), "echo", json!({"text": "hi"}), json!({"k": "r:1:c"}), SHORT).await;
        let out = out.unwrap();
        assert_eq!(out.text, "hi\n{\"k\": \"r:1:c\"}", "{mode}");
        assert!(!out.is_error);
    }
}

#[tokio::test]
async fn broken_servers_fail_in_bounded_time() {
    let pool = Pool::new();
    let version = pool.tools("v", &server("version")).await;
    assert!(matches!(version, Err(McpError::Protocol(ref m)) if m.contains("1999-01-01")), "{version:?}");

    let many = pool.tools("m", &server("many")).await;
    assert!(matches!(many, Err(McpError::Protocol(ref m)) if m.contains("1000")), "{many:?}");

    let silent = pool.call("s", &server("silent"), "echo", json!({}), json!(null), Duration::from_millis(300)).await;
    assert!(matches!(silent, Err(McpError::Timeout(300))), "{silent:?}");

    let huge = pool.call("h", &server("huge"), "echo", json!({}), json!(null), SHORT).await;
    assert!(matches!(huge, Err(McpError::Unreachable(_))), "an over-long line closes the server: {huge:?}");

    let exit = pool.call("e", &server("exit"), "echo", json!({}), json!(null), SHORT).await;
    assert!(matches!(exit, Err(McpError::Unreachable(_))), "{exit:?}");
}

#[tokio::test]
async fn a_server_that_cannot_start_is_not_tried_again_at_once() {
    let pool = Pool::new();
    let missing = ServerConfig::Stdio { command: "/nonexistent/mcp".into(), args: vec![], env: BTreeMap::new() };
    let first = pool.tools("m", &missing).await;
    assert!(matches!(first, Err(McpError::Unreachable(ref m)) if !m.contains("not tried again")), "{first:?}");
    let second = pool.call("m", &missing, "t", json!({}), json!(null), SHORT).await;
    assert!(matches!(second, Err(McpError::Unreachable(ref m)) if m.contains("not tried again")), "{second:?}");
    // A changed configuration is a new server: tried at once.
    let fixed = server("ok");
    assert!(pool.tools("m", &fixed).await.is_ok());
}

#[tokio::test]
async fn idle_connections_are_closed() {
    // Long enough that starting "b" on a loaded machine does not already idle "a" out.
    let pool = Pool::with_idle(Duration::from_secs(2));
    pool.tools("a", &server("ok")).await.unwrap();
    pool.tools("b", &server("ok")).await.unwrap();
    assert_eq!(pool.open_connections(), 2);
    // "b" stays in use and "a" does not: a use after the idle time closes "a" (its process
    // ends with it). Polled, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pool.open_connections() > 1 {
        assert!(std::time::Instant::now() < deadline, "the idle connection stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.call("b", &server("ok"), "echo", json!({"text": "x"}), json!(null), SHORT).await.unwrap();
    }
    // "a" comes back on its next use.
    pool.call("a", &server("ok"), "echo", json!({"text": "y"}), json!(null), SHORT).await.unwrap();
}

#[tokio::test]
async fn a_dead_server_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("died");
    let mut config = server("exit_once");
    if let ServerConfig::Stdio { args, .. } = &mut config {
        args.push(marker.display().to_string());
    }
    let pool = Pool::new();
    let first = pool.call("x", &config, "echo", json!({"text": "1"}), json!(null), SHORT).await;
    assert!(matches!(first, Err(McpError::Unreachable(_))), "the process died mid-call: {first:?}");
    // The next call starts a fresh process, which answers.
    let again = pool.call("x", &config, "echo", json!({"text": "2"}), json!(null), SHORT).await.unwrap();
    assert!(again.text.starts_with('2'), "{again:?}");
}

#[tokio::test]
async fn a_servers_ping_mid_response_is_answered() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sse_ping_server.py");
    let _server =
        tokio::process::Command::new("python3").arg(script).arg(port.to_string()).kill_on_drop(true).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("http://127.0.0.1:{port}/mcp").parse().unwrap();
    let config = ServerConfig::Http { url, headers: Default::default() };
    let pool = Pool::new();
    let out = pool.call("p", &config, "echo", json!({}), json!(null), Duration::from_secs(10)).await.unwrap();
    assert_eq!(out.text, "pong received");

    // Forgetting the server ends its session there.
    pool.forget("p");
    let ended = format!("http://127.0.0.1:{port}/ended");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list: serde_json::Value = reqwest::get(&ended).await.unwrap().json().await.unwrap();
        if list == json!(["s-1"]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the session was not ended: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
