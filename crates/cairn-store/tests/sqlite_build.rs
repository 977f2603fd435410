//! How the bundled SQLite is built (see `.cargo/config.toml`): its connections share no
//! mutex on their hot paths, so a background-priority thread holding one cannot stall
//! request threads.

use cairn_store::SqliteStore;

/// No global memory statistics: their mutex is taken on every allocation.
#[tokio::test]
async fn sqlite_keeps_no_memory_statistics() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Opening migrates the file: thousands of allocations.
    drop(SqliteStore::open(&dir.path().join("cairn.db"), 2).await.expect("open"));
    // With statistics on, every connection's allocations are counted here.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    assert_eq!(used, 0, "SQLite counts its memory: build it with SQLITE_DEFAULT_MEMSTATUS=0");
}

/// A page cache per connection, not one behind a process-wide mutex.
#[test]
fn sqlite_gives_each_connection_its_own_page_cache() {
    let conn = rusqlite::Connection::open_in_memory().expect("open");
    let mut stmt = conn.prepare("PRAGMA compile_options").expect("prepare");
    let options: Vec<String> =
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
    assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
    assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "one shared page cache: {options:?}");
}
