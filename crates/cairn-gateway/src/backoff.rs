//! Retry delays: exponential backoff with "equal jitter" (half the delay fixed, half random),
//! so retries from many clients spread out yet never collapse to zero.

use std::time::Duration;

use rand::Rng;

/// The delay before retry number `attempt` (0-based), honouring an upstream `retry-after`
/// when it is longer. Returns `None` when `retry-after` exceeds `max`: better to fall back to
/// the next target than to wait that long.
pub(crate) fn delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(max);
    let half = exp / 2;
    let jittered = half + half.mul_f64(rng.gen::<f64>());
    match retry_after {
        Some(ra) if ra > max => None,
        Some(ra) => Some(jittered.max(ra)),
        None => Some(jittered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn schedule_doubles_within_jitter_bounds_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        for (attempt, full) in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000), (10, 1000)] {
            for _ in 0..50 {
                let d = delay(attempt, base, max, None, &mut rng).unwrap();
                assert!(d >= Duration::from_millis(full / 2) && d <= Duration::from_millis(full), "{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(delay(0, base, max, Some(Duration::from_secs(2)), &mut rng), Some(Duration::from_secs(2)));
        assert_eq!(delay(0, base, max, Some(Duration::from_secs(60)), &mut rng), None);
    }
}
