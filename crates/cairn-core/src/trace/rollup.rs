//! Hourly rollups of model calls, for dashboards: per tenant, hour, model and key, the call
//! and error counts, tokens, cost, and latency and time-to-first-token histograms. They are
//! folded from spans as the span writer stores them, so an overview over any window reads a
//! few rows per hour instead of every span. Histogram buckets grow by 40% from 0.1 ms (the last
//! one is open-ended), so a percentile read from them is within about 20% of the exact one.

use std::collections::HashMap;

use super::attrs;
use super::span::{SpanRecord, SpanStatus};
use crate::usage::NanoUsd;

/// Buckets per histogram.
pub const BUCKETS: usize = 40;
/// The upper bound of the first bucket, milliseconds.
const FIRST_MS: f64 = 0.1;
/// Each bucket's upper bound over the previous one's.
const GROWTH: f64 = 1.4;
/// One hour, milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The bucket a duration of `ms` falls in.
pub fn bucket_of(ms: f64) -> usize {
    // NaN and anything at or below the first bound land in the first bucket.
    if ms.is_nan() || ms <= FIRST_MS {
        return 0;
    }
    ((ms / FIRST_MS).ln() / GROWTH.ln()).ceil().clamp(0.0, (BUCKETS - 1) as f64) as usize
}

/// A representative duration for bucket `i` (the geometric middle of its bounds), ms.
pub fn bucket_value(i: usize) -> f64 {
    let upper = FIRST_MS * GROWTH.powi(i as i32);
    if i == 0 {
        upper / 2.0
    } else {
        upper / GROWTH.sqrt()
    }
}

/// The `p` quantile (0..=1) of histogram `h`, ms; `None` when it is empty.
pub fn percentile(h: &[i64; BUCKETS], p: f64) -> Option<f64> {
    let total: i64 = h.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_value(i));
        }
    }
    Some(bucket_value(BUCKETS - 1))
}

/// How stored rollups are summed when read: the storage sums them (a week of a busy tenant
/// is tens of thousands of rows; their sums are a handful).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollupGroup {
    /// Every stored row as it is.
    Rows,
    /// One sum per time bucket of this many milliseconds (`hour_ms`: the bucket's start).
    Time(i64),
    /// One sum per model and key (`hour_ms` 0).
    ModelKey,
}

/// Model calls of one tenant, hour, model and key (or, read grouped, their sums).
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    /// The tenant.
    pub tenant_id: String,
    /// The hour's start, Unix ms.
    pub hour_ms: i64,
    /// The model asked for.
    pub model: String,
    /// The key that made the calls.
    pub key_id: String,
    /// Calls.
    pub calls: i64,
    /// Calls that failed.
    pub errors: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cost.
    pub cost: NanoUsd,
    /// Call durations.
    pub latency: [i64; BUCKETS],
    /// Times to first token (streamed calls).
    pub ttft: [i64; BUCKETS],
}

impl Rollup {
    /// An empty rollup for these keys.
    pub fn empty(tenant_id: &str, hour_ms: i64, model: &str, key_id: &str) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            hour_ms,
            model: model.into(),
            key_id: key_id.into(),
            calls: 0,
            errors: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost: NanoUsd(0),
            latency: [0; BUCKETS],
            ttft: [0; BUCKETS],
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Rollup) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost = NanoUsd(self.cost.0 + other.cost.0);
        for i in 0..BUCKETS {
            self.latency[i] += other.latency[i];
            self.ttft[i] += other.ttft[i];
        }
    }

    /// Folds the model calls among `spans` (those with a call id) into rollups.
    pub fn fold(spans: &[SpanRecord]) -> Vec<Rollup> {
        let mut at: HashMap<(String, i64, String, String), Rollup> = HashMap::new();
        for s in spans.iter().filter(|s| s.attr(attrs::CALL_ID).is_some()) {
            let hour = (s.start_ns / 1_000_000).div_euclid(HOUR_MS) * HOUR_MS;
            let model = s.attr_str(attrs::REQUEST_MODEL).unwrap_or("").to_owned();
            let key = s.attr_str(attrs::KEY_ID).unwrap_or("").to_owned();
            let r = at
                .entry((s.tenant_id.clone(), hour, model.clone(), key.clone()))
                .or_insert_with(|| Rollup::empty(&s.tenant_id, hour, &model, &key));
            r.calls += 1;
            r.errors += i64::from(s.status == SpanStatus::Error);
            r.input_tokens += s.attr_int(attrs::INPUT_TOKENS).unwrap_or(0);
            r.output_tokens += s.attr_int(attrs::OUTPUT_TOKENS).unwrap_or(0);
            r.cost = NanoUsd(r.cost.0 + NanoUsd::from_usd(s.attr_f64(attrs::COST_USD).unwrap_or(0.0)).0);
            r.latency[bucket_of((s.end_ns - s.start_ns) as f64 / 1e6)] += 1;
            if let Some(ttft) = s.attr_f64(attrs::TTFT_MS) {
                r.ttft[bucket_of(ttft)] += 1;
            }
        }
        let mut out: Vec<Rollup> = at.into_values().collect();
        out.sort_by(|a, b| {
            (&a.tenant_id, a.hour_ms, &a.model, &a.key_id).cmp(&(&b.tenant_id, b.hour_ms, &b.model, &b.key_id))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_a_wide_range_within_a_fifth() {
        for ms in [0.2, 1.0, 3.7, 42.0, 250.0, 1_500.0, 30_000.0] {
            let v = bucket_value(bucket_of(ms));
            assert!((v / ms - 1.0).abs() < 0.2, "{ms} ms read back as {v}");
        }
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(1e12), BUCKETS - 1);
    }

    #[test]
    fn percentiles_follow_the_counts() {
        let mut h = [0; BUCKETS];
        h[bucket_of(10.0)] = 90;
        h[bucket_of(1_000.0)] = 10;
        assert!((percentile(&h, 0.5).unwrap() / 10.0 - 1.0).abs() < 0.2);
        assert!((percentile(&h, 0.95).unwrap() / 1_000.0 - 1.0).abs() < 0.2);
        assert_eq!(percentile(&[0; BUCKETS], 0.5), None);
    }
}
