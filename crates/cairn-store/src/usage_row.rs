//! A usage record's row, column by column, for whichever connection binds it.

use cairn_core::usage::{NanoUsd, Settlement};

/// The columns of `usage_records` a usage record is made of, listed once for both uses below.
macro_rules! record_columns {
    () => {
        "id, request_id, ts_ms, tenant_id, key_id, endpoint, model_alias, provider, upstream_model, \
         input_tokens, output_tokens, tokens_estimated, cost_usd, latency_ms, ttft_ms, output_tps, \
         retries, fallbacks, streamed, status, error"
    };
}

/// Columns selected to read a usage record back.
pub(crate) const USAGE_COLUMNS: &str = record_columns!();

/// Columns a usage row is inserted with, in the order [`usage_row`] gives their values: the
/// record's, then what settles its budget.
pub(crate) const USAGE_INSERT_COLUMNS: &str = concat!(record_columns!(), ", reservation_id, cost_nusd");

/// How many columns a usage row has.
pub(crate) const USAGE_ROW_LEN: usize = 23;

/// One column's value, in the SQL type its column has.
pub(crate) enum UsageValue<'a> {
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    MaybeText(Option<&'a str>),
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
    /// A float.
    Real(f64),
    /// A float or NULL.
    MaybeReal(Option<f64>),
    /// A boolean.
    Bool(bool),
}

/// The values of `s`'s row, in [`USAGE_INSERT_COLUMNS`] order.
pub(crate) fn usage_row(s: &Settlement) -> [UsageValue<'_>; USAGE_ROW_LEN] {
    use UsageValue::*;
    let u = &s.record;
    [
        Text(&u.id),
        Text(&u.request_id),
        Int(u.ts_ms),
        Text(&u.tenant_id),
        Text(&u.key_id),
        Text(&u.endpoint),
        Text(&u.model_alias),
        Text(&u.provider),
        Text(&u.upstream_model),
        Int(u.input_tokens as i64),
        Int(u.output_tokens as i64),
        Bool(u.tokens_estimated),
        Real(u.cost_usd),
        Int(u.latency_ms as i64),
        MaybeInt(u.ttft_ms.map(|v| v as i64)),
        MaybeReal(u.output_tokens_per_s),
        Int(i64::from(u.retries)),
        Int(i64::from(u.fallbacks)),
        Bool(u.streamed),
        Text(u.status.as_str()),
        MaybeText(u.error.as_deref()),
        MaybeText(s.reservation_id.as_deref()),
        Int(NanoUsd::from_usd(u.cost_usd).0),
    ]
}
