//! The trace service: what the HTTP layer calls to read traces (tenant checks here, not in
//! handlers), the `Tracer` every other service records through, and retention (of traces and
//! the feedback on them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::config::TracingConfig;
use cairn_core::store::TenantStore;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::trace::{
    Feedback, FeedbackStore, Redact, SpanSink, SpanStatus, StoredSpan, TraceCursor, TraceId, TraceQuery, TraceStore,
    TraceSummary, Tracer,
};
use cairn_core::usage::NanoUsd;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::otlp::OtlpExporter;
use crate::spans::{Fanout, SpanQueue, SpanQueueSettings, StoreWriter};
use crate::Metrics;

/// Most traces in one page.
const MAX_LIMIT: u32 = 1_000;
/// Traces one retention pass deletes per transaction.
const SWEEP_BATCH: u32 = 1_000;

/// A trace status filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// No span failed.
    Ok,
    /// Some span failed.
    Error,
}

/// A trace list query as clients send it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceListRequest {
    /// Started at or after, Unix milliseconds.
    #[param(minimum = 0, maximum = 9_223_372_036_854_i64)]
    pub from_ms: Option<i64>,
    /// Started before, Unix milliseconds.
    #[param(minimum = 0, maximum = 9_223_372_036_854_i64)]
    pub to_ms: Option<i64>,
    /// With a call to this model (alias).
    pub model: Option<String>,
    /// Made with this key.
    pub key_id: Option<String>,
    /// `ok` or `error`.
    pub status: Option<StatusFilter>,
    /// Lasting at least this many milliseconds.
    #[param(minimum = 0, maximum = 9_000_000_000_000_i64)]
    pub min_latency_ms: Option<f64>,
    /// Costing at least this many US dollars.
    #[param(minimum = 0, maximum = 9_000_000_000_i64)]
    pub min_cost_usd: Option<f64>,
    /// Of this agent run.
    pub run_id: Option<String>,
    /// Of this session (`x-session-id`).
    pub session_id: Option<String>,
    /// For this end user (the request's `user` field).
    pub user: Option<String>,
    /// Traces per page, 1-1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(pattern = "^[0-9]{1,18}_[0-9a-f]{32}$")]
    pub after: Option<String>,
    /// Tenant (instance owners only; default the caller's own, owners: every tenant).
    pub tenant: Option<String>,
}

/// A page of traces, newest first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TraceList {
    /// Always `list`.
    pub object: String,
    /// The traces.
    pub data: Vec<TraceSummary>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A span with the spans that ran under it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SpanNode {
    /// The span.
    #[serde(flatten)]
    pub span: StoredSpan,
    /// Its children, by start.
    #[schema(no_recursion)]
    pub children: Vec<SpanNode>,
}

/// One trace: its summary and its span tree.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TraceDetail {
    /// Always `trace`.
    pub object: String,
    /// The summary.
    pub trace: TraceSummary,
    /// Root spans (those whose parent is not in the trace), each with its subtree.
    pub spans: Vec<SpanNode>,
    /// Feedback on the trace, its answers and its run, oldest first.
    pub feedback: Vec<Feedback>,
}

/// Reads traces; owns the span writer and the tracer.
pub struct TraceService {
    store: Arc<dyn TraceStore>,
    feedback: Arc<dyn FeedbackStore>,
    tenants: Arc<dyn TenantStore>,
    /// The storage writer's queue.
    stored: Arc<SpanQueue>,
    /// The OTLP exporter's queue, when an endpoint is set.
    exported: Option<Arc<SpanQueue>>,
    tracer: Tracer,
    config: TracingConfig,
}

impl TraceService {
    /// Deletes expired traces now and then every `every` until `stop` (one pass per node is
    /// harmless: deletes are idempotent).
    pub async fn keep_retention(self: Arc<Self>, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.sweep(cairn_core::trace::now_ns()).await {
                tracing::warn!(error = %e, "trace retention pass failed; will retry");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Starts the span writer over `store` (and the OTLP exporter when `config.otlp` names an
    /// endpoint); content is redacted by `redact` under `full` capture. Errors are
    /// configuration problems.
    pub fn start(
        store: Arc<dyn TraceStore>,
        feedback: Arc<dyn FeedbackStore>,
        tenants: Arc<dyn TenantStore>,
        metrics: Arc<Metrics>,
        config: &TracingConfig,
        redact: Option<Arc<dyn Redact>>,
    ) -> std::result::Result<Self, String> {
        let settings = SpanQueueSettings {
            capacity: config.queue,
            batch: config.batch,
            flush: Duration::from_millis(config.flush_ms.max(1)),
        };
        let writer = Arc::new(StoreWriter { store: store.clone(), metrics: metrics.clone() });
        let stored = SpanQueue::start(writer, metrics.spans_dropped.clone(), settings);
        let exported = OtlpExporter::new(&config.otlp, metrics.clone())?.map(|exporter| {
            let settings = SpanQueueSettings {
                capacity: config.otlp.queue,
                batch: config.otlp.batch,
                flush: Duration::from_millis(config.otlp.flush_ms.max(1)),
            };
            SpanQueue::start(Arc::new(exporter), metrics.otlp_spans_dropped.clone(), settings)
        });
        let sink: Arc<dyn SpanSink> = match &exported {
            None => stored.clone(),
            Some(e) => Arc::new(Fanout(vec![stored.clone(), e.clone()])),
        };
        let tracer = Tracer::new(sink, config.capture, redact);
        Ok(Self { store, feedback, tenants, stored, exported, tracer, config: config.clone() })
    }

    /// The tracer services record spans through.
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// Waits until every span finished so far is stored and exported (or given up on):
    /// tests, shutdown.
    pub async fn flush(&self) {
        self.stored.flush().await;
        if let Some(e) = &self.exported {
            e.flush().await;
        }
    }

    /// Waits until every span finished so far is stored (not exported).
    pub async fn flush_stored(&self) {
        self.stored.flush().await;
    }

    /// Traces matching `q` that the caller may read.
    pub async fn list(&self, p: &Principal, q: TraceListRequest) -> Result<TraceList> {
        p.require(Role::Reader)?;
        let tenant_id = p.readable_tenant(q.tenant.as_deref())?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid_param("limit", format!("limit must be 1-{MAX_LIMIT}")));
        }
        let ms_to_ns = |param: &str, v: Option<i64>| -> Result<Option<i64>> {
            v.map(|ms| {
                if ms < 0 {
                    return Err(Error::invalid_param(param, format!("{param} must not be negative")));
                }
                ms.checked_mul(1_000_000).ok_or_else(|| Error::invalid_param(param, format!("{param} is too large")))
            })
            .transpose()
        };
        let non_negative = |param: &str, v: Option<f64>, max: f64| -> Result<Option<f64>> {
            match v {
                Some(x) if !x.is_finite() || x < 0.0 || x > max => {
                    Err(Error::invalid_param(param, format!("{param} must be a number from 0 to {max}")))
                }
                other => Ok(other),
            }
        };
        let after = q.after.as_deref().map(parse_cursor).transpose()?;
        let query = TraceQuery {
            tenant_id,
            from_ns: ms_to_ns("from_ms", q.from_ms)?,
            to_ns: ms_to_ns("to_ms", q.to_ms)?,
            model: q.model,
            key_id: q.key_id,
            status: q.status.map(|s| match s {
                StatusFilter::Ok => SpanStatus::Ok,
                StatusFilter::Error => SpanStatus::Error,
            }),
            min_duration_ns: non_negative("min_latency_ms", q.min_latency_ms, 9e12)?.map(|ms| (ms * 1e6).ceil() as i64),
            min_cost: non_negative("min_cost_usd", q.min_cost_usd, 9e9)?.map(NanoUsd::ceil_usd),
            run_id: q.run_id,
            session_id: q.session_id,
            user: q.user,
            after,
            limit,
        };
        let data = self.store.list_traces(&query).await?;
        let next = (data.len() == limit as usize)
            .then(|| data.last().map(|t| format!("{}_{}", t.start_ns, t.trace_id)))
            .flatten();
        Ok(TraceList { object: "list".into(), data, next })
    }

    /// The overview's aggregates over the caller's (or, for owners, any or every) tenant.
    pub async fn stats(&self, p: &Principal, q: crate::stats::StatsRequest) -> Result<crate::stats::Stats> {
        crate::stats::stats(&*self.store, p, q, cairn_core::time::now_ms()).await
    }

    /// One trace with its span tree; another tenant's is "not found".
    pub async fn get(&self, p: &Principal, trace_id: &str) -> Result<TraceDetail> {
        p.require(Role::Reader)?;
        let not_found = || Error::NotFound(format!("no trace '{}'", trace_id.chars().take(64).collect::<String>()));
        trace_id.parse::<TraceId>().map_err(|_| not_found())?;
        let tenant = (p.role != Role::Owner).then_some(p.tenant_id.as_str());
        let (trace, spans) = self.store.get_trace(tenant, trace_id).await?.ok_or_else(not_found)?;
        let feedback = self.feedback.feedback_for_trace(Some(&trace.tenant_id), trace_id).await?;
        Ok(TraceDetail { object: "trace".into(), trace, spans: tree(spans), feedback })
    }

    /// Deletes traces past their tenant's retention as of `now_ns`; returns how many went.
    pub async fn sweep(&self, now_ns: i64) -> Result<u64> {
        const DAY_NS: i64 = 86_400 * 1_000_000_000;
        let mut removed = 0;
        let cut = |days: u32| (days > 0).then(|| now_ns.saturating_sub(i64::from(days) * DAY_NS));
        for tenant in self.tenants.list_tenants().await? {
            if let Some(before) = cut(self.config.retention_for(&tenant.id)) {
                while self.feedback.delete_feedback_before(&tenant.id, before / 1_000_000, SWEEP_BATCH).await?
                    == u64::from(SWEEP_BATCH)
                {}
                loop {
                    let n = self.store.delete_traces_before(Some(&tenant.id), before, SWEEP_BATCH).await?;
                    removed += n;
                    if n < u64::from(SWEEP_BATCH) {
                        break;
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Reads an `after` cursor (`<start_ns>_<trace_id>`).
fn parse_cursor(s: &str) -> Result<TraceCursor> {
    let bad = || Error::invalid_param("after", "after must be the `next` of a previous page");
    let (start, id) = s.split_once('_').ok_or_else(bad)?;
    let start_ns = start.parse::<i64>().map_err(|_| bad())?;
    // Only compared with stored ids, so any 32 lowercase hex digits will do.
    if id.len() != 32 || !id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(bad());
    }
    Ok(TraceCursor { start_ns, trace_id: id.to_owned() })
}

/// Nests spans under their parents; a span whose parent is not stored is a root.
fn tree(spans: Vec<StoredSpan>) -> Vec<SpanNode> {
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut children: HashMap<String, Vec<StoredSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        match s.parent_id.clone().filter(|p| ids.contains(p) && *p != s.span_id) {
            Some(parent) => children.entry(parent).or_default().push(s),
            None => roots.push(s),
        }
    }
    // Iterative, so a hostile deep chain of spans cannot overflow the stack; a cycle (spans
    // naming each other) is never reached from a root and is dropped.
    fn build(span: StoredSpan, children: &mut HashMap<String, Vec<StoredSpan>>) -> Option<SpanNode> {
        let mut stack: Vec<(StoredSpan, Vec<StoredSpan>, Vec<SpanNode>)> = Vec::new();
        let kids = children.remove(&span.span_id).unwrap_or_default();
        stack.push((span, kids.into_iter().rev().collect(), Vec::new()));
        while let Some(top) = stack.last_mut() {
            if let Some(next) = top.1.pop() {
                let kids = children.remove(&next.span_id).unwrap_or_default();
                stack.push((next, kids.into_iter().rev().collect(), Vec::new()));
                continue;
            }
            let (span, _, done) = stack.pop()?;
            let node = SpanNode { span, children: done };
            match stack.last_mut() {
                Some(parent) => parent.2.push(node),
                None => return Some(node),
            }
        }
        None
    }
    roots.into_iter().filter_map(|r| build(r, &mut children)).collect()
}
