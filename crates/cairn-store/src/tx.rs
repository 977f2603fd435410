//! Write transactions that a caller dropped half-way cannot leave open.
//!
//! sqlx's PostgreSQL `begin` sends `BEGIN`, waits for the answer, and only then counts the
//! transaction as open. A caller dropped while it waits (a client that hung up, a timeout)
//! leaves the pooled connection inside a transaction that nothing will end: the next borrower's
//! writes go into it, hold their locks and are never committed (sqlx issue 4393; 0.8.6 and
//! 0.9.0 both have it). So on PostgreSQL a write transaction is begun and ended here with plain
//! statements, under a guard armed before `BEGIN` is sent: unless `COMMIT` came back, the
//! connection is closed instead of going back to the pool, and the server rolls back what it
//! held. An error half-way costs a reconnect, which is rare. SQLite's `begin` queues its
//! rollback on the connection's own thread when dropped, so sqlx's transaction is kept there.
//!
//! Every write transaction in this crate begins with [`Begin::begin_tx`].

use std::ops::{Deref, DerefMut};

use futures::future::BoxFuture;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection};

/// A connection that write transactions begin on.
///
/// Its futures are boxed: an `impl Future` here, driven from `async_trait` methods, trips the
/// compiler's higher-ranked `Send` checks over sqlx's executor lifetimes.
pub(crate) trait Begin<DB: TxOf>: Send {
    /// Begins a write transaction; statements run through `&mut *tx`.
    fn begin_tx(&mut self) -> BoxFuture<'_, Result<Tx<'_, DB>, sqlx::Error>>;
}

/// The write transaction type of a database.
pub(crate) trait TxOf: sqlx::Database {
    /// An open transaction, dereferencing to the connection it runs on.
    type Tx<'c>: DerefMut<Target = Self::Connection> + Send;
}

/// An open write transaction on `DB`.
pub(crate) type Tx<'c, DB> = <DB as TxOf>::Tx<'c>;

impl TxOf for Sqlite {
    type Tx<'c> = sqlx::Transaction<'c, Sqlite>;
}

impl TxOf for Postgres {
    type Tx<'c> = PgTx<'c>;
}

impl Begin<Sqlite> for SqliteConnection {
    fn begin_tx(&mut self) -> BoxFuture<'_, Result<Tx<'_, Sqlite>, sqlx::Error>> {
        sqlx::Connection::begin(self)
    }
}

impl Begin<Sqlite> for tokio::sync::MappedMutexGuard<'_, SqliteConnection> {
    fn begin_tx(&mut self) -> BoxFuture<'_, Result<Tx<'_, Sqlite>, sqlx::Error>> {
        sqlx::Connection::begin(&mut **self)
    }
}

impl Begin<Postgres> for PoolConnection<Postgres> {
    fn begin_tx(&mut self) -> BoxFuture<'_, Result<Tx<'_, Postgres>, sqlx::Error>> {
        Box::pin(async move {
            let tx = PgTx { conn: self, open: true };
            sqlx::query("BEGIN").execute(&mut **tx.conn).await?;
            Ok(tx)
        })
    }
}

/// A PostgreSQL transaction on a pooled connection: its connection is closed, not pooled,
/// unless [`PgTx::commit`] returned.
pub(crate) struct PgTx<'c> {
    conn: &'c mut PoolConnection<Postgres>,
    /// True until `COMMIT` came back.
    open: bool,
}

impl<'c> PgTx<'c> {
    /// Commits the transaction.
    pub(crate) fn commit(mut self) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::query("COMMIT").execute(&mut **self.conn).await?;
            self.open = false;
            drop(self);
            Ok(())
        })
    }
}

impl Deref for PgTx<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
    }
}

impl DerefMut for PgTx<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}
