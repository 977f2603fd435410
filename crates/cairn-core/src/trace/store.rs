//! The trace storage port and what it reads and writes. Spans are stored as they come; each
//! trace also has one summary row (its time span, status, model, key, tokens and cost),
//! folded from its spans batch by batch, which is what trace lists filter and page on.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;

use super::attrs;
use super::span::{SpanKind, SpanRecord, SpanStatus};
use crate::store::StoreResult;
use crate::usage::NanoUsd;

/// What one batch of spans adds to one trace's summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceDelta {
    /// The tenant.
    pub tenant_id: String,
    /// The trace, as hex.
    pub trace_id: String,
    /// The root span's name, if the root is in the batch.
    pub name: Option<String>,
    /// Earliest start among the spans.
    pub start_ns: i64,
    /// Latest end among the spans.
    pub end_ns: i64,
    /// Spans in the batch.
    pub spans: i64,
    /// Spans that failed.
    pub errors: i64,
    /// The first key named.
    pub key_id: Option<String>,
    /// The first end user named.
    pub user: Option<String>,
    /// The first session named.
    pub session: Option<String>,
    /// The first agent run named.
    pub run_id: Option<String>,
    /// The first model asked for.
    pub model: Option<String>,
    /// Prompt tokens of the model calls.
    pub input_tokens: i64,
    /// Output tokens of the model calls.
    pub output_tokens: i64,
    /// What the model calls cost.
    pub cost: NanoUsd,
}

impl TraceDelta {
    /// Folds `spans` into one delta per (tenant, trace), ordered by tenant and trace.
    pub fn fold(spans: &[SpanRecord]) -> Vec<TraceDelta> {
        let mut at: HashMap<(&str, [u8; 16]), usize> = HashMap::new();
        let mut out: Vec<TraceDelta> = Vec::new();
        for s in spans {
            let i = *at.entry((s.tenant_id.as_str(), s.trace_id.0)).or_insert_with(|| {
                out.push(TraceDelta {
                    tenant_id: s.tenant_id.clone(),
                    trace_id: s.trace_id.to_string(),
                    start_ns: s.start_ns,
                    end_ns: s.end_ns,
                    ..Default::default()
                });
                out.len() - 1
            });
            let d = &mut out[i];
            d.start_ns = d.start_ns.min(s.start_ns);
            d.end_ns = d.end_ns.max(s.end_ns);
            d.spans += 1;
            d.errors += i64::from(s.status == SpanStatus::Error);
            if s.root {
                d.name.get_or_insert_with(|| s.name.clone());
            }
            let first = |slot: &mut Option<String>, key: &str| {
                if slot.is_none() {
                    *slot = s.attr_str(key).map(str::to_owned);
                }
            };
            first(&mut d.key_id, attrs::KEY_ID);
            first(&mut d.user, attrs::END_USER);
            first(&mut d.session, attrs::SESSION);
            first(&mut d.run_id, attrs::RUN_ID);
            // A model call's own span carries its usage; its attempts carry none.
            if s.attr(attrs::CALL_ID).is_some() {
                first(&mut d.model, attrs::REQUEST_MODEL);
                d.input_tokens += s.attr_int(attrs::INPUT_TOKENS).unwrap_or(0);
                d.output_tokens += s.attr_int(attrs::OUTPUT_TOKENS).unwrap_or(0);
                d.cost = NanoUsd(d.cost.0 + NanoUsd::from_usd(s.attr_f64(attrs::COST_USD).unwrap_or(0.0)).0);
            }
        }
        // In key order, so concurrent writers (nodes sharing PostgreSQL) lock summary rows in
        // the same order and never deadlock.
        out.sort_by(|a, b| (&a.tenant_id, &a.trace_id).cmp(&(&b.tenant_id, &b.trace_id)));
        out
    }
}

/// One trace as lists show it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TraceSummary {
    /// The trace's id (32 hex digits).
    pub trace_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its root span's name (empty until the root span is stored).
    pub name: String,
    /// Start, Unix milliseconds.
    pub start_ms: f64,
    /// Start, Unix nanoseconds (exact, for paging; JSON numbers cannot carry it).
    #[serde(skip)]
    pub start_ns: i64,
    /// From the first span's start to the last one's end, milliseconds.
    pub duration_ms: f64,
    /// `error` when any span failed, else `ok`.
    pub status: SpanStatus,
    /// Spans stored.
    pub span_count: i64,
    /// Spans that failed.
    pub error_count: i64,
    /// The key that made the request.
    pub key_id: Option<String>,
    /// The end user (the request's `user` field).
    pub user: Option<String>,
    /// The session (`x-session-id`).
    pub session_id: Option<String>,
    /// The agent run, if the trace is one's.
    pub run_id: Option<String>,
    /// The first model called.
    pub model: Option<String>,
    /// Prompt tokens over its model calls.
    pub input_tokens: i64,
    /// Output tokens over its model calls.
    pub output_tokens: i64,
    /// Cost of its model calls, US dollars.
    pub cost_usd: f64,
}

/// Where a page of traces ends: the next page starts after this trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceCursor {
    /// The last trace's start, Unix nanoseconds.
    pub start_ns: i64,
    /// The last trace's id.
    pub trace_id: String,
}

/// Which traces to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct TraceQuery {
    /// Only this tenant's (`None`: every tenant, for the instance owner).
    pub tenant_id: Option<String>,
    /// Started at or after, Unix nanoseconds.
    pub from_ns: Option<i64>,
    /// Started before, Unix nanoseconds.
    pub to_ns: Option<i64>,
    /// With a model call to this model.
    pub model: Option<String>,
    /// Made with this key.
    pub key_id: Option<String>,
    /// With this status (`ok` or `error`).
    pub status: Option<SpanStatus>,
    /// Lasting at least this long, nanoseconds.
    pub min_duration_ns: Option<i64>,
    /// Costing at least this much.
    pub min_cost: Option<NanoUsd>,
    /// Of this agent run.
    pub run_id: Option<String>,
    /// Of this session.
    pub session_id: Option<String>,
    /// For this end user.
    pub user: Option<String>,
    /// After this one (paging).
    pub after: Option<TraceCursor>,
    /// At most this many.
    pub limit: u32,
}

/// A stored span, as one trace's read shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredSpan {
    /// Its id.
    pub span_id: String,
    /// Its parent's id (possibly another service's span).
    pub parent_id: Option<String>,
    /// Its name.
    pub name: String,
    /// What it stands for.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// End, Unix nanoseconds.
    pub end_ns: i64,
    /// How it ended.
    pub status: SpanStatus,
    /// Why it failed.
    pub status_message: Option<String>,
    /// Its attributes.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Stored traces.
#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Stores spans and folds them into their traces' summaries, in one transaction; a span
    /// stored already (same tenant, trace and id) is skipped, with its summary share.
    async fn insert_spans(&self, spans: &[SpanRecord]) -> StoreResult<()>;
    /// Traces matching `q`, newest first.
    async fn list_traces(&self, q: &TraceQuery) -> StoreResult<Vec<TraceSummary>>;
    /// One trace's summary and spans (by start), of `tenant` (`None`: any tenant's, the first
    /// found, for the instance owner).
    async fn get_trace(
        &self,
        tenant: Option<&str>,
        trace_id: &str,
    ) -> StoreResult<Option<(TraceSummary, Vec<StoredSpan>)>>;
    /// The hourly rollups of `tenant` (`None`: every tenant's) for hours starting in
    /// `[from_ms, to_ms)`, summed as `by` says.
    async fn rollups(
        &self,
        tenant: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        by: super::RollupGroup,
    ) -> StoreResult<Vec<super::Rollup>>;
    /// Deletes up to `limit` traces of `tenant` (`None`: of every tenant) that started before
    /// `before_ns`, with their spans; returns how many went.
    async fn delete_traces_before(&self, tenant: Option<&str>, before_ns: i64, limit: u32) -> StoreResult<u64>;
}
