//! Another process holding the SQLite file's write lock (a `cairn` command, a backup tool)
//! never blocks the runtime: a usage record written on the calling thread gives way to the
//! connection whose own thread waits for the lock.

use std::sync::mpsc;
use std::time::Duration;

use cairn_core::store::UsageStore;
use cairn_core::usage::Settlement;
use cairn_store::{conformance, SqliteStore};

/// How long the lock is held at most if the runtime never shows it is still running; far
/// longer than a few task switches take, far shorter than SQLite's busy waits.
const RUNTIME_SILENT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "current_thread")]
async fn a_locked_file_never_blocks_the_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cairn.db");
    let store = SqliteStore::open(&path, 2).await.expect("open");

    // Another connection takes the write lock and keeps it until the runtime is heard from.
    let (locked_tx, locked_rx) = mpsc::channel();
    let (alive_tx, alive_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).expect("open holder");
        conn.execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO tenants (id, name, created_at_ms) VALUES ('held', 'held', 0);",
        )
        .expect("take the write lock");
        locked_tx.send(()).expect("tell the test");
        let heard = alive_rx.recv_timeout(RUNTIME_SILENT).is_ok();
        conn.execute_batch("COMMIT").expect("release the lock");
        heard
    });
    locked_rx.recv().expect("the lock is held");

    let record = conformance::usage("while-locked", 1_000, "acme", "kb", "fast", 0.5);
    let writing = {
        let store = store.clone();
        let settlement = Settlement { record: record.clone(), reservation_id: None };
        tokio::spawn(async move { store.insert_usage(&[settlement]).await })
    };
    // The one runtime thread runs the write until it waits, then comes back here.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert!(!writing.is_finished(), "the write went through a lock another connection holds");
    let _ = alive_tx.send(());
    let heard = tokio::task::spawn_blocking(move || holder.join().expect("holder")).await.expect("join");
    assert!(heard, "the runtime's only thread was blocked while another connection held the lock");
    writing.await.expect("task").expect("the write lands once the lock is free");
    assert_eq!(store.get_usage("while-locked").await.expect("read"), Some(record));
}
