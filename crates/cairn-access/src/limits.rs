//! Per-key limits, checked and held before a model call runs.
//!
//! - Requests and tokens per minute are token buckets, held in this process or, when shared
//!   (`gateway.shared_limits`: the database by default on PostgreSQL, or Redis), where every
//!   node takes from the same bucket in one atomic step (`RateStore`). A call takes one request
//!   and its worst-case tokens at admission; when it ends, the tokens it did not use go back. A
//!   call is admitted while the token bucket is not in debt, so one call larger than the limit
//!   still runs, alone.
//! - Monthly spend: the call's worst-case cost is held against the budget from this node's
//!   credit, a reservation in storage grown atomically across every process sharing the
//!   database (see `credit`); the call's usage record settles it to the real cost. Keys
//!   without a budget never touch storage here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::store::{RateKind, RateStore, RateTake, Store, StoreError};
use cairn_core::tenancy::Principal;
use cairn_core::time::now_ms;
use cairn_core::usage::NanoUsd;
use cairn_core::{Error, Result};
use parking_lot::Mutex;

use crate::credit::{BudgetHold, Credits};

/// A classic token bucket refilled continuously at `capacity` per minute.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn new(per_minute: f64, now: Instant) -> Self {
        Bucket { capacity: per_minute, level: per_minute, updated: now }
    }

    fn refill(&mut self, per_minute: f64, now: Instant) {
        // A changed limit takes effect at once, without resetting the level.
        self.capacity = per_minute;
        let secs = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + secs * per_minute / 60.0).min(self.capacity);
        self.updated = now;
    }

    /// How long until the level reaches `needed`.
    fn wait_for(&self, needed: f64) -> Duration {
        wait_for(self.level, needed, self.capacity)
    }
}

/// How long a bucket at `level`, refilled at `per_minute`, takes to reach `needed`.
fn wait_for(level: f64, needed: f64, per_minute: f64) -> Duration {
    let deficit = (needed - level).max(0.0);
    Duration::from_secs_f64((deficit * 60.0 / per_minute.max(1.0)).max(0.001))
}

fn tokens_limited(tpm: u64, retry_after: Duration) -> Error {
    Error::RateLimited { message: format!("rate limit reached: {tpm} tokens per minute for this key"), retry_after }
}

fn requests_limited(rpm: u32, retry_after: Duration) -> Error {
    Error::RateLimited { message: format!("rate limit reached: {rpm} requests per minute for this key"), retry_after }
}

#[derive(Debug, Default)]
struct KeyState {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// The most a call may cost, held before it runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorstCase {
    /// Prompt tokens (an upper bound) plus the output cap.
    pub tokens: u64,
    /// Those tokens at the dearest target's prices.
    pub cost: NanoUsd,
    /// How long the call can run at most; its reservation lapses after that.
    pub max_duration: Duration,
}

/// What admission took from the key's limits; `Limiter::settle` gives back what was not used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Admission {
    /// Tokens taken from the key's tokens-per-minute bucket.
    pub tokens: u64,
    /// The call's hold on its key's budget credit (keys with a budget).
    pub budget: Option<BudgetHold>,
}

/// Checks and holds per-key limits.
pub struct Limiter {
    credits: Credits,
    keys: Mutex<HashMap<String, KeyState>>,
    /// The shared buckets (the database's or Redis's), when rate limits are shared across nodes.
    shared: Option<Arc<dyn RateStore>>,
    /// Open streams (model streams, SSE watchers) per key, and the most one key may hold.
    streams: Arc<Mutex<HashMap<String, usize>>>,
    max_streams: usize,
}

/// A place among a key's open streams; given back when dropped (the stream ended).
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    key_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock();
        if let Some(n) = streams.get_mut(&self.key_id) {
            *n -= 1;
            if *n == 0 {
                streams.remove(&self.key_id);
            }
        }
    }
}

impl Limiter {
    /// A limiter holding budget reservations in `store`, with at most `max_streams` streams
    /// open per key; rate buckets in `shared_rates` when given, else in this process.
    pub fn new(store: Arc<dyn Store>, max_streams: usize, shared_rates: Option<Arc<dyn RateStore>>) -> Self {
        Self {
            shared: shared_rates,
            credits: Credits::start(store),
            keys: Mutex::new(HashMap::new()),
            streams: Arc::default(),
            max_streams: max_streams.max(1),
        }
    }

    /// Takes a place among `p`'s open streams (model streams, SSE watchers of jobs and
    /// answers), or fails with `RateLimited` when the key holds as many as it may.
    pub fn open_stream(&self, p: &Principal) -> Result<StreamSlot> {
        let mut streams = self.streams.lock();
        let open = streams.entry(p.key_id.clone()).or_default();
        if *open >= self.max_streams {
            return Err(Error::RateLimited {
                message: format!(
                    "this key already has {} streams open (gateway.max_streams_per_key)",
                    self.max_streams
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *open += 1;
        Ok(StreamSlot { streams: self.streams.clone(), key_id: p.key_id.clone() })
    }

    /// Admits one request that costs work (a search, an upload, a job): takes one request from
    /// the key's rate limit. Model calls made for it then take no second one.
    pub async fn admit_request(&self, p: &Principal) -> Result<()> {
        self.take(p, 0, true).await.map(|_| ())
    }

    /// Admits a model call for `p`, holding its worst case, and one request unless its request
    /// was admitted already; fails with `RateLimited` or `BudgetExceeded` and then holds
    /// nothing.
    pub async fn admit(&self, p: &Principal, worst: &WorstCase, request: bool) -> Result<Admission> {
        let tokens = self.take(p, worst.tokens, request).await?;
        let mut admission = Admission { tokens, budget: None };
        if let Some(budget) = p.limits.monthly_budget_usd {
            match self.credits.hold(p, worst, NanoUsd::from_usd(budget)).await {
                Ok(hold) => admission.budget = Some(hold),
                Err(e) => {
                    match &self.shared {
                        Some(rates) => give_back_shared(&**rates, p, tokens, request).await,
                        None => self.give_back(p, tokens, request),
                    }
                    return Err(e);
                }
            }
        }
        Ok(admission)
    }

    /// Gives back what a finished call did not use of its admission: it used `used` tokens
    /// and cost `cost`.
    pub fn settle(&self, p: &Principal, admission: &Admission, used: u64, cost: NanoUsd) {
        match (&self.shared, p.limits.tokens_per_minute) {
            (Some(rates), Some(tpm)) if used != admission.tokens => {
                // Off the caller's path: the difference reaches the shared bucket shortly.
                let (rates, key) = (rates.clone(), p.key_id.clone());
                let delta = admission.tokens as f64 - used as f64;
                tokio::spawn(async move {
                    if let Err(e) = rates.add_rate(&key, RateKind::Tokens, tpm as f64, delta, now_ms()).await {
                        warn_shared(&e, "settling a shared token bucket failed");
                    }
                });
            }
            (Some(_), _) => {}
            (None, _) if admission.tokens > used => self.give_back(p, admission.tokens - used, false),
            (None, _) if used > admission.tokens => self.charge_tokens(p, used - admission.tokens),
            (None, _) => {}
        }
        if let Some(hold) = &admission.budget {
            self.credits.settle(&p.key_id, hold, cost);
        }
    }

    /// Checks the shared rate buckets answer, when they live outside the database.
    pub async fn ping_rates(&self) -> Result<()> {
        match &self.shared {
            Some(rates) => Ok(rates.ping_rates().await?),
            None => Ok(()),
        }
    }

    /// Gives idle budget credit back to storage, for other nodes (at shutdown).
    pub async fn release_credit(&self) {
        self.credits.release_idle().await;
    }

    /// Takes `tokens` (and one request, if `request`) from the key's buckets, in this process
    /// or the shared ones; returns the tokens taken.
    async fn take(&self, p: &Principal, tokens: u64, request: bool) -> Result<u64> {
        match &self.shared {
            Some(rates) => take_shared(&**rates, p, tokens, request).await,
            None => self.take_rate(p, tokens, request, Instant::now()),
        }
    }

    /// Takes `tokens` (and one request, if `request`) from the key's buckets in this process;
    /// returns the tokens taken.
    fn take_rate(&self, p: &Principal, tokens: u64, request: bool, now: Instant) -> Result<u64> {
        let (rpm, tpm) = (p.limits.requests_per_minute, p.limits.tokens_per_minute);
        if rpm.is_none() && tpm.is_none() {
            return Ok(0);
        }
        let mut keys = self.keys.lock();
        let state = keys.entry(p.key_id.clone()).or_default();
        if let Some(tpm) = tpm {
            let b = state.tokens.get_or_insert_with(|| Bucket::new(tpm as f64, now));
            b.refill(tpm as f64, now);
            if b.level < 0.0 {
                return Err(tokens_limited(tpm, b.wait_for(0.0)));
            }
        }
        if let Some(rpm) = rpm.filter(|_| request) {
            let b = state.requests.get_or_insert_with(|| Bucket::new(f64::from(rpm), now));
            b.refill(f64::from(rpm), now);
            if b.level < 1.0 {
                return Err(requests_limited(rpm, b.wait_for(1.0)));
            }
            b.level -= 1.0;
        }
        match (tpm, state.tokens.as_mut()) {
            (Some(_), Some(b)) => {
                b.level -= tokens as f64;
                Ok(tokens)
            }
            _ => Ok(0),
        }
    }

    /// Returns `tokens` (and the request, for a refused call) to the key's buckets.
    fn give_back(&self, p: &Principal, tokens: u64, request: bool) {
        let mut keys = self.keys.lock();
        let Some(state) = keys.get_mut(&p.key_id) else { return };
        if let Some(b) = state.tokens.as_mut() {
            b.level = (b.level + tokens as f64).min(b.capacity);
        }
        if request {
            if let Some(b) = state.requests.as_mut() {
                b.level = (b.level + 1.0).min(b.capacity);
            }
        }
    }

    fn charge_tokens(&self, p: &Principal, tokens: u64) {
        if let Some(tpm) = p.limits.tokens_per_minute {
            let now = Instant::now();
            let mut keys = self.keys.lock();
            let b =
                keys.entry(p.key_id.clone()).or_default().tokens.get_or_insert_with(|| Bucket::new(tpm as f64, now));
            b.refill(tpm as f64, now);
            b.level -= tokens as f64;
        }
    }
}

/// `Limiter::take` on the shared buckets: the tokens (admitted while not in debt) and the
/// request, both or neither (`RateStore::take_rates`).
async fn take_shared(rates: &dyn RateStore, p: &Principal, tokens: u64, request: bool) -> Result<u64> {
    let (rpm, tpm) = (p.limits.requests_per_minute, p.limits.tokens_per_minute);
    let now = now_ms();
    let mut takes = Vec::with_capacity(2);
    if let Some(tpm) = tpm {
        takes
            .push((RateKind::Tokens, RateTake { per_minute: tpm as f64, need: 0.0, take: tokens as f64, now_ms: now }));
    }
    if let Some(rpm) = rpm.filter(|_| request) {
        takes.push((RateKind::Requests, RateTake { per_minute: f64::from(rpm), need: 1.0, take: 1.0, now_ms: now }));
    }
    if takes.is_empty() {
        return Ok(0);
    }
    match rates.take_rates(&p.key_id, &takes).await.map_err(unreachable)? {
        Ok(()) => Ok(if tpm.is_some() { tokens } else { 0 }),
        Err((i, level)) => {
            let (kind, t) = takes[i];
            Err(match kind {
                RateKind::Tokens => tokens_limited(t.per_minute as u64, wait_for(level, t.need, t.per_minute)),
                RateKind::Requests => requests_limited(t.per_minute as u32, wait_for(level, t.need, t.per_minute)),
            })
        }
    }
}

/// When a warning about the shared buckets was last logged (Unix ms), and how many were not
/// logged since: an outage of Redis or the database would otherwise log once per call.
static LAST_WARNING_MS: AtomicI64 = AtomicI64::new(0);
static UNLOGGED_WARNINGS: AtomicU64 = AtomicU64::new(0);
/// At most one warning about the shared buckets per this many milliseconds.
const WARN_EVERY_MS: i64 = 10_000;

/// Logs `what` went wrong with the shared buckets, at most once per `WARN_EVERY_MS`, with how
/// many warnings were not logged since the last.
fn warn_shared(e: &StoreError, what: &str) {
    let now = now_ms();
    let last = LAST_WARNING_MS.load(Ordering::Relaxed);
    if now - last < WARN_EVERY_MS
        || LAST_WARNING_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        UNLOGGED_WARNINGS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let unlogged = UNLOGGED_WARNINGS.swap(0, Ordering::Relaxed);
    tracing::warn!(error = %e, unlogged, "{what}");
}

/// A shared bucket that did not answer: the call is refused as unavailable (worth retrying),
/// never admitted unchecked; the detail is logged, not returned.
fn unreachable(e: StoreError) -> Error {
    warn_shared(&e, "the shared rate limits did not answer");
    Error::Unavailable {
        message: "the shared rate limits are unreachable; try again shortly".into(),
        retry_after: Some(Duration::from_secs(1)),
    }
}

/// Returns `tokens` (and a request) to the shared buckets; a failure is logged (the
/// bucket refills by itself within the minute).
async fn give_back_shared(rates: &dyn RateStore, p: &Principal, tokens: u64, request: bool) {
    let now = now_ms();
    let mut back = Vec::new();
    if let Some(tpm) = p.limits.tokens_per_minute.filter(|_| tokens > 0) {
        back.push((RateKind::Tokens, tpm as f64, tokens as f64));
    }
    if let Some(rpm) = p.limits.requests_per_minute.filter(|_| request) {
        back.push((RateKind::Requests, f64::from(rpm), 1.0));
    }
    for (kind, per_minute, amount) in back {
        if let Err(e) = rates.add_rate(&p.key_id, kind, per_minute, amount, now).await {
            warn_shared(&e, "giving back to a shared rate bucket failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::HELD_RETRY;
    use cairn_core::tenancy::{KeyLimits, Role};

    fn principal(limits: KeyLimits) -> Principal {
        Principal { key_id: "k".into(), tenant_id: "t".into(), role: Role::Member, limits }
    }

    fn worst(tokens: u64, usd: f64) -> WorstCase {
        WorstCase { tokens, cost: NanoUsd::ceil_usd(usd), max_duration: Duration::from_secs(60) }
    }

    async fn limiter() -> (Limiter, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        (Limiter::new(cairn_store::open(&url, 1).await.unwrap(), 2, None), dir)
    }

    #[tokio::test]
    async fn requests_per_minute_refill_over_time() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { requests_per_minute: Some(2), ..Default::default() });
        let t0 = Instant::now();
        assert!(l.take_rate(&p, 1, true, t0).is_ok());
        assert!(l.take_rate(&p, 1, true, t0).is_ok());
        let Err(Error::RateLimited { retry_after, .. }) = l.take_rate(&p, 1, true, t0) else { panic!("expected 429") };
        assert!(retry_after > Duration::from_secs(25) && retry_after <= Duration::from_secs(30));
        // Half a minute later one request's worth has refilled.
        assert!(l.take_rate(&p, 1, true, t0 + Duration::from_secs(30)).is_ok());
        assert!(l.take_rate(&p, 1, true, t0 + Duration::from_secs(30)).is_err());
    }

    #[tokio::test]
    async fn worst_case_tokens_are_held_until_the_call_settles() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { tokens_per_minute: Some(100), ..Default::default() });
        let first = l.admit(&p, &worst(150, 0.0), true).await.unwrap();
        // The first call's worst case overdraws the bucket: a concurrent call waits.
        assert!(matches!(l.admit(&p, &worst(10, 0.0), true).await, Err(Error::RateLimited { .. })));
        // It used 20 tokens: the rest comes back and the next call runs.
        l.settle(&p, &first, 20, NanoUsd(0));
        assert!(l.admit(&p, &worst(10, 0.0), true).await.is_ok());
    }

    #[tokio::test]
    async fn budget_reservations_hold_concurrent_calls() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { monthly_budget_usd: Some(0.05), ..Default::default() });
        for _ in 0..5 {
            assert!(l.admit(&p, &worst(10, 0.01), true).await.unwrap().budget.is_some());
        }
        let Err(Error::BudgetExceeded { retry_after, .. }) = l.admit(&p, &worst(10, 0.01), true).await else {
            panic!("expected 429")
        };
        // Held by calls in progress, not spent: worth retrying soon.
        assert_eq!(retry_after, HELD_RETRY);
    }

    #[tokio::test]
    async fn streams_per_key_are_bounded_and_given_back() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits::default());
        let other = Principal { key_id: "other".into(), ..p.clone() };
        let (a, _b) = (l.open_stream(&p).unwrap(), l.open_stream(&p).unwrap());
        assert!(matches!(l.open_stream(&p), Err(Error::RateLimited { .. })));
        assert!(l.open_stream(&other).is_ok(), "another key has its own");
        drop(a);
        assert!(l.open_stream(&p).is_ok());
    }

    #[tokio::test]
    async fn a_zero_budget_admits_no_call_even_a_free_one() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { monthly_budget_usd: Some(0.0), ..Default::default() });
        assert!(matches!(l.admit(&p, &worst(1, 0.0), true).await, Err(Error::BudgetExceeded { .. })));
    }

    #[tokio::test]
    async fn a_refused_call_takes_nothing_from_the_rate_limits() {
        let (l, _d) = limiter().await;
        let limits = KeyLimits { requests_per_minute: Some(1), monthly_budget_usd: Some(0.05), ..Default::default() };
        let p = principal(limits);
        let Err(Error::BudgetExceeded { retry_after, .. }) = l.admit(&p, &worst(1, 0.06), true).await else {
            panic!("expected 429")
        };
        // Nothing is held that could free up: only the next month helps.
        assert!(retry_after > HELD_RETRY);
        assert!(l.admit(&p, &worst(1, 0.05), true).await.is_ok());
    }
}
