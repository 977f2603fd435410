//! Budget credit: each node holds, per budgeted key, one reservation in storage (its credit)
//! and admits calls against it in memory, going to storage only when the credit runs short.
//!
//! The invariant that keeps budgets exact across nodes lives in storage: settled spend plus
//! every live reservation never exceeds the budget, and reservations only grow inside that
//! check (`UsageStore::reserve_budgets`). In memory a node only ever admits calls whose worst
//! cases fit in what its own reservation holds, so the calls running anywhere never cost more
//! than the budget. A call's usage record moves its real cost from the reservation to the
//! settled spend (`UsageStore::insert_usage`); this module mirrors that move at once.
//!
//! Growth asks for the waiting call's shortfall plus headroom for more calls of its size;
//! storage grants headroom only up to half of what the budget has left, so nodes share it.
//! Credit a node has not used for `IDLE` goes back to storage, so an idle node does not sit
//! on budget another node needs; a crashed node's credit lapses at its expiry, which always
//! covers the longest call admitted against it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cairn_core::store::Store;
use cairn_core::tenancy::Principal;
use cairn_core::time::{month_start_ms, now_ms};
use cairn_core::usage::{NanoUsd, Reservation, ReserveOutcome};
use cairn_core::{Error, Result};
use parking_lot::Mutex;

use crate::limits::WorstCase;
use crate::reserve::Reserver;

/// How long the budget stays refused when running calls or other nodes' credit hold it.
pub(crate) const HELD_RETRY: Duration = Duration::from_secs(1);
/// Headroom asked for on growth, in calls the size of the one waiting.
const HEADROOM_CALLS: i64 = 255;
/// How much longer than its longest call a credit lives, so renewals are rare.
const RENEW_EVERY: Duration = Duration::from_secs(60);
/// Credit unused this long goes back to storage.
const IDLE: Duration = Duration::from_secs(5);

/// What a call holds of its key's credit, given back when it settles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetHold {
    /// The reservation (credit) the call's usage record settles against.
    pub reservation_id: String,
    /// The call's worst-case cost.
    pub amount: NanoUsd,
}

/// One key's credit on this node, as this node knows it.
#[derive(Debug, Default)]
struct Credit {
    /// The reservation's id; empty when the node holds none.
    id: String,
    /// What the reservation holds (storage's amount less costs not yet written there).
    granted: i64,
    /// Worst cases of admitted calls not settled yet; above `granted` while a growth is
    /// being decided for the call that overdrew it.
    inflight: i64,
    /// When the reservation lapses in storage.
    expires_at_ms: i64,
    /// Last admission or settlement.
    last_used: Option<Instant>,
}

impl Credit {
    /// Admits a call of `amount` running until `until_ms` if the credit covers it.
    fn take(&mut self, amount: i64, until_ms: i64) -> Option<BudgetHold> {
        let covers = !self.id.is_empty() && self.expires_at_ms >= until_ms && self.granted - self.inflight >= amount;
        covers.then(|| {
            self.inflight += amount;
            self.last_used = Some(Instant::now());
            BudgetHold { reservation_id: self.id.clone(), amount: NanoUsd(amount) }
        })
    }
}

/// A key's credit and the lock that lets one growth at a time go to storage.
#[derive(Default)]
struct KeyCredit {
    grow: tokio::sync::Mutex<()>,
    state: Mutex<Credit>,
}

/// Every budgeted key's credit on this node.
pub(crate) struct Credits {
    reserver: Reserver,
    store: Arc<dyn Store>,
    keys: Arc<Mutex<HashMap<String, Arc<KeyCredit>>>>,
}

impl Credits {
    /// Starts the reservation writer and the idle-credit sweep (call within a Tokio runtime).
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let keys = Arc::default();
        tokio::spawn(sweep(Arc::downgrade(&keys), store.clone()));
        Self { reserver: Reserver::start(store.clone()), store, keys }
    }

    /// Holds `worst` against `p`'s monthly `budget`, from credit or by growing it; refuses with
    /// `BudgetExceeded` when the budget cannot cover it.
    pub(crate) async fn hold(&self, p: &Principal, worst: &WorstCase, budget: NanoUsd) -> Result<BudgetHold> {
        // Never zero, so a spent budget refuses even a free call (a $0 budget admits nothing).
        let amount = worst.cost.0.max(1);
        let now = now_ms();
        let until = now.saturating_add(worst.max_duration.as_millis() as i64);
        let key = self.keys.lock().entry(p.key_id.clone()).or_default().clone();
        if let Some(hold) = key.state.lock().take(amount, until) {
            return Ok(hold);
        }
        let _growing = key.grow.lock().await;
        // Take the call's share now, before storage answers: other calls see the credit short
        // and wait here instead of taking what this growth is for.
        let (short, hold) = {
            let mut c = key.state.lock();
            if let Some(hold) = c.take(amount, until) {
                return Ok(hold);
            }
            if c.id.is_empty() || c.expires_at_ms <= now {
                // Lapsed in storage (or none yet): start a new reservation.
                *c = Credit { id: uuid::Uuid::now_v7().to_string(), ..Credit::default() };
            }
            let short = (amount - (c.granted - c.inflight)).max(0);
            c.inflight += amount;
            (short, BudgetHold { reservation_id: c.id.clone(), amount: NanoUsd(amount) })
        };
        let request = Reservation {
            id: hold.reservation_id.clone(),
            key_id: p.key_id.clone(),
            amount: NanoUsd(short),
            extra: NanoUsd(amount.saturating_mul(HEADROOM_CALLS)),
            budget,
            month_start_ms: month_start_ms(now),
            now_ms: now,
            expires_at_ms: until.saturating_add(RENEW_EVERY.as_millis() as i64),
        };
        let outcome = self.reserver.reserve(request.clone()).await;
        // The growth lock kept the sweep away: the credit is still `id`.
        let mut c = key.state.lock();
        match outcome {
            Ok(ReserveOutcome::Reserved { granted }) => {
                c.granted += granted.0;
                c.expires_at_ms = c.expires_at_ms.max(request.expires_at_ms);
                c.last_used = Some(Instant::now());
                Ok(hold)
            }
            Ok(ReserveOutcome::Refused { settled, held }) => {
                c.inflight -= amount;
                Err(refusal(budget, settled, held, worst.cost, now))
            }
            Err(e) => {
                c.inflight -= amount;
                Err(e.into())
            }
        }
    }

    /// Gives back a settled call's hold; its `cost` leaves the credit as its usage record
    /// moves it to settled spend in storage.
    pub(crate) fn settle(&self, key_id: &str, hold: &BudgetHold, cost: NanoUsd) {
        let Some(key) = self.keys.lock().get(key_id).cloned() else { return };
        let mut c = key.state.lock();
        if c.id == hold.reservation_id {
            c.inflight -= hold.amount.0;
            c.granted = (c.granted - cost.0).max(0);
            c.last_used = Some(Instant::now());
        }
    }

    /// Gives every idle credit back to storage (at shutdown); credit of running calls stays.
    pub(crate) async fn release_idle(&self) {
        release(&self.keys, &*self.store, Duration::ZERO).await;
    }
}

/// Gives back, every half `IDLE`, the credit of keys with no call running that were last used
/// over `IDLE` ago; ends when the credits are dropped.
async fn sweep(keys: Weak<Mutex<HashMap<String, Arc<KeyCredit>>>>, store: Arc<dyn Store>) {
    let mut every = tokio::time::interval(IDLE / 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(keys) = keys.upgrade() else { return };
        release(&keys, &*store, IDLE).await;
    }
}

async fn release(keys: &Mutex<HashMap<String, Arc<KeyCredit>>>, store: &dyn Store, idle: Duration) {
    let candidates: Vec<Arc<KeyCredit>> = keys.lock().values().cloned().collect();
    let mut ids = Vec::new();
    for key in candidates {
        // A key whose credit is growing is in use.
        let Ok(_growing) = key.grow.try_lock() else { continue };
        let mut c = key.state.lock();
        let unused = c.last_used.is_none_or(|t| t.elapsed() >= idle);
        if !c.id.is_empty() && c.inflight == 0 && unused {
            ids.push(std::mem::take(&mut *c).id);
        }
    }
    if !ids.is_empty() {
        // Storage lapses them anyway if this fails.
        if let Err(e) = store.release_reservations(&ids).await {
            tracing::warn!(error = %e, "giving back idle budget credit failed");
        }
    }
}

/// The refusal for a call of `cost` that does not fit `budget`.
fn refusal(budget: NanoUsd, settled: NanoUsd, held: NanoUsd, cost: NanoUsd, now: i64) -> Error {
    // Only the month's end frees budget that finished calls spent.
    let retry_after = if settled.0.saturating_add(cost.0) > budget.0 {
        let month = month_start_ms(now);
        let next_month = month_start_ms(month + 32 * cairn_core::time::DAY_MS);
        Duration::from_millis((next_month - now).max(1) as u64)
    } else {
        HELD_RETRY
    };
    Error::BudgetExceeded {
        message: format!(
            "this key's monthly budget of ${:.4} cannot cover this call: ${:.4} spent, ${:.4} held \
             by calls in progress, up to ${:.4} needed (lower max_tokens to need less)",
            budget.usd(),
            settled.usd(),
            held.usd(),
            cost.usd()
        ),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::tenancy::{KeyLimits, Role};
    use cairn_core::usage::{Settlement, UsageRecord};

    fn principal(budget: f64) -> Principal {
        let limits = KeyLimits { monthly_budget_usd: Some(budget), ..Default::default() };
        Principal { key_id: "k".into(), tenant_id: "t".into(), role: Role::Member, limits }
    }

    fn worst(usd: f64) -> WorstCase {
        WorstCase { tokens: 10, cost: NanoUsd::ceil_usd(usd), max_duration: Duration::from_secs(60) }
    }

    async fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        (cairn_store::open(&url, 2).await.unwrap(), dir)
    }

    fn held(s: &Arc<dyn Store>) -> impl std::future::Future<Output = (NanoUsd, NanoUsd)> + '_ {
        let now = now_ms();
        async move { s.budget_state("k", month_start_ms(now), now).await.unwrap() }
    }

    fn record(id: &str, cost: f64) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            request_id: id.into(),
            ts_ms: now_ms(),
            tenant_id: "t".into(),
            key_id: "k".into(),
            endpoint: "chat".into(),
            model_alias: "m".into(),
            provider: "p".into(),
            upstream_model: "m".into(),
            input_tokens: 1,
            output_tokens: 1,
            tokens_estimated: false,
            cost_usd: cost,
            latency_ms: 1,
            ttft_ms: None,
            output_tokens_per_s: None,
            retries: 0,
            fallbacks: 0,
            streamed: false,
            status: cairn_core::usage::CallStatus::Ok,
            error: None,
        }
    }

    #[tokio::test]
    async fn calls_are_admitted_from_credit_with_headroom_and_settle_into_spend() {
        let (s, _d) = store().await;
        let credits = Credits::start(s.clone());
        let p = principal(100.0);
        let first = credits.hold(&p, &worst(0.01), NanoUsd::from_usd(100.0)).await.unwrap();
        // One trip to storage reserved room for many calls of this size.
        assert_eq!(held(&s).await.1, NanoUsd::from_usd(2.56));
        for _ in 0..255 {
            credits.hold(&p, &worst(0.01), NanoUsd::from_usd(100.0)).await.unwrap();
        }
        assert_eq!(held(&s).await.1, NanoUsd::from_usd(2.56), "no growth while credit covered the calls");
        // The first call cost $0.004: its record moves that from the credit to the spend.
        credits.settle("k", &first, NanoUsd::from_usd(0.004));
        let settlement = Settlement { record: record("c1", 0.004), reservation_id: Some(first.reservation_id) };
        s.insert_usage(&[settlement]).await.unwrap();
        assert_eq!(held(&s).await, (NanoUsd::from_usd(0.004), NanoUsd::from_usd(2.556)));
        // The next call needs more than is left: the credit grows.
        credits.hold(&p, &worst(0.01), NanoUsd::from_usd(100.0)).await.unwrap();
        assert!(held(&s).await.1 > NanoUsd::from_usd(2.556));
    }

    #[tokio::test]
    async fn idle_credit_goes_back_but_credit_of_running_calls_stays() {
        let (s, _d) = store().await;
        let credits = Credits::start(s.clone());
        let p = principal(1.0);
        let running = credits.hold(&p, &worst(0.01), NanoUsd::from_usd(1.0)).await.unwrap();
        credits.release_idle().await;
        assert!(held(&s).await.1 > NanoUsd(0), "a call is running");
        credits.settle("k", &running, NanoUsd(0));
        credits.release_idle().await;
        assert_eq!(held(&s).await.1, NanoUsd(0));
        // A new call starts a new credit.
        let next = credits.hold(&p, &worst(0.01), NanoUsd::from_usd(1.0)).await.unwrap();
        assert_ne!(next.reservation_id, running.reservation_id);
    }

    #[tokio::test]
    async fn nodes_sharing_storage_never_admit_more_than_the_budget_covers() {
        let (s, _d) = store().await;
        let nodes: Vec<Arc<Credits>> = (0..3).map(|_| Arc::new(Credits::start(s.clone()))).collect();
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let node = nodes[i % 3].clone();
                tokio::spawn(async move { node.hold(&principal(0.05), &worst(0.01), NanoUsd::from_usd(0.05)).await })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => admitted += 1,
                Err(Error::BudgetExceeded { retry_after, .. }) => assert_eq!(retry_after, HELD_RETRY),
                Err(e) => panic!("{e}"),
            }
        }
        assert!((1..=5).contains(&admitted), "{admitted} calls of $0.01 admitted on $0.05");
        assert!(held(&s).await.1 <= NanoUsd::from_usd(0.05));
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_even_a_free_call() {
        let (s, _d) = store().await;
        let credits = Credits::start(s.clone());
        let r = credits.hold(&principal(0.0), &worst(0.0), NanoUsd(0)).await;
        assert!(matches!(r, Err(Error::BudgetExceeded { .. })));
    }
}
