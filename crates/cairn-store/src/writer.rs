//! A SQLite file's one write connection, taken in turn.

use std::sync::{Arc, Weak};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::ConnectOptions;
use tokio::sync::{Mutex, MutexGuard};

/// The single connection a SQLite store writes through; writers queue for it in order.
///
/// A mutex rather than a one-connection sqlx pool: the pool tests each connection it takes back
/// with a ping, a round trip to the connection's thread in a task of its own, so every write
/// cost two more thread hand-offs (and the next writer waited for them). A file's connection
/// does not go stale, and one whose transaction was dropped half-way has its rollback queued
/// ahead of the next writer's statements on the same thread, so nothing needs testing.
#[derive(Clone)]
pub(crate) struct SqliteWriter(Arc<Mutex<SqliteConnection>>);

impl SqliteWriter {
    /// Opens the connection (on the calling thread's priority: SQLite's thread inherits it).
    pub(crate) async fn open(opts: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        Ok(Self(Arc::new(Mutex::new(opts.connect().await?))))
    }

    /// Waits for the connection.
    pub(crate) async fn acquire(&self) -> MutexGuard<'_, SqliteConnection> {
        self.0.lock().await
    }

    /// A handle that does not keep the connection open (for background upkeep).
    pub(crate) fn downgrade(&self) -> WeakWriter {
        WeakWriter(Arc::downgrade(&self.0))
    }
}

/// A [`SqliteWriter`] that closes once the store is gone.
pub(crate) struct WeakWriter(Weak<Mutex<SqliteConnection>>);

impl WeakWriter {
    /// The writer, while the store holding it is alive.
    pub(crate) fn upgrade(&self) -> Option<SqliteWriter> {
        self.0.upgrade().map(SqliteWriter)
    }
}
