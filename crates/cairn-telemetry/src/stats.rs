//! Dashboard aggregates over the hourly rollups: totals, a time series, and breakdowns by
//! model and by key, each with call and error counts, tokens, cost, and latency and
//! time-to-first-token percentiles.

use std::collections::BTreeMap;

use cairn_core::tenancy::{Principal, Role};
use cairn_core::trace::rollup::{percentile, BUCKETS, HOUR_MS};
use cairn_core::trace::{Rollup, RollupGroup, TraceStore};
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Longest window one query covers (a longer one is cut to its end).
const MAX_WINDOW_MS: i64 = 400 * 24 * HOUR_MS;
/// The latest time a query may name, Unix ms (the schema's bound, as for trace lists).
const MAX_MS: i64 = 9_223_372_036_854;
/// Keys listed in `by_key` at most (the dearest first).
const TOP_KEYS: usize = 20;

/// Time buckets of the series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatsBucket {
    /// One point per hour.
    #[default]
    Hour,
    /// One point per day (UTC).
    Day,
}

/// An aggregates query as clients send it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsRequest {
    /// Window start, Unix ms (rounded down to the hour; default 24 hours before `to_ms`).
    #[param(minimum = 0, maximum = 9_223_372_036_854_i64)]
    pub from_ms: Option<i64>,
    /// Window end, Unix ms, exclusive (default now).
    #[param(minimum = 0, maximum = 9_223_372_036_854_i64)]
    pub to_ms: Option<i64>,
    /// `hour` (default) or `day`.
    pub bucket: Option<StatsBucket>,
    /// Tenant (instance owners only; default the caller's own, owners: every tenant).
    pub tenant: Option<String>,
}

/// Percentiles of a duration, milliseconds (absent when nothing was measured).
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Model calls of one group.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatsRow {
    /// The bucket's start, Unix ms (series rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_ms: Option<i64>,
    /// The model (by-model rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The key (by-key rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Model calls.
    pub calls: i64,
    /// Calls that failed.
    pub errors: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cost, US dollars.
    pub cost_usd: f64,
    /// Call latency.
    pub latency_ms: Percentiles,
    /// Time to first token (streamed calls).
    pub ttft_ms: Percentiles,
}

/// What the dashboard's overview shows.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Always `trace.stats`.
    pub object: String,
    /// Window start (rounded down to the hour), Unix ms.
    pub from_ms: i64,
    /// Window end, Unix ms.
    pub to_ms: i64,
    /// The series' bucket.
    pub bucket: StatsBucket,
    /// The whole window.
    pub totals: StatsRow,
    /// Per bucket, oldest first (buckets without calls left out).
    pub series: Vec<StatsRow>,
    /// Per model, busiest first.
    pub by_model: Vec<StatsRow>,
    /// Per key, dearest first (at most 20).
    pub by_key: Vec<StatsRow>,
}

fn row(r: &Rollup) -> StatsRow {
    let pct = |h: &[i64; BUCKETS]| Percentiles {
        p50: percentile(h, 0.5),
        p95: percentile(h, 0.95),
        p99: percentile(h, 0.99),
    };
    StatsRow {
        bucket_ms: None,
        model: None,
        key_id: None,
        calls: r.calls,
        errors: r.errors,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cost_usd: r.cost.usd(),
        latency_ms: pct(&r.latency),
        ttft_ms: pct(&r.ttft),
    }
}

/// Reads the aggregates the caller may see.
pub(crate) async fn stats(store: &dyn TraceStore, p: &Principal, q: StatsRequest, now_ms: i64) -> Result<Stats> {
    p.require(Role::Reader)?;
    let tenant = p.readable_tenant(q.tenant.as_deref())?;
    for (param, v) in [("from_ms", q.from_ms), ("to_ms", q.to_ms)] {
        if v.is_some_and(|v| !(0..=MAX_MS).contains(&v)) {
            return Err(Error::invalid_param(param, format!("{param} must be from 0 to {MAX_MS}")));
        }
    }
    let to = q.to_ms.unwrap_or(now_ms);
    // A window that ends before it starts holds nothing; a longer one than the limit is cut
    // to its last 400 days.
    let from = q.from_ms.unwrap_or(to.saturating_sub(24 * HOUR_MS)).max(to.saturating_sub(MAX_WINDOW_MS)).max(0);
    let from = from.div_euclid(HOUR_MS) * HOUR_MS;
    let bucket = q.bucket.unwrap_or_default();
    let width = match bucket {
        StatsBucket::Hour => HOUR_MS,
        StatsBucket::Day => 24 * HOUR_MS,
    };
    // Summed by the storage two ways at once (per bucket; per model and key), folded here.
    let t = tenant.as_deref();
    let (series, pairs) = futures::try_join!(
        store.rollups(t, from, to, RollupGroup::Time(width)),
        store.rollups(t, from, to, RollupGroup::ModelKey),
    )?;
    let mut totals = Rollup::empty("", from, "", "");
    series.iter().for_each(|r| totals.add(r));
    let mut models: BTreeMap<&str, Rollup> = BTreeMap::new();
    let mut keys: BTreeMap<&str, Rollup> = BTreeMap::new();
    for r in &pairs {
        models.entry(&r.model).or_insert_with(|| Rollup::empty("", from, &r.model, "")).add(r);
        keys.entry(&r.key_id).or_insert_with(|| Rollup::empty("", from, "", &r.key_id)).add(r);
    }
    let series = series.iter().map(|r| StatsRow { bucket_ms: Some(r.hour_ms), ..row(r) }).collect();
    let mut by_model: Vec<StatsRow> =
        models.into_values().map(|r| StatsRow { model: Some(r.model.clone()), ..row(&r) }).collect();
    by_model.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.model.cmp(&b.model)));
    let mut by_key: Vec<StatsRow> =
        keys.into_values().map(|r| StatsRow { key_id: Some(r.key_id.clone()), ..row(&r) }).collect();
    by_key.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(b.calls.cmp(&a.calls)).then(a.key_id.cmp(&b.key_id)));
    by_key.truncate(TOP_KEYS);
    Ok(Stats {
        object: "trace.stats".into(),
        from_ms: from,
        to_ms: to,
        bucket,
        totals: row(&totals),
        series,
        by_model,
        by_key,
    })
}
