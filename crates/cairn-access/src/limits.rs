//! Per-key limits. Requests and tokens per minute are token buckets held in this process
//! (a later Redis adapter shares them across nodes); monthly spend is read from the usage
//! records in storage and kept current with this node's own calls between refreshes.
//!
//! Token limits are charged after a call with its real usage: a request is admitted while the
//! key's token bucket is not in debt, so one large call can overdraw it and the next calls wait.
//! Likewise a call admitted under budget may finish slightly over it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::store::Store;
use cairn_core::tenancy::Principal;
use cairn_core::time::{month_start_ms, now_ms};
use cairn_core::{Error, Result};
use parking_lot::Mutex;

/// How long a cached monthly spend is trusted before it is re-read from storage.
const SPEND_REFRESH: Duration = Duration::from_secs(15);

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
        let deficit = (needed - self.level).max(0.0);
        Duration::from_secs_f64((deficit * 60.0 / self.capacity.max(1.0)).max(0.001))
    }
}

#[derive(Debug, Default)]
struct KeyState {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

#[derive(Debug)]
struct Spend {
    month_start_ms: i64,
    usd: f64,
    loaded: Instant,
}

/// Checks and charges per-key limits.
pub struct Limiter {
    store: Arc<dyn Store>,
    keys: Mutex<HashMap<String, KeyState>>,
    spend: Mutex<HashMap<String, Spend>>,
}

impl Limiter {
    /// A limiter reading monthly spend from `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, keys: Mutex::new(HashMap::new()), spend: Mutex::new(HashMap::new()) }
    }

    /// Admits one request for `p`, or fails with `RateLimited` / `BudgetExceeded`.
    pub async fn admit(&self, p: &Principal) -> Result<()> {
        self.admit_rate(p, Instant::now())?;
        if let Some(budget) = p.limits.monthly_budget_usd {
            let spent = self.monthly_spend(&p.key_id).await?;
            if spent >= budget {
                return Err(Error::BudgetExceeded(format!(
                    "this key has spent ${spent:.4} of its ${budget:.2} monthly budget"
                )));
            }
        }
        Ok(())
    }

    fn admit_rate(&self, p: &Principal, now: Instant) -> Result<()> {
        let (rpm, tpm) = (p.limits.requests_per_minute, p.limits.tokens_per_minute);
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        let mut keys = self.keys.lock();
        let state = keys.entry(p.key_id.clone()).or_default();
        if let Some(tpm) = tpm {
            let b = state.tokens.get_or_insert_with(|| Bucket::new(tpm as f64, now));
            b.refill(tpm as f64, now);
            if b.level < 0.0 {
                return Err(Error::RateLimited {
                    message: format!("rate limit reached: {tpm} tokens per minute for this key"),
                    retry_after: b.wait_for(0.0),
                });
            }
        }
        if let Some(rpm) = rpm {
            let b = state.requests.get_or_insert_with(|| Bucket::new(f64::from(rpm), now));
            b.refill(f64::from(rpm), now);
            if b.level < 1.0 {
                return Err(Error::RateLimited {
                    message: format!("rate limit reached: {rpm} requests per minute for this key"),
                    retry_after: b.wait_for(1.0),
                });
            }
            b.level -= 1.0;
        }
        Ok(())
    }

    /// Charges a finished call's tokens and cost to the key.
    pub fn charge(&self, p: &Principal, tokens: u64, cost_usd: f64) {
        if let Some(tpm) = p.limits.tokens_per_minute {
            let now = Instant::now();
            let mut keys = self.keys.lock();
            let b =
                keys.entry(p.key_id.clone()).or_default().tokens.get_or_insert_with(|| Bucket::new(tpm as f64, now));
            b.refill(tpm as f64, now);
            b.level -= tokens as f64;
        }
        if cost_usd > 0.0 {
            if let Some(s) = self.spend.lock().get_mut(&p.key_id) {
                s.usd += cost_usd;
            }
        }
    }

    async fn monthly_spend(&self, key_id: &str) -> Result<f64> {
        let month = month_start_ms(now_ms());
        if let Some(s) = self.spend.lock().get(key_id) {
            if s.month_start_ms == month && s.loaded.elapsed() < SPEND_REFRESH {
                return Ok(s.usd);
            }
        }
        let usd = self.store.key_spend_since(key_id, month).await?;
        self.spend.lock().insert(key_id.into(), Spend { month_start_ms: month, usd, loaded: Instant::now() });
        Ok(usd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::tenancy::{KeyLimits, Role};

    fn principal(limits: KeyLimits) -> Principal {
        Principal { key_id: "k".into(), tenant_id: "t".into(), role: Role::Member, limits }
    }

    async fn limiter() -> (Limiter, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        (Limiter::new(cairn_store::open(&url, 1).await.unwrap()), dir)
    }

    #[tokio::test]
    async fn requests_per_minute_refill_over_time() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { requests_per_minute: Some(2), ..Default::default() });
        let t0 = Instant::now();
        assert!(l.admit_rate(&p, t0).is_ok());
        assert!(l.admit_rate(&p, t0).is_ok());
        let Err(Error::RateLimited { retry_after, .. }) = l.admit_rate(&p, t0) else { panic!("expected 429") };
        assert!(retry_after > Duration::from_secs(25) && retry_after <= Duration::from_secs(30));
        // Half a minute later one request's worth has refilled.
        assert!(l.admit_rate(&p, t0 + Duration::from_secs(30)).is_ok());
        assert!(l.admit_rate(&p, t0 + Duration::from_secs(30)).is_err());
    }

    #[tokio::test]
    async fn tokens_are_charged_after_the_call() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { tokens_per_minute: Some(100), ..Default::default() });
        assert!(l.admit(&p).await.is_ok());
        l.charge(&p, 150, 0.0);
        assert!(matches!(l.admit(&p).await, Err(Error::RateLimited { .. })));
    }

    #[tokio::test]
    async fn budget_counts_local_spend() {
        let (l, _d) = limiter().await;
        let p = principal(KeyLimits { monthly_budget_usd: Some(1.0), ..Default::default() });
        assert!(l.admit(&p).await.is_ok());
        l.charge(&p, 10, 0.6);
        assert!(l.admit(&p).await.is_ok());
        l.charge(&p, 10, 0.6);
        assert!(matches!(l.admit(&p).await, Err(Error::BudgetExceeded(_))));
    }
}
