//! The embedded store: one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use cairn_core::store::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::db_err;
use crate::migrate::run_migrations;

/// Cairn's state in a SQLite database file.
///
/// Reads go to a pool of connections; writes to a single writer connection. SQLite admits one
/// writer at a time anyway, and writers of the same process contending for its lock would wait
/// in SQLite's busy handler, which sleeps; queueing them on one connection instead costs nothing.
/// Other processes sharing the file still wait in the busy handler (`busy_timeout`).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path, max_connections: u32) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: committed transactions survive a process crash; only an OS
            // crash can lose the last few, which is the usual trade for embedded servers.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await.map_err(db_err)?;
        let mut tx = writer.begin().await.map_err(db_err)?;
        run_migrations!(tx, crate::migrate::SQLITE)?;
        tx.commit().await.map_err(db_err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        Ok(Self { pool, writer })
    }
}

/// The storage ports, implemented with the shared SQL.
mod ports {
    use super::SqliteStore;
    crate::sql::impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");
}

/// The job queue port, implemented with the shared SQL. SQLite runs one write transaction at a
/// time, so a claim's `UPDATE ... WHERE id IN (SELECT ...)` needs no row locks.
mod job_ports {
    use super::SqliteStore;
    crate::jobs_sql::impl_job_store!(SqliteStore, sqlx::Sqlite, "");
}

/// The knowledge port, implemented with the shared SQL.
mod knowledge_ports {
    use super::SqliteStore;
    crate::knowledge_sql::impl_knowledge_store!(SqliteStore, sqlx::Sqlite, "");
}
