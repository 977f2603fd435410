//! The process as an operator sees it: SIGTERM ends `cairn serve` within its grace period
//! whatever requests are running (here a search waiting on a hung embedding provider), the
//! data folder and its files are readable by their owner only, and a database password never
//! reaches the output. Nor can a stderr that nobody reads stall it; a scrape token reads the
//! metrics and nothing else.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use cairn_testkit::{Fault, StandIn};
use common::{free_port, ready, spawn, ADMIN_KEY};
use serde_json::json;

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("cairn.toml");
    std::fs::write(&path, format!("[server]\nshutdown_grace_secs = 2\n[log]\nlevel = \"warn\"\n{extra}")).unwrap();
    path
}

/// Starts `cairn serve` in `dir` with the stand-in `up` as provider `up` and the `models`
/// TOML; returns the process and its base URL.
async fn serve_with(dir: &std::path::Path, up: &StandIn, models: &str) -> (std::process::Child, String) {
    let extra = format!("[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n{models}", up.openai_url());
    let config = write_config(dir, &extra);
    let port = free_port();
    let server = spawn(dir, "serve", &config, &["serve"], port);
    let base = ready(&reqwest::Client::new(), port).await;
    (server, base)
}

#[tokio::test]
async fn sigterm_ends_the_process_within_the_grace_period_during_a_long_search() {
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let models = "[models.emb]\nkind = \"embedding\"\n\
         targets = [{ provider = \"up\", model = \"e\", timeouts = { first_token_ms = 600000, total_ms = 600000 } }]\n";
    let (mut server, base) = serve_with(dir.path(), &up, models).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/v1/collections"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "docs", "embedding_model": "emb"}))
        .send()
        .await
        .unwrap();
    let col: serde_json::Value = resp.json().await.unwrap();
    let col = col["id"].as_str().unwrap().to_owned();

    // The query's embedding never comes back: the search runs until something ends it.
    up.push([Fault::Hang]);
    let search = client
        .post(format!("{base}/v1/collections/{col}/search"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"query": "kettle", "mode": "hybrid"}))
        .send();
    let search = tokio::spawn(search);
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.request_count() < 2 {
        assert!(Instant::now() < deadline, "the search never reached the provider");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let asked = Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(status.success());
    // Grace (2 s), the stream drain (5 s) and the runtime's last second, with room to spare.
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(asked.elapsed() < Duration::from_secs(15), "still running {:?} after SIGTERM", asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    search.abort();
}

#[tokio::test]
async fn the_data_folder_is_private_and_passwords_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), "");
    let port = free_port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("CAIRN_ADMIN_KEY", ADMIN_KEY)
        .env("CAIRN_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("CAIRN_DATA_DIR", &data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ready(&reqwest::Client::new(), port).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // An unreachable database: the error names the server, never the password.
    let config = write_config(dir.path(), "[storage]\nurl = \"postgres://cairn:hunter2-secret@127.0.0.1:1/cairn\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("CAIRN_SERVER__BIND", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("127.0.0.1:1"), "{printed}");
}

#[tokio::test]
async fn the_usage_of_a_finished_call_survives_a_kill_right_after_its_response() {
    let dir = tempfile::tempdir().unwrap();
    let up = StandIn::start().await;
    let models = "[models.fast]\n\
         targets = [{ provider = \"up\", model = \"m\", input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }]\n\
         [models.emb]\nkind = \"embedding\"\ntargets = [{ provider = \"up\", model = \"e\" }]\n";
    let (mut server, base) = serve_with(dir.path(), &up, models).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (kind, body) in [
        ("chat/completions", json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})),
        ("chat/completions", json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}]})),
        ("embeddings", json!({"model": "emb", "input": "hello"})),
    ] {
        let resp = client.post(format!("{base}/v1/{kind}")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{kind}");
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
        let _ = resp.bytes().await;
    }
    // Killed the moment the answers are in: no shutdown, no flush. The next start replays
    // what the process's usage journal holds before it serves.
    server.kill().unwrap();
    server.wait().unwrap();
    let (mut server, _) = serve_with(dir.path(), &up, models).await;
    let store = cairn_store::open(&format!("sqlite://{}", dir.path().join("cairn.db").display()), 1).await.unwrap();
    for id in &ids {
        let records = store.usage_by_request(id).await.unwrap();
        assert_eq!(records.len(), 1, "request {id}: {records:?}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn a_stderr_nobody_reads_never_stalls_requests() {
    let dir = tempfile::tempdir().unwrap();
    // Every request logs an access line at `info`; the pipe holds 64 KiB, a few hundred lines.
    std::fs::write(dir.path().join("cairn.toml"), "[log]\nlevel = \"info\"\nformat = \"json\"\n").unwrap();
    let (mut unread, stderr) = std::io::pipe().unwrap();
    let port = free_port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--config"])
        .arg(dir.path().join("cairn.toml"))
        .env("CAIRN_ADMIN_KEY", ADMIN_KEY)
        .env("CAIRN_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("CAIRN_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let base = ready(&client, port).await;
    for i in 0..2_000 {
        let resp = client.get(format!("{base}/v1/models")).bearer_auth(ADMIN_KEY).send().await;
        assert!(resp.is_ok_and(|r| r.status() == 200), "request {i} failed with stderr unread");
    }
    let metrics = client.get(format!("{base}/metrics")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("cairn_log_lines_dropped_total"), "{metrics}");
    server.kill().unwrap();
    server.wait().unwrap();
    let mut logged = String::new();
    std::io::Read::read_to_string(&mut unread, &mut logged).unwrap();
    assert!(logged.contains("cairn is listening"), "{logged}");
}

#[tokio::test]
async fn a_scrape_token_reads_the_metrics_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let token = "scrape-token-for-prometheus-0123456789";
    let port = free_port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("CAIRN_ADMIN_KEY", ADMIN_KEY)
        .env("CAIRN_METRICS_TOKEN", token)
        .env("CAIRN_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("CAIRN_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = ready(&client, port).await;
    let status = |path: &str, secret: &str| {
        let req = client.get(format!("{base}{path}")).bearer_auth(secret).send();
        async move { req.await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/metrics", token).await, 200);
    assert_eq!(status("/metrics", &format!("{token}x")).await, 401);
    assert_eq!(status("/v1/models", token).await, 401, "the scrape token opened an API route");
    assert_eq!(status("/metrics", ADMIN_KEY).await, 200);
    server.kill().unwrap();
    server.wait().unwrap();

    // A token as guessable as a short password is refused at startup, without printing it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("CAIRN_METRICS_TOKEN", "hunter2")
        .env("CAIRN_SERVER__BIND", format!("127.0.0.1:{}", free_port()))
        .env("CAIRN_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("CAIRN_METRICS_TOKEN must have at least 32 characters"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
    // `cairn config check` finds it too, before anything starts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["config", "check", "--config"])
        .arg(&config)
        .env("CAIRN_METRICS_TOKEN", "hunter2")
        .env("CAIRN_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("CAIRN_METRICS_TOKEN must have at least 32 characters"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}
