//! Storage ports: the traits every storage backend implements (SQLite embedded, PostgreSQL
//! scaled out). Services depend on these, never on a concrete database.

use async_trait::async_trait;

use crate::agents::AgentStore;
use crate::jobs::JobStore;
use crate::knowledge::KnowledgeStore;
use crate::runs::RunStore;
use crate::tenancy::{ApiKey, Tenant};
use crate::trace::TraceStore;
use crate::usage::{NanoUsd, Reservation, ReserveOutcome, Settlement, UsageBucket, UsageQuery, UsageRecord};

/// A storage failure, classified so services can map it to a client error or an internal one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named row does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique constraint would be violated.
    #[error("{0}")]
    Conflict(String),
    /// The database failed or is unreachable.
    #[error("storage error: {0}")]
    Backend(String),
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Tenants.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Inserts a tenant; `Conflict` if the id is taken.
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// Fetches one tenant.
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    /// Lists all tenants, oldest first.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// The tenant's secret for `purpose`, storing `candidate` first if it has none (so
    /// concurrent first uses on several nodes agree on one).
    async fn tenant_secret(&self, tenant_id: &str, purpose: &str, candidate: &str) -> StoreResult<String>;
    /// Replaces the tenant's secret for `purpose` with `secret`.
    async fn set_tenant_secret(&self, tenant_id: &str, purpose: &str, secret: &str) -> StoreResult<()>;
}

/// API keys (hashes only).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts a key; `NotFound` if its tenant does not exist.
    async fn insert_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// Finds a key (revoked or not) by the SHA-256 hash of its secret.
    async fn find_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Fetches one key by id.
    async fn get_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;
    /// Lists keys, of one tenant or all, oldest first.
    async fn list_keys(&self, tenant_id: Option<&str>) -> StoreResult<Vec<ApiKey>>;
    /// Marks a key revoked at `at_ms` (idempotent: keeps the first revocation time).
    async fn revoke_key(&self, id: &str, at_ms: i64) -> StoreResult<ApiKey>;
    /// Counts active (not revoked) owner keys.
    async fn count_active_owner_keys(&self) -> StoreResult<u64>;
}

/// Which of a key's rate buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateKind {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

impl RateKind {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            RateKind::Requests => "requests",
            RateKind::Tokens => "tokens",
        }
    }
}

/// One take from a shared rate bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateTake {
    /// Capacity and refill rate, per minute (the key's limit).
    pub per_minute: f64,
    /// The least level (after refilling) at which the take is allowed.
    pub need: f64,
    /// How much to take when allowed (may leave the bucket in debt).
    pub take: f64,
    /// The caller's clock, Unix ms.
    pub now_ms: i64,
}

/// Per-key token buckets kept outside any one process (in the database, or Redis), so that
/// every node sharing them enforces one limit: each take refills the bucket to `now_ms` and
/// takes, or refuses, in one atomic step.
#[async_trait]
pub trait RateStore: Send + Sync {
    /// Refills the key's `kind` bucket, then takes `t.take` if its level is at least `t.need`:
    /// `Ok(level)` after taking, or `Err(level)` when refused (nothing taken).
    async fn take_rate(&self, key_id: &str, kind: RateKind, t: RateTake) -> StoreResult<Result<f64, f64>>;
    /// Refills the bucket and adds `amount` (capped at capacity; negative charges it).
    async fn add_rate(
        &self,
        key_id: &str,
        kind: RateKind,
        per_minute: f64,
        amount: f64,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Takes from several of the key's buckets as one: every take in `takes` if each is
    /// allowed (`Ok(Ok(()))`), else none and `Ok(Err((i, level)))` for the first refused, `i`
    /// its index. This default takes one bucket after another and gives back what it took when
    /// a later one refuses (a failed give-back only leaves a bucket lower until it refills);
    /// a store that can do it in one atomic step should.
    async fn take_rates(&self, key_id: &str, takes: &[(RateKind, RateTake)]) -> StoreResult<Result<(), (usize, f64)>> {
        for (i, (kind, t)) in takes.iter().enumerate() {
            if let Err(level) = self.take_rate(key_id, *kind, *t).await? {
                for (kind, t) in &takes[..i] {
                    let _ = self.add_rate(key_id, *kind, t.per_minute, t.take, t.now_ms).await;
                }
                return Ok(Err((i, level)));
            }
        }
        Ok(Ok(()))
    }
    /// Checks the buckets' home answers, when it is not the database (which `/readyz` checks
    /// already).
    async fn ping_rates(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Accounting records and the budget reservations they settle.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Appends records in one transaction; a record whose id exists already is skipped. Each
    /// new record with a reservation settles its call in the same transaction: its cost moves
    /// from the reservation (never below zero) to its key's settled spend for the month.
    async fn insert_usage(&self, records: &[Settlement]) -> StoreResult<()>;
    /// Decides each request in order, in one transaction: grows reservation `r.id` (created if
    /// absent or lapsed) by `r.amount` plus what fits of `r.extra`, if settled spend plus every
    /// live reservation (those decided before it in the batch included) plus `r.amount` fits
    /// the budget. Atomic across every process sharing the database.
    async fn reserve_budgets(&self, batch: &[Reservation]) -> StoreResult<Vec<ReserveOutcome>>;
    /// Drops reservations (a node gives back credit it no longer needs); calls still settling
    /// against them then only add to settled spend.
    async fn release_reservations(&self, ids: &[String]) -> StoreResult<()>;
    /// The key's settled spend this month and what its live reservations hold (for tests and
    /// support).
    async fn budget_state(&self, key_id: &str, month_start_ms: i64, now_ms: i64) -> StoreResult<(NanoUsd, NanoUsd)>;
    /// Aggregates records by day, tenant, model and key.
    async fn usage_buckets(&self, query: &UsageQuery) -> StoreResult<Vec<UsageBucket>>;
    /// Fetches one record by call id (for tests and support).
    async fn get_usage(&self, id: &str) -> StoreResult<Option<UsageRecord>>;
    /// Every call one request made, oldest first (for tests and support).
    async fn usage_by_request(&self, request_id: &str) -> StoreResult<Vec<UsageRecord>>;
}

/// Everything Cairn stores, in one handle.
#[async_trait]
pub trait Store:
    TenantStore
    + KeyStore
    + UsageStore
    + RateStore
    + JobStore
    + KnowledgeStore
    + AgentStore
    + RunStore
    + TraceStore
    + crate::trace::FeedbackStore
    + crate::cache::ResponseCacheStore
    + crate::audit::AuditStore
{
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}
