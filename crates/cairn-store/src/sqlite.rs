//! The embedded store: one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use cairn_core::store::{StoreError, StoreResult};
use cairn_core::usage::Settlement;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::db_err;
use crate::inline::INLINE_ROWS;
use crate::migrate::run_migrations;
use crate::tx::Begin as _;
use crate::writer::{SqliteWriter, WeakWriter};

/// Cairn's state in a SQLite database file.
///
/// Reads go to a pool of connections; writes to a single writer connection (beside which small
/// usage batches have a synchronous one, under the same lock: `crate::inline`). SQLite admits one
/// writer at a time anyway, and writers of the same process contending for its lock would wait
/// in SQLite's busy handler, which sleeps; queueing them on one connection instead costs nothing.
/// Other processes sharing the file still wait in the busy handler (`busy_timeout`).
///
/// Traces live in a second file beside it (`NAME-traces.db`): span batches then never hold the
/// main file's write lock, which usage records (that responses wait for) and run journals need.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) writer: SqliteWriter,
    pub(crate) trace_pool: SqlitePool,
    pub(crate) trace_writer: SqliteWriter,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path, max_connections: u32) -> StoreResult<Self> {
        let opts = options(path)?.foreign_keys(true);
        // The writer never checkpoints the WAL itself (a checkpoint's fsync would stall the
        // request that happened to commit past the threshold); a background task does, in
        // PASSIVE mode, which runs beside writers without blocking them.
        let writer_opts = opts.clone().pragma("wal_autocheckpoint", "0");
        let writer = SqliteWriter::open_with_inline(&writer_opts).await.map_err(db_err)?;
        {
            let mut conn = writer.acquire().await;
            let mut tx = conn.begin_tx().await.map_err(db_err)?;
            run_migrations!(tx, crate::migrate::SQLITE)?;
            tx.commit().await.map_err(db_err)?;
        }
        let pool = pool_options().max_connections(max_connections.max(1)).connect_with(opts).await.map_err(db_err)?;
        tokio::spawn(checkpoints(writer.downgrade(), CheckpointThrough::Readers(pool.clone())));
        let (trace_pool, trace_writer) = open_traces(&traces_path(path), max_connections).await?;
        Ok(Self { pool, writer, trace_pool, trace_writer })
    }

    /// The main file's write connection, once it is free.
    pub(crate) async fn write_conn(&self) -> StoreResult<tokio::sync::MappedMutexGuard<'_, sqlx::SqliteConnection>> {
        Ok(self.writer.acquire().await)
    }

    /// Writes a small batch of usage records on the calling thread (`crate::inline`): false
    /// when it is not small or another process holds the file's lock, and nothing was written.
    pub(crate) async fn insert_usage_inline(&self, records: &[Settlement]) -> StoreResult<bool> {
        if records.len() > INLINE_ROWS {
            return Ok(false);
        }
        match self.writer.acquire_all().await.inline.as_mut() {
            Some(inline) => inline.insert_usage(records),
            None => Ok(false),
        }
    }

    /// The traces file's write connection, once it is free.
    pub(crate) async fn trace_write_conn(
        &self,
    ) -> StoreResult<tokio::sync::MappedMutexGuard<'_, sqlx::SqliteConnection>> {
        Ok(self.trace_writer.acquire().await)
    }
}

/// Pool settings for a local file: no ping before each use (a connection to a file does not
/// go stale as a network one does, and the ping is a round trip to the connection's thread
/// on every query).
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().test_before_acquire(false)
}

/// Makes the file at `path` owner-only and returns how Cairn connects to it: created if
/// missing, WAL journal, NORMAL sync (committed transactions survive a process crash; only an
/// OS crash can lose the last few, the usual trade for embedded servers), a 10 s busy wait.
fn options(path: &Path) -> StoreResult<SqliteConnectOptions> {
    private_files(path).map_err(|e| StoreError::Backend(format!("cannot prepare {}: {e}", path.display())))?;
    Ok(SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(db_err)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10)))
}

/// Where the traces of the database at `path` live: `NAME-traces.EXT` beside it.
pub fn traces_path(path: &Path) -> std::path::PathBuf {
    let stem = file_stem(path);
    let name = match path.extension() {
        Some(ext) => format!("{stem}-traces.{}", ext.to_string_lossy()),
        None => format!("{stem}-traces"),
    };
    path.with_file_name(name)
}

/// The database file's name without its extension, which the files beside it are named after.
pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "cairn".into())
}

/// Opens (creating) the traces file: its own writer and readers, its tables made if missing.
/// Its schema is the traces migration alone, written to be applied again harmlessly.
async fn open_traces(path: &Path, max_connections: u32) -> StoreResult<(SqlitePool, SqliteWriter)> {
    let opts = options(path)?;
    // Span batches land all over the indexes: a larger page cache for the writer (64 MiB)
    // keeps them from rereading pages.
    let writer_opts = opts.clone().pragma("wal_autocheckpoint", "0").pragma("cache_size", "-65536");
    let writer = background_writer(writer_opts).await?;
    sqlx::raw_sql(crate::migrate::TRACES_SQL).execute(&mut *writer.acquire().await).await.map_err(db_err)?;
    let pool = pool_options().max_connections(max_connections.clamp(1, 4)).connect_with(opts).await.map_err(db_err)?;
    // Checkpointed by the writer itself: its thread runs at background priority (above).
    tokio::spawn(checkpoints(writer.downgrade(), CheckpointThrough::Writer));
    Ok((pool, writer))
}

/// The traces writer: one connection, opened from a thread at background priority. SQLite
/// runs each connection on a thread of its own, which inherits its creator's priority, so span
/// batches yield the CPU to requests on a busy machine. The connection lives as long as the
/// store, so it keeps that thread.
async fn background_writer(opts: SqliteConnectOptions) -> StoreResult<SqliteWriter> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    cairn_core::priority::spawn_background("cairn-traces-open", async move {
        let _ = tx.send(SqliteWriter::open(&opts).await.map_err(db_err));
    })
    .map_err(|e| StoreError::Backend(format!("cannot start the traces writer: {e}")))?;
    rx.await.map_err(|_| StoreError::Backend("the traces writer did not open".into()))?
}

/// Which connection checkpoints a file's WAL.
enum CheckpointThrough {
    /// A reader of the pool: PASSIVE mode runs beside the writer without blocking it.
    Readers(SqlitePool),
    /// The writer itself, so the work runs on its thread and at its priority.
    Writer,
}

/// Checkpoints the WAL every second until the store owning `writer` is gone (then the task
/// ends and lets go of its connections).
async fn checkpoints(writer: WeakWriter, through: CheckpointThrough) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(writer) = writer.upgrade() else { return };
        let checkpoint = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)");
        let done = match &through {
            CheckpointThrough::Readers(pool) => checkpoint.execute(pool).await,
            CheckpointThrough::Writer => checkpoint.execute(&mut *writer.acquire().await).await,
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

/// Makes the database owner-only: its folder 0700 (created so, or tightened unless it is a
/// shared sticky folder such as `/tmp`, the root or the home folder), the database file 0600
/// before SQLite opens it. SQLite gives its `-wal` and `-shm` files the
/// database file's mode; existing ones are tightened too.
fn private_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let owner_only = |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if dir.exists() {
                let sticky = std::fs::metadata(dir)?.permissions().mode() & 0o1000 != 0;
                let canonical = dir.canonicalize()?;
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                let shared = sticky || canonical.parent().is_none() || home.is_some_and(|h| h == canonical);
                if !shared {
                    owner_only(dir, 0o700)?;
                }
            } else {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            }
        }
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        owner_only(path, 0o600)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                owner_only(&side, 0o600)?;
            }
        }
    }
    #[cfg(not(unix))]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
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

/// The agents port, implemented with the shared SQL.
mod agent_ports {
    use super::SqliteStore;
    crate::agents_sql::impl_agent_store!(SqliteStore, sqlx::Sqlite);
}

/// The runs port, implemented with the shared SQL.
mod run_ports {
    use super::SqliteStore;
    crate::runs_sql::impl_run_store!(SqliteStore, sqlx::Sqlite, "");
}

/// The shared rate buckets, implemented with the shared SQL.
mod rate_ports {
    use super::SqliteStore;
    crate::rates_sql::impl_rate_store!(SqliteStore, sqlx::Sqlite);
}

/// The knowledge port, implemented with the shared SQL.
mod knowledge_ports {
    use super::SqliteStore;
    crate::knowledge_sql::impl_knowledge_store!(SqliteStore, sqlx::Sqlite, "", super::no_search);
}

/// The traces port, implemented with the shared SQL.
mod trace_ports {
    use super::SqliteStore;
    crate::traces_sql::impl_trace_store!(SqliteStore, sqlx::Sqlite, trace_write_conn, trace_pool);
}

/// The feedback port, implemented with the shared SQL.
mod feedback_ports {
    use super::SqliteStore;
    crate::feedback_sql::impl_feedback_store!(SqliteStore, sqlx::Sqlite);
}

/// The response cache port, implemented with the shared SQL.
mod cache_ports {
    use super::SqliteStore;
    crate::cache_sql::impl_cache_store!(SqliteStore, sqlx::Sqlite);
}

/// The audit log port, implemented with the shared SQL.
mod audit_ports {
    use super::SqliteStore;
    crate::audit_sql::impl_audit_store!(SqliteStore, sqlx::Sqlite, "");
}

/// SQLite searches in memory (`cairn_knowledge::live`): its writes keep no search tables.
mod no_search {
    use cairn_core::knowledge::{ChunkRecord, Collection};
    use sqlx::{Sqlite, Transaction};

    pub(crate) async fn collection_created(_: &mut Transaction<'_, Sqlite>, _: &Collection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    pub(crate) async fn collection_deleted(_: &mut Transaction<'_, Sqlite>, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    pub(crate) async fn document_removed(_: &mut Transaction<'_, Sqlite>, _: &str, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    pub(crate) async fn chunks_replaced(
        _: &mut Transaction<'_, Sqlite>,
        _: &str,
        _: &str,
        _: &[i64],
        _: &[ChunkRecord],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
