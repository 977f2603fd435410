//! A circuit breaker per target: after `threshold` consecutive failures it opens and rejects
//! calls for `open_for`; then it lets exactly one probe through (half-open), closing again on
//! success and re-opening on failure. Uses tokio's clock so tests can pause and advance time.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Breaker state, as exported in the `breaker_state` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// One probe call is allowed.
    HalfOpen,
    /// Calls are rejected.
    Open,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One target's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self { threshold: threshold.max(1), open_for, inner: Mutex::new(Inner::Closed { failures: 0 }) }
    }

    /// Whether a call may go through now; in half-open state only the first caller gets `true`.
    pub fn try_acquire(&self) -> bool {
        let mut inner = self.inner.lock();
        match &mut *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if Instant::now() < *until => false,
            Inner::Open { .. } => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
            Inner::HalfOpen { probing } if *probing => false,
            Inner::HalfOpen { probing } => {
                *probing = true;
                true
            }
        }
    }

    /// Records a healthy answer (including the client's own 4xx): closes the breaker.
    pub fn on_success(&self) {
        *self.inner.lock() = Inner::Closed { failures: 0 };
    }

    /// Records a failure; opens the breaker at the threshold, or again after a failed probe.
    pub fn on_failure(&self) {
        let mut inner = self.inner.lock();
        let open = match &mut *inner {
            Inner::Closed { failures } => {
                *failures += 1;
                *failures >= self.threshold
            }
            Inner::HalfOpen { .. } | Inner::Open { .. } => true,
        };
        if open {
            *inner = Inner::Open { until: Instant::now() + self.open_for };
        }
    }

    /// Releases a half-open probe slot without a verdict (e.g. the caller went away).
    pub fn on_abandoned(&self) {
        if let Inner::HalfOpen { probing } = &mut *self.inner.lock() {
            *probing = false;
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match &*self.inner.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < *until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_probes_and_closes() {
        let b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.try_acquire());
            b.on_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire());

        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.try_acquire(), "one probe after the open period");
        assert!(!b.try_acquire(), "only one probe at a time");
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe re-opens");

        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.try_acquire());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire() && b.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        b.on_failure();
        b.on_success();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
