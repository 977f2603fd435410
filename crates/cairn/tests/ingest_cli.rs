//! `cairn ingest` as a real process against a real server over loopback: folders are walked
//! (hidden and unsupported files skipped), the collection is created on first use, every
//! document becomes searchable, a second run finds everything unchanged, and a refused batch
//! (a corrupt PDF) fails the command with the server's reason and stores nothing of it.
//! `cairn ask` prints a streamed answer and what it cites.

use std::path::Path;
use std::process::{Command, Output};

use cairn_testkit::{StandIn, TestServer};
use serde_json::json;

async fn cairn(base: &str, key: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args).env("CAIRN_URL", base).env("CAIRN_API_KEY", key).env_remove("CAIRN_CONFIG");
    tokio::task::spawn_blocking(move || cmd.output().expect("run cairn")).await.unwrap()
}

async fn ingest(base: &str, key: &str, args: &[&str]) -> Output {
    let args: Vec<&str> = std::iter::once("ingest").chain(args.iter().copied()).collect();
    cairn(base, key, &args).await
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_ingested_with_stable_ids_and_bad_files_refused() {
    let up = StandIn::start().await;
    let config = format!(
        "[jobs]\npoll_ms = 20\n[knowledge]\nanswer_model = \"writer\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.emb]\nkind = \"embedding\"\ntargets = [{{ provider = \"up\", model = \"e\" }}]\n\
         [models.writer]\ntargets = [{{ provider = \"up\", model = \"w\" }}]\n",
        up.openai_url()
    );
    let s = TestServer::start(&config).await;
    let key = s.key("acme", "member", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "guide.md", b"# Guide\n\nKettles boil water.");
    write(dir.path(), "faq/lids.txt", b"Spare lids are sold separately.");
    write(dir.path(), ".secret.md", b"hidden");
    write(dir.path(), "tool.exe", b"MZ");
    let folder = dir.path().to_str().unwrap();

    let out = ingest(&s.base, &key, &[folder, "--collection", "kb", "--embedding-model", "emb"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Creating collection 'kb'") && err.contains("2 skipped"), "{err}");
    assert!(err.contains("Done: 2 documents searchable (0 unchanged), 0 failed."), "{err}");
    let (_, cols) = s.get("/v1/collections", &key).await;
    let col = cols["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, doc) = s.get(&format!("/v1/collections/{col}/documents/faq%2Flids.txt"), &key).await;
    assert_eq!((status, doc["state"].as_str()), (200, Some("ready")), "{doc}");
    let (_, hits) = s
        .post(&format!("/v1/collections/{col}/search"), &key, &json!({"query": "spare lids", "mode": "keyword"}))
        .await;
    assert_eq!(hits["data"][0]["document_id"], "faq/lids.txt");

    // `cairn ask` streams the answer, then names what it cites.
    up.reply_with(&["Spare lids ", "are sold separately [1]."]);
    let out = cairn(&s.base, &key, &["ask", "--collection", "kb", "Can I buy a spare lid?"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("Spare lids are sold separately [1].\n"), "{text}");
    // The stand-in's vectors do not rank by meaning: any of the two documents may be source 1.
    assert!(
        text.contains("Cited:\n  [1] lids (faq/lids.txt)") || text.contains("Cited:\n  [1] Guide (guide.md)"),
        "{text}"
    );
    let out = cairn(&s.base, &key, &["ask", "--collection", "nope", "Anything?"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no collection 'nope'"));

    let out = ingest(&s.base, &key, &[folder, "--collection", &col]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Done: 2 documents searchable (2 unchanged)"), "the same ids, unchanged: {err}");

    write(dir.path(), "broken.pdf", b"%PDF-1.4 this is not really a PDF");
    let out = ingest(&s.base, &key, &[folder, "--collection", "kb"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("stored none of it") && err.contains("broken.pdf"), "{err}");
    let (status, _) = s.get(&format!("/v1/collections/{col}/documents/broken.pdf"), &key).await;
    assert_eq!(status, 404);

    let out = ingest(&s.base, "sk-cairn-wrong", &[folder, "--collection", "kb"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = ingest(&s.base, &key, &["/no/such/path", "--collection", "kb"]).await;
    assert!(!out.status.success());
}
