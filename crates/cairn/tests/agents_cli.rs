//! `cairn agents` and `cairn run` as real processes against a real server over loopback: an
//! agent is created from a file and updated by name, listed and shown; `cairn run` streams a
//! run, asks on the terminal about a call that needs approval (answered from stdin), and
//! prints the tool call and the answer.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use cairn_testkit::{Receiver, Scripted, StandIn, TestServer};
use serde_json::json;

/// Runs `cairn ARGS` against `base` with `key`, feeding `stdin`.
async fn cairn(base: &str, key: &str, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args)
        .env("CAIRN_URL", base)
        .env("CAIRN_API_KEY", key)
        .env_remove("CAIRN_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("run cairn");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_managed_and_run_from_the_terminal() {
    let up = StandIn::start().await;
    let receiver = Receiver::start().await;
    let config = format!(
        "[jobs]\npoll_ms = 20\nwebhook_allowed_hosts = [\"127.0.0.1\"]\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.fast]\ntargets = [{{ provider = \"up\", model = \"m\" }}]\n",
        up.openai_url()
    );
    let s = TestServer::start(&config).await;
    let key = s.key("acme", "member", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("support.json");
    let spec = |instructions: &str| {
        json!({
            "name": "support", "model": "fast", "instructions": instructions,
            "tools": {"refund": {"type": "webhook", "approval": "always", "description": "Refunds an order.",
                "webhook": {"url": receiver.url(), "parameters": {"type": "object", "required": ["order"],
                    "properties": {"order": {"type": "integer"}}}}}},
        })
    };
    std::fs::write(&file, spec("Be brief.").to_string()).unwrap();
    let path = file.to_str().unwrap();

    let out = cairn(&s.base, &key, &["agents", "create", path], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 1"));
    // The same name again is an update: a new version.
    std::fs::write(&file, spec("Be kind.").to_string()).unwrap();
    let out = cairn(&s.base, &key, &["agents", "create", path], "").await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 2"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = cairn(&s.base, &key, &["agents", "list"], "").await;
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("support") && listed.contains("tools=[refund]"), "{listed}");
    let out = cairn(&s.base, &key, &["agents", "show", "support"], "").await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"instructions\": \"Be kind.\""));
    let out = cairn(&s.base, &key, &["agents", "show", "nobody"], "").await;
    assert!(!out.status.success());

    // Approved on the terminal: the refund is made and the answer printed.
    up.script([
        Scripted::Calls(vec![("refund".into(), json!({"order": 7}))]),
        Scripted::Text("Refunded order 7.".into()),
    ]);
    let out = cairn(&s.base, &key, &["run", "support", "Refund order 7"], "a\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("-> refund({\"order\":7})"), "{stdout}");
    assert!(stdout.contains("[a]pprove, [r]eject, [e]dit, re[s]pond?"), "{stdout}");
    assert!(stdout.contains("Refunded order 7."), "{stdout}");
    assert_eq!(receiver.deliveries().len(), 1);

    // Rejected on the terminal, with a reason the model reads; nothing is sent.
    up.script([
        Scripted::Calls(vec![("refund".into(), json!({"order": 8}))]),
        Scripted::Text("I did not refund it.".into()),
    ]);
    let out = cairn(&s.base, &key, &["run", "support", "Refund order 8"], "r\nnot eligible\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("I did not refund it."), "{stdout}");
    assert_eq!(receiver.deliveries().len(), 1);
    let last = up.bodies().last().cloned().unwrap();
    assert!(last.to_string().contains("A person rejected this call: not eligible"), "{last}");

    // No answer on stdin: the command fails, saying why.
    up.script([Scripted::Calls(vec![("refund".into(), json!({"order": 9}))])]);
    let out = cairn(&s.base, &key, &["run", "support", "Refund order 9"], "").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin closed"), "{}", String::from_utf8_lossy(&out.stderr));
}
