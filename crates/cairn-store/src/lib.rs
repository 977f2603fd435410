//! Storage adapters: SQLite (embedded default) and PostgreSQL (scale-out) implementations of
//! the ports in `cairn_core::store`. Both run the same SQL and pass the same conformance suite.

#![warn(missing_docs)]

mod agents_sql;
mod audit_sql;
mod cache_sql;
mod feedback_sql;
mod filter_sql;
mod inline;
mod jobs_sql;
mod knowledge_sql;
mod migrate;
mod postgres;
mod rates_sql;
mod runs_sql;
mod search_pg;
mod sql;
mod sqlite;
mod traces_sql;
mod tx;
mod usage_row;
mod writer;

pub mod conformance;

use std::sync::Arc;

use cairn_core::search::SearchStore;
use cairn_core::store::{Store, StoreError, StoreResult};

pub use postgres::PgStore;
pub use sqlite::{traces_path, SqliteStore};

/// Opens the store named by `url` (`sqlite://PATH` or `postgres://...`), creating the SQLite
/// file and its folder if needed, and applies pending migrations.
pub async fn open(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    Ok(open_with_search(url, max_connections).await?.0)
}

/// `open`, with retrieval inside the database when the backend offers it (PostgreSQL).
pub async fn open_with_search(
    url: &str,
    max_connections: u32,
) -> StoreResult<(Arc<dyn Store>, Option<Arc<dyn SearchStore>>)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = PgStore::connect(url, max_connections).await?;
        Ok((Arc::new(pg.clone()), Some(Arc::new(pg))))
    } else if let Some(path) = sqlite_file(url) {
        Ok((Arc::new(SqliteStore::open(path, max_connections).await?), None))
    } else {
        Err(StoreError::Backend(format!("unsupported storage URL '{url}'")))
    }
}

/// The SQLite file a `sqlite://PATH` URL names.
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).map(std::path::Path::new)
}

/// Where the usage journals of the database at `url` live: `NAME-usage/` beside a SQLite
/// file; none on PostgreSQL, whose nodes keep nothing of their own.
pub fn usage_journal_dir(url: &str) -> Option<std::path::PathBuf> {
    sqlite_file(url).map(|path| path.with_file_name(format!("{}-usage", sqlite::file_stem(path))))
}

/// Maps a sqlx error to a classified storage error.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::Conflict("already exists".into());
        }
        if d.is_foreign_key_violation() {
            return StoreError::NotFound("referenced row does not exist".into());
        }
    }
    StoreError::Backend(e.to_string())
}
