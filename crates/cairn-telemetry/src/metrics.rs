//! The metrics registry: one struct holding every metric family, rendered in Prometheus text
//! format by `/metrics`. Families are labelled with small, bounded label sets (route templates,
//! model aliases, provider names), never with ids.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label set: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

type HistFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~65 s: gateway overhead sits at the bottom, model latency at the top.
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn rate_histogram() -> Histogram {
    // 1 .. ~16k tokens per second.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

/// Every metric Cairn exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route template, method and status.
    pub http_requests: Family<Labels, Counter>,
    /// HTTP request duration by route template (to response headers for streams).
    pub http_duration: HistFamily,
    /// Model calls by model alias, endpoint, provider and final status.
    pub model_calls: Family<Labels, Counter>,
    /// Model call latency by model alias and endpoint.
    pub model_latency: HistFamily,
    /// Time to first token of streamed calls, by model alias.
    pub model_ttft: HistFamily,
    /// Tokens by model alias and direction (input, output).
    pub tokens: Family<Labels, Counter>,
    /// Cost in US dollars by model alias.
    pub cost_usd: Family<Labels, Counter<f64, AtomicU64>>,
    /// Upstream failures by provider and kind (connect, timeout, status_429, status_5xx, ...).
    pub upstream_errors: Family<Labels, Counter>,
    /// Retries by provider.
    pub retries: Family<Labels, Counter>,
    /// Fallbacks to a later target, by model alias.
    pub fallbacks: Family<Labels, Counter>,
    /// Circuit breaker state by provider and upstream model: 0 closed, 1 half-open, 2 open.
    pub breaker_state: Family<Labels, Gauge>,
    /// Streams currently being sent to clients.
    pub inflight_streams: Gauge,
    /// Requests refused by a per-key limit, by limit kind.
    pub limited: Family<Labels, Counter>,
    /// Usage records that could not be written (kept in memory and retried).
    pub usage_write_failures: Counter,
    /// Jobs enqueued, by type.
    pub jobs_enqueued: Family<Labels, Counter>,
    /// Jobs by type and state (queued, running, dead), refreshed from storage every few seconds.
    pub jobs_depth: Family<Labels, Gauge>,
    /// Time from a job being due to an attempt starting, by type.
    pub job_wait: HistFamily,
    /// Duration of attempts, by type.
    pub job_run: HistFamily,
    /// Finished attempts by type and outcome.
    pub job_attempts: Family<Labels, Counter>,
    /// Jobs moved to the dead-letter queue, by type.
    pub jobs_dead_lettered: Family<Labels, Counter>,
    /// Leases that ran out (a worker died or hung) and were taken back, by type.
    pub job_lease_expiries: Family<Labels, Counter>,
    /// Output tokens per second after the first token, by model alias.
    pub output_tokens_per_second: HistFamily,
    /// Cost in US dollars by tenant and model alias.
    pub tenant_cost_usd: Family<Labels, Counter<f64, AtomicU64>>,
    /// Agent runs that ended, by final state.
    pub agent_runs: Family<Labels, Counter>,
    /// Tool calls agent runs made, by outcome (`ok`, `error`).
    pub agent_tool_calls: Family<Labels, Counter>,
    /// Knowledge search latency (retrieval only), by mode.
    pub search_duration: HistFamily,
    /// Spans dropped because the write queue was full (or the writer had stopped).
    pub spans_dropped: Counter,
    /// Spans written to storage.
    pub spans_written: Counter,
    /// Span batches whose write failed (dropped after the retries).
    pub span_write_failures: Counter,
    /// Spans sent to the OTLP collector.
    pub otlp_spans_exported: Counter,
    /// Spans not exported: the export queue was full, or their batch failed every try.
    pub otlp_spans_dropped: Counter,
    /// Export batches given up on.
    pub otlp_export_failures: Counter,
    /// Response cache outcomes by model alias, endpoint and result (`hit`, `miss`, `bypass`).
    pub cache_lookups: Family<Labels, Counter>,
    /// Cache hits found by meaning (the semantic cache), by model alias.
    pub cache_semantic_hits: Family<Labels, Counter>,
    /// What cache hits would have cost had they gone upstream, by model alias.
    pub cache_saved_usd: Family<Labels, Counter<f64, AtomicU64>>,
    /// Cache reads and writes that failed (the call went on without the cache).
    pub cache_failures: Counter,
    /// Guard decisions by guard (`injection`, `pii_input`, ...) and outcome (`pass`, `flag`,
    /// `redact`, `block`).
    pub guard_decisions: Family<Labels, Counter>,
    /// Log lines dropped because the log's queue was full (stderr's reader fell behind).
    pub log_lines_dropped: Counter,
}

impl Metrics {
    /// A registry with every family registered under the `cairn_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let hist = || HistFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: hist(),
            model_calls: Family::default(),
            model_latency: hist(),
            model_ttft: hist(),
            tokens: Family::default(),
            cost_usd: Family::default(),
            upstream_errors: Family::default(),
            retries: Family::default(),
            fallbacks: Family::default(),
            breaker_state: Family::default(),
            inflight_streams: Gauge::default(),
            limited: Family::default(),
            usage_write_failures: Counter::default(),
            jobs_enqueued: Family::default(),
            jobs_depth: Family::default(),
            job_wait: hist(),
            job_run: hist(),
            job_attempts: Family::default(),
            jobs_dead_lettered: Family::default(),
            job_lease_expiries: Family::default(),
            output_tokens_per_second: HistFamily::new_with_constructor(rate_histogram as fn() -> Histogram),
            tenant_cost_usd: Family::default(),
            agent_runs: Family::default(),
            agent_tool_calls: Family::default(),
            search_duration: hist(),
            spans_dropped: Counter::default(),
            spans_written: Counter::default(),
            span_write_failures: Counter::default(),
            otlp_spans_exported: Counter::default(),
            otlp_spans_dropped: Counter::default(),
            otlp_export_failures: Counter::default(),
            cache_lookups: Family::default(),
            cache_semantic_hits: Family::default(),
            cache_saved_usd: Family::default(),
            cache_failures: Counter::default(),
            guard_decisions: Family::default(),
            log_lines_dropped: crate::log_writer::lines_dropped(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests", m.http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request duration", m.http_duration.clone());
        registry.register("model_calls", "Model calls by final status", m.model_calls.clone());
        registry.register("model_latency_seconds", "Model call latency", m.model_latency.clone());
        registry.register("model_ttft_seconds", "Time to first token of streamed calls", m.model_ttft.clone());
        registry.register("model_tokens", "Model tokens by direction", m.tokens.clone());
        registry.register("model_cost_usd", "Model cost in US dollars", m.cost_usd.clone());
        registry.register("upstream_errors", "Upstream failures by kind", m.upstream_errors.clone());
        registry.register("upstream_retries", "Retries of upstream calls", m.retries.clone());
        registry.register("model_fallbacks", "Fallbacks to a later target", m.fallbacks.clone());
        registry.register(
            "breaker_state",
            "Circuit breaker state (0 closed, 1 half-open, 2 open)",
            m.breaker_state.clone(),
        );
        registry.register("inflight_streams", "Streams being sent to clients", m.inflight_streams.clone());
        registry.register("limited_requests", "Requests refused by a per-key limit", m.limited.clone());
        registry.register("usage_write_failures", "Failed writes of usage records", m.usage_write_failures.clone());
        registry.register("jobs_enqueued", "Jobs enqueued", m.jobs_enqueued.clone());
        registry.register("jobs_depth", "Jobs by type and state (queued, running, dead)", m.jobs_depth.clone());
        registry.register("job_wait_seconds", "Time from a job being due to its attempt starting", m.job_wait.clone());
        registry.register("job_run_seconds", "Duration of job attempts", m.job_run.clone());
        registry.register("job_attempts", "Finished job attempts by outcome", m.job_attempts.clone());
        registry.register("jobs_dead_lettered", "Jobs moved to the dead-letter queue", m.jobs_dead_lettered.clone());
        registry.register(
            "job_lease_expiries",
            "Job leases that ran out and were taken back",
            m.job_lease_expiries.clone(),
        );
        registry.register(
            "model_output_tokens_per_second",
            "Output tokens per second after the first token",
            m.output_tokens_per_second.clone(),
        );
        registry.register("tenant_cost_usd", "Model cost in US dollars by tenant and model", m.tenant_cost_usd.clone());
        registry.register("agent_runs", "Agent runs that ended, by final state", m.agent_runs.clone());
        registry.register("agent_tool_calls", "Tool calls made by agent runs, by outcome", m.agent_tool_calls.clone());
        registry.register("knowledge_search_seconds", "Knowledge search latency by mode", m.search_duration.clone());
        registry.register("spans_dropped", "Spans dropped because the write queue was full", m.spans_dropped.clone());
        registry.register("spans_written", "Spans written to storage", m.spans_written.clone());
        registry.register(
            "span_write_failures",
            "Span batches that could not be written",
            m.span_write_failures.clone(),
        );
        registry.register("otlp_spans_exported", "Spans sent to the OTLP collector", m.otlp_spans_exported.clone());
        registry.register(
            "otlp_spans_dropped",
            "Spans not exported (queue full or every try failed)",
            m.otlp_spans_dropped.clone(),
        );
        registry.register("otlp_export_failures", "OTLP export batches given up on", m.otlp_export_failures.clone());
        registry.register("cache_lookups", "Response cache outcomes (hit, miss, bypass)", m.cache_lookups.clone());
        registry.register(
            "cache_semantic_hits",
            "Response cache hits found by meaning (the semantic cache)",
            m.cache_semantic_hits.clone(),
        );
        registry.register(
            "cache_saved_usd",
            "Upstream cost saved by cache hits, in US dollars",
            m.cache_saved_usd.clone(),
        );
        registry.register("cache_failures", "Response cache reads and writes that failed", m.cache_failures.clone());
        registry.register("guard_decisions", "Guard decisions by guard and outcome", m.guard_decisions.clone());
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stderr's reader fell behind",
            m.log_lines_dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Renders every metric in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_families() {
        let m = Metrics::new();
        m.http_requests
            .get_or_create(&vec![("route", "/v1/models".into()), ("method", "GET".into()), ("status", "200".into())])
            .inc();
        m.model_latency.get_or_create(&vec![("model", "fast".into())]).observe(0.01);
        m.cost_usd.get_or_create(&vec![("model", "fast".into())]).inc_by(0.25);
        let text = m.render();
        assert!(text.contains("cairn_http_requests_total{route=\"/v1/models\",method=\"GET\",status=\"200\"} 1"));
        assert!(text.contains("cairn_model_latency_seconds_bucket"));
        assert!(text.contains("cairn_model_cost_usd_total{model=\"fast\"} 0.25"));
    }
}
