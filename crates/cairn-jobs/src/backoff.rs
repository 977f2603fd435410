//! Retry delays: exponential backoff with "equal jitter". The delay before attempt `n + 1` is
//! drawn from `[d/2, d]` where `d = min(base * 2^(n-1), max)`: never shorter than half the
//! nominal delay (so retries do back off), spread enough that failed jobs do not retry in lockstep.

use rand::Rng;

/// The retry schedule of the job queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Nominal delay after the first failed attempt, ms.
    pub base_ms: u64,
    /// Cap on the nominal delay, ms.
    pub max_ms: u64,
}

impl Backoff {
    /// The nominal (un-jittered) delay after `attempts` failed attempts (1-based).
    pub fn nominal_ms(&self, attempts: u32) -> u64 {
        let exp = attempts.saturating_sub(1).min(62);
        self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms)
    }

    /// The delay after `attempts` failed attempts, with jitter from `rng`.
    pub fn delay_ms(&self, attempts: u32, rng: &mut impl Rng) -> u64 {
        let d = self.nominal_ms(attempts);
        let half = d / 2;
        half + rng.gen_range(0..=d - half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff { base_ms: 1_000, max_ms: 10_000 };
        let nominal: Vec<u64> = (1..=6).map(|n| b.nominal_ms(n)).collect();
        assert_eq!(nominal, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(b.nominal_ms(500), 10_000, "no overflow on huge attempt counts");
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let b = Backoff { base_ms: 1_000, max_ms: 60_000 };
        let mut rng = rand::thread_rng();
        for n in 1..=8 {
            let d = b.nominal_ms(n);
            let seen: Vec<u64> = (0..200).map(|_| b.delay_ms(n, &mut rng)).collect();
            assert!(seen.iter().all(|&x| x >= d / 2 && x <= d), "attempt {n}: {seen:?}");
            assert!(seen.iter().any(|&x| x != seen[0]), "jitter varies");
        }
    }
}
