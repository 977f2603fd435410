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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../cairn.example.toml");
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
    ] {
        let out = cairn(dir.path(), args);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Example"), "{args:?}");
    }
}
