//! Where per-key rate limits are kept (`gateway.shared_limits`).

use serde::{Deserialize, Serialize};

/// Where the requests- and tokens-per-minute buckets live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedLimits {
    /// `database` on PostgreSQL (several nodes share it), `process` on SQLite.
    #[default]
    Auto,
    /// In this process's memory: no storage round trip, but each process enforces the limit
    /// on its own (two nodes admit twice the rate).
    Process,
    /// In the database, one atomic statement per admission: every process on the database
    /// enforces one limit together.
    Database,
}

impl SharedLimits {
    /// Whether buckets live in the database, for a store of `backend` (`sqlite`, `postgres`).
    pub fn in_database(self, backend: &str) -> bool {
        match self {
            SharedLimits::Auto => backend == "postgres",
            SharedLimits::Process => false,
            SharedLimits::Database => true,
        }
    }
}
