//! The scale-out store: PostgreSQL, shared by any number of stateless Cairn nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_core::store::StoreResult;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::db_err;
use crate::migrate::run_migrations;
use crate::tx::Begin as _;

/// Arbitrary constant naming the advisory lock that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x0CA1_4E00;

/// Cairn's state in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Each collection's search key and dimension, once read (they never change).
    pub(crate) search_keys: Arc<Mutex<HashMap<String, crate::search_pg::SearchKey>>>,
}

impl PgStore {
    /// Connects to `url` and migrates the schema (one node at a time).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        // Ten seconds to reach the server: an unreachable database fails the start quickly.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(db_err)?;
        let mut conn = pool.acquire().await.map_err(db_err)?;
        let mut tx = conn.begin_tx().await.map_err(db_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(db_err)?;
        run_migrations!(tx, crate::migrate::POSTGRES)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Self { pool, search_keys: Arc::default() })
    }

    /// A connection to write through: any of the pool's (PostgreSQL runs concurrent writers
    /// itself; the shared SQL takes a write connection apart for SQLite's sake).
    pub(crate) async fn write_conn(&self) -> StoreResult<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.pool.acquire().await.map_err(db_err)
    }

    /// Never writes usage inline: PostgreSQL's connections are sockets the runtime drives
    /// itself, with no thread of their own to hand statements to.
    pub(crate) async fn insert_usage_inline(&self, _: &[cairn_core::usage::Settlement]) -> StoreResult<bool> {
        Ok(false)
    }

    /// The underlying pool (tests use it to create isolated schemas).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The storage ports, implemented with the shared SQL.
mod ports {
    use super::PgStore;
    crate::sql::impl_store!(PgStore, sqlx::Postgres, "postgres");
}

/// The job queue port, implemented with the shared SQL. Claims skip rows another claimer has
/// locked, so concurrent workers never wait on each other or get the same job.
mod job_ports {
    use super::PgStore;
    crate::jobs_sql::impl_job_store!(PgStore, sqlx::Postgres, " FOR UPDATE SKIP LOCKED");
}

/// The agents port, implemented with the shared SQL.
mod agent_ports {
    use super::PgStore;
    crate::agents_sql::impl_agent_store!(PgStore, sqlx::Postgres);
}

/// The runs port, implemented with the shared SQL.
mod run_ports {
    use super::PgStore;
    crate::runs_sql::impl_run_store!(PgStore, sqlx::Postgres, " FOR UPDATE");
}

/// The shared rate buckets, implemented with the shared SQL.
mod rate_ports {
    use super::PgStore;
    crate::rates_sql::impl_rate_store!(PgStore, sqlx::Postgres);
}

/// The knowledge port, implemented with the shared SQL.
mod knowledge_ports {
    use super::PgStore;
    crate::knowledge_sql::impl_knowledge_store!(
        PgStore,
        sqlx::Postgres,
        // The same lock as `search_pg::KNOWLEDGE_LOCK` (the macro takes a literal).
        "SELECT pg_advisory_xact_lock(202611211)",
        crate::search_pg
    );
}

/// The traces port, implemented with the shared SQL.
mod trace_ports {
    use super::PgStore;
    crate::traces_sql::impl_trace_store!(PgStore, sqlx::Postgres, write_conn, pool);
}

/// The feedback port, implemented with the shared SQL.
mod feedback_ports {
    use super::PgStore;
    crate::feedback_sql::impl_feedback_store!(PgStore, sqlx::Postgres);
}

/// The response cache port, implemented with the shared SQL.
mod cache_ports {
    use super::PgStore;
    crate::cache_sql::impl_cache_store!(PgStore, sqlx::Postgres);
}

/// The audit log port, implemented with the shared SQL.
mod audit_ports {
    use super::PgStore;
    crate::audit_sql::impl_audit_store!(PgStore, sqlx::Postgres, "SELECT pg_advisory_xact_lock(7365726247960167425)");
}
