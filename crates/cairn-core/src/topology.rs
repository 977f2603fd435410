//! What a node depends on and where each kind of shared state lives: reported by `/readyz`, so
//! an operator can see at a glance whether a node is safe to run beside others.

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Retrieval;

/// Where one kind of state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateHome {
    /// In this process: each node keeps its own.
    Process,
    /// In the database: every node sharing it sees one.
    Database,
    /// In Redis (`redis.url`): every node on it sees one.
    Redis,
}

/// A service a node needs in order to answer, named when `/readyz` finds it unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// The database.
    Storage,
    /// The shared rate buckets' home, when not the database (Redis).
    RateLimits,
}

impl Dependency {
    /// What `/readyz` says is unreachable.
    pub fn unreachable(self) -> &'static str {
        match self {
            Dependency::Storage => "storage unreachable",
            Dependency::RateLimits => "rate limit store unreachable",
        }
    }
}

/// A node's dependencies and state (see the module docs).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Topology {
    /// The storage backend: `sqlite` or `postgres`.
    pub storage: &'static str,
    /// Where searches run: `memory` (each node holds every collection's indexes) or
    /// `database` (inside PostgreSQL; nodes hold no copy of the corpus).
    #[schema(value_type = String)]
    pub retrieval: Retrieval,
    /// Requests- and tokens-per-minute buckets (`gateway.shared_limits`).
    pub rate_limits: StateHome,
    /// Budget reservations and spend (always in the database).
    pub budgets: StateHome,
    /// Circuit breakers: per node, since each node sees its own connections to a provider
    /// fail; a node's breaker opens after its own failures.
    pub circuit_breakers: StateHome,
    /// Provider concurrency caps (`providers.*.max_concurrency`): per node, a bound on the
    /// calls one node has in flight (with N nodes, set each to the provider's limit over N);
    /// sharing it would put a database round trip before and after every model call.
    pub provider_concurrency: StateHome,
    /// Streams open per key (`gateway.max_streams_per_key`): per node, as a bound on what one
    /// node holds open.
    pub streams_per_key: StateHome,
    /// Whether this process also runs jobs (`jobs.workers_in_serve`).
    pub runs_jobs: bool,
}
