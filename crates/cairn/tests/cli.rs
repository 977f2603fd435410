//! The `cairn` binary's management commands, run as real processes over a temporary data dir.

use std::process::Command;

fn cairn(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_DATA_DIR", data)
        .env_remove("CAIRN_CONFIG")
        .output()
        .expect("run cairn")
}

#[test]
fn the_example_config_is_valid() {
    let path = "../../cairn.example.toml";
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["config", "check", "--config", path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("fast (Chat): openai/gpt-4o-mini -> anthropic/claude-3-5-haiku-latest"), "{stdout}");
}

#[test]
fn an_invalid_config_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[models.x]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n").unwrap();
    let out = cairn(dir.path(), &["config", "check", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("names provider 'nope', which is not configured"));
}

#[test]
fn keys_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["keys", "create", "--tenant", "acme", "--role", "reader", "--rpm", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(secret.starts_with("sk-cairn-"));

    let out = cairn(dir.path(), &["keys", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys[0]["tenant_id"], "acme");
    assert_eq!(keys[0]["limits"]["requests_per_minute"], 60);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(!listing.contains(&secret) && !listing.contains("hash"), "secrets never listed");

    let id = keys[0]["id"].as_str().unwrap();
    assert!(cairn(dir.path(), &["keys", "revoke", id]).status.success());
    let out = cairn(dir.path(), &["keys", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    assert!(!cairn(dir.path(), &["keys", "revoke", "key_missing"]).status.success());
    assert!(!cairn(dir.path(), &["keys", "create", "--role", "wizard"]).status.success());
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["serve", "--help"][..],
        &["keys", "create", "--help"],
        &["keys", "list", "--help"],
        &["config", "check", "--help"],
        &["tenants", "create", "--help"],
        &["worker", "--help"],
        &["jobs", "list", "--help"],
        &["jobs", "show", "--help"],
        &["jobs", "watch", "--help"],
        &["jobs", "enqueue", "--help"],
        &["jobs", "cancel", "--help"],
        &["jobs", "retry", "--help"],
        &["jobs", "retry-dead", "--help"],
        &["jobs", "purge", "--help"],
        &["models", "pull", "--help"],
        &["ingest", "--help"],
        &["ask", "--help"],
        &["eval", "retrieval", "--help"],
        &["agents", "create", "--help"],
        &["agents", "list", "--help"],
        &["agents", "show", "--help"],
        &["run", "--help"],
    ] {
        let out = cairn(dir.path(), args);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Example"), "{args:?}");
    }
}

#[test]
fn jobs_are_enqueued_listed_cancelled_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["jobs", "enqueue", "noop", "--payload", "{\"a\": 1}", "--idempotency-key", "k1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(id.starts_with("job_"));
    // Same key: same job.
    let again = cairn(dir.path(), &["jobs", "enqueue", "noop", "--idempotency-key", "k1"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);

    let out = cairn(dir.path(), &["jobs", "list", "--json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((jobs[0]["id"].as_str(), jobs[0]["state"].as_str()), (Some(id.as_str()), Some("queued")));
    let show = cairn(dir.path(), &["jobs", "show", &id]);
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(detail["payload"], serde_json::json!({"a": 1}));

    let out = cairn(dir.path(), &["jobs", "cancel", &id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cancelled"));
    let out = cairn(dir.path(), &["jobs", "list", "--state", "cancelled"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    // Purge with a zero age deletes the finished job.
    let out = cairn(dir.path(), &["jobs", "purge", "--older-than", "0s"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 finished jobs deleted"), "{out:?}");

    // Bad input is explained, not a crash.
    for bad in [
        &["jobs", "enqueue", "nope"][..],
        &["jobs", "enqueue", "noop", "--payload", "{oops"],
        &["jobs", "list", "--state", "done"],
        &["jobs", "purge", "--older-than", "7w"],
        &["jobs", "show", "job_missing"],
        &["worker", "--types", "nope"],
    ] {
        let out = cairn(dir.path(), bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error:"), "{bad:?}");
    }
}
