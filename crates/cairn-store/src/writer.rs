//! A SQLite file's write connections, taken in turn.

use std::sync::{Arc, Weak};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::ConnectOptions;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::inline::InlineConn;

/// What a file's writer lock guards: sqlx's connection, and for the main file an inline one.
pub(crate) struct WriteConns {
    /// The connection any write may use; its statements run on a thread of its own.
    pub(crate) sqlx: SqliteConnection,
    /// A second connection to the same file for short writes run on the caller's thread.
    pub(crate) inline: Option<InlineConn>,
}

/// The connections a SQLite store writes through; writers queue for them in order.
///
/// A mutex rather than a one-connection sqlx pool: the pool tests each connection it takes back
/// with a ping, a round trip to the connection's thread in a task of its own, so every write
/// cost two more thread hand-offs (and the next writer waited for them). A file's connection
/// does not go stale, and one whose transaction was dropped half-way has its rollback queued
/// ahead of the next writer's statements on the same thread, so nothing needs testing.
#[derive(Clone)]
pub(crate) struct SqliteWriter(Arc<Mutex<WriteConns>>);

impl SqliteWriter {
    /// Opens sqlx's connection (on the calling thread's priority: SQLite's thread inherits it).
    pub(crate) async fn open(opts: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        Ok(Self(Arc::new(Mutex::new(WriteConns { sqlx: opts.connect().await?, inline: None }))))
    }

    /// Opens sqlx's connection and an inline one beside it (the file exists by then).
    pub(crate) async fn open_with_inline(opts: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let sqlx = opts.connect().await?;
        let inline = InlineConn::open(opts.get_filename()).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        Ok(Self(Arc::new(Mutex::new(WriteConns { sqlx, inline: Some(inline) }))))
    }

    /// Waits for sqlx's connection.
    pub(crate) async fn acquire(&self) -> MappedMutexGuard<'_, SqliteConnection> {
        MutexGuard::map(self.0.lock().await, |c| &mut c.sqlx)
    }

    /// Waits for both connections.
    pub(crate) async fn acquire_all(&self) -> MutexGuard<'_, WriteConns> {
        self.0.lock().await
    }

    /// A handle that does not keep the connection open (for background upkeep).
    pub(crate) fn downgrade(&self) -> WeakWriter {
        WeakWriter(Arc::downgrade(&self.0))
    }
}

/// A [`SqliteWriter`] that closes once the store is gone.
pub(crate) struct WeakWriter(Weak<Mutex<WriteConns>>);

impl WeakWriter {
    /// The writer, while the store holding it is alive.
    pub(crate) fn upgrade(&self) -> Option<SqliteWriter> {
        self.0.upgrade().map(SqliteWriter)
    }
}
