//! Shared rate buckets' part of the conformance suite: takes refill by the clock, refuse when
//! empty, give back capped at capacity, concurrent takers never spend more than there is, and
//! a take from two buckets takes from both or neither.

use std::sync::Arc;

use cairn_core::store::{RateKind, RateStore, RateTake};

fn take(need: f64, take: f64, now_ms: i64) -> RateTake {
    RateTake { per_minute: 6.0, need, take, now_ms }
}

/// Every `RateStore` (the databases', Redis's) passes these checks.
pub async fn rate_buckets(s: Arc<dyn RateStore>) {
    let t0 = 1_000_000;
    // A new bucket starts full: six requests, then refused with the level it has.
    for i in 0..6 {
        let level = s.take_rate("k1", RateKind::Requests, take(1.0, 1.0, t0)).await.unwrap();
        assert_eq!(level, Ok(5.0 - i as f64));
    }
    assert_eq!(s.take_rate("k1", RateKind::Requests, take(1.0, 1.0, t0)).await.unwrap(), Err(0.0));
    // Ten seconds later one request has refilled (six a minute); a clock behind changes nothing.
    assert_eq!(s.take_rate("k1", RateKind::Requests, take(1.0, 1.0, t0 - 5_000)).await.unwrap(), Err(0.0));
    assert_eq!(s.take_rate("k1", RateKind::Requests, take(1.0, 1.0, t0 + 10_000)).await.unwrap(), Ok(0.0));
    // Buckets are per key and kind; tokens may go into debt, and are refused only while in it.
    assert!(s.take_rate("k2", RateKind::Requests, take(1.0, 1.0, t0)).await.unwrap().is_ok());
    assert_eq!(s.take_rate("k1", RateKind::Tokens, take(0.0, 10.0, t0)).await.unwrap(), Ok(-4.0));
    assert_eq!(s.take_rate("k1", RateKind::Tokens, take(0.0, 1.0, t0)).await.unwrap(), Err(-4.0));
    // Giving back is capped at capacity.
    s.add_rate("k1", RateKind::Tokens, 6.0, 100.0, t0).await.unwrap();
    assert_eq!(s.take_rate("k1", RateKind::Tokens, take(0.0, 1.0, t0)).await.unwrap(), Ok(5.0));

    // Sixty concurrent takers of a full bucket of six: exactly six succeed.
    let racers = (0..60).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.take_rate("k3", RateKind::Requests, take(1.0, 1.0, t0)).await.unwrap().is_ok() })
    });
    let won = futures::future::join_all(racers).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(won, 6);

    // Both buckets or neither: a key in token debt takes no request either...
    let both = |tokens: f64| [(RateKind::Tokens, take(0.0, tokens, t0)), (RateKind::Requests, take(1.0, 1.0, t0))];
    assert_eq!(s.take_rates("k4", &both(10.0)).await.unwrap(), Ok(()));
    assert_eq!(s.take_rates("k4", &both(1.0)).await.unwrap(), Err((0, -4.0)));
    assert_eq!(s.take_rate("k4", RateKind::Requests, take(1.0, 1.0, t0)).await.unwrap(), Ok(4.0));
    // ...and a key out of requests spends no tokens.
    for _ in 0..6 {
        assert!(s.take_rate("k5", RateKind::Requests, take(1.0, 1.0, t0)).await.unwrap().is_ok());
    }
    assert_eq!(s.take_rates("k5", &both(3.0)).await.unwrap(), Err((1, 0.0)));
    assert_eq!(s.take_rate("k5", RateKind::Tokens, take(0.0, 0.0, t0)).await.unwrap(), Ok(6.0));
}
