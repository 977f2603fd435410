//! `cairn-bench traces`: what tracing costs and how its storage holds up.
//!
//! 1. Overhead: two `cairn serve` processes in front of the same stand-in upstream, one with
//!    tracing off and one with metadata capture, driven in one interleaved open-loop run (so
//!    both see the same machine at the same moment), and each against the direct path.
//! 2. Ingestion on SQLite: spans written through the store's batch insert (what the span writer
//!    does), as spans per second, then a sustained paced stream through the bounded span queue
//!    (nothing may be dropped).
//! 3. Reads with the store full (default one million spans): the trace list newest first, with
//!    a model filter, errors only, by minimum cost, and one trace's spans.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use cairn_core::config::TracingConfig;
use cairn_core::store::Store;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::trace::{attrs, AttrValue, SpanId, SpanKind, SpanRecord, SpanSink, SpanStatus, TraceId, TraceQuery};
use cairn_core::usage::NanoUsd;
use cairn_telemetry::stats::{StatsBucket, StatsRequest};
use cairn_telemetry::{Metrics, SpanQueue, SpanQueueSettings, StoreWriter, TraceService};
use rand::Rng;

use crate::load::{self, Target};
use crate::{row, server_time, start_cairn, upstream, BENCH_KEY};

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const MODELS: [&str; 3] = ["fast", "smart", "embed"];
const DAY_NS: i64 = 86_400_000_000_000;

/// The `cairn serve` processes of the overhead runs.
pub struct Servers {
    /// The binary.
    pub cairn: PathBuf,
    /// Their `gateway.usage_commit`.
    pub usage_commit: cairn_core::config::UsageCommit,
}

/// Runs all three parts (the last two only with `storage_only`).
pub async fn run(
    servers: Servers,
    seconds: u64,
    rate: u32,
    spans: u64,
    batch: usize,
    storage_only: bool,
) -> Result<()> {
    if !storage_only {
        overhead(&servers, seconds, rate).await?;
    }
    storage(spans, batch.max(1)).await
}

async fn overhead(servers: &Servers, seconds: u64, rate: u32) -> Result<()> {
    let upstream = upstream::start().await?;
    let (dir_off, dir_on) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let config = |capture: &str| {
        format!("[gateway]\nusage_commit = {}\n[tracing]\ncapture = \"{capture}\"", mode_name(servers.usage_commit))
    };
    let cairn = servers.cairn.as_path();
    let (off_node, port_off, _) = start_cairn(cairn, dir_off.path(), upstream, &config("off")).await?;
    let (on_node, port_on, _) = start_cairn(cairn, dir_on.path(), upstream, &config("metadata")).await?;
    let cpu = || (load::cpu_time(off_node.0.id()), load::cpu_time(on_node.0.id()));
    let body = Bytes::from_static(
        br#"{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}"#,
    );
    let direct = Target { url: format!("http://{upstream}/v1/chat/completions"), key: None, body: body.clone() };
    let via = |port: u16| Target {
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        key: Some(BENCH_KEY.into()),
        body: body.clone(),
    };
    let (off, on) = (via(port_off), via(port_on));
    let warm = Duration::from_secs(1);
    let _ = load::paired_rate(&off, &on, 200, warm, false).await;
    let _ = load::paired_rate(&direct, &on, 200, warm, false).await;
    let dur = Duration::from_secs(seconds);
    println!(
        "## Tracing overhead (cairn-bench traces, {seconds}s per run at {rate} req/s each path, non-streaming, usage_commit = {})\n",
        mode_name(servers.usage_commit)
    );
    println!(
        "| run (a vs b) | rate | a p50 | a p99 | b p50 | b p99 | b-a p50 | b-a p99 | generator lag p99 | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (d, c, lag) = load::paired_rate(&direct, &off, rate, dur, false).await?;
    row("direct vs Cairn, tracing off", rate, &d, &c, lag);
    let (d, c, lag) = load::paired_rate(&direct, &on, rate, dur, false).await?;
    row("direct vs Cairn, tracing on (metadata)", rate, &d, &c, lag);
    let before = cpu();
    let window = cairn_core::trace::now_ns();
    let (d, c, lag) = load::paired_rate(&off, &on, rate, dur, false).await?;
    let after = cpu();
    row("tracing off vs tracing on", rate, &d, &c, lag);
    // CPU per request is what tracing costs on a machine whose cores are all busy, where it
    // turns into latency; unlike a p99 it hardly moves with the machine's noise.
    if let ((Some(off0), Some(on0)), (Some(off1), Some(on1))) = (before, after) {
        let n = (rate as f64 * seconds as f64).max(1.0);
        let per = |a: Duration, b: Duration| (b - a).as_secs_f64() * 1e6 / n;
        println!(
            "\nCPU per request in the last run (every thread of the server): tracing off {:.0} µs, on {:.0} µs.",
            per(off0, off1),
            per(on0, on1)
        );
    }
    let metrics = load::metrics(port_on).await.unwrap_or_default();
    let count = |series: &str| load::sample(&metrics, series).unwrap_or("?").to_owned();
    println!(
        "\nSpans written by the traced server: {}; dropped: {}.",
        count("cairn_spans_written_total"),
        count("cairn_spans_dropped_total")
    );
    own_time(dir_on.path(), port_on, window).await
}

/// The setting's name in configuration (a quoted string, as TOML and JSON write it).
fn mode_name(mode: cairn_core::config::UsageCommit) -> String {
    serde_json::to_string(&mode).unwrap_or_default()
}

/// Cairn's own time per request in the traced server's last run, from its spans: each
/// request's server span less the upstream calls (client spans) inside it. What the client
/// measures besides is the machine's: sockets, and waiting for a CPU on a shared machine.
async fn own_time(dir: &std::path::Path, port: u16, since_ns: i64) -> Result<()> {
    let parts: [server_time::Part; 5] = [
        ("the request less its upstream call", |r| r.whole - r.upstream),
        ("around the model call (auth, parsing, answering, waiting for the usage record)", |r| r.whole - r.model_call),
        ("inside the model call, besides the upstream attempt (routing, accounting)", |r| r.model_call - r.upstream),
        ("the upstream attempt (Cairn's HTTP client, its socket, the upstream)", |r| r.upstream),
        ("the whole request, from the server's first to its last byte", |r| r.whole),
    ];
    let title = "Cairn's own time per request in that run, tracing on, from its spans";
    server_time::report(dir, port, since_ns..i64::MAX, title, &parts).await
}

/// One request's spans (the HTTP request, its model call and the call's attempt), starting
/// at `start`.
fn request_spans(rng: &mut impl Rng, start: i64) -> [SpanRecord; 3] {
    let tenant = TENANTS[rng.gen_range(0..TENANTS.len())];
    let model = MODELS[rng.gen_range(0..MODELS.len())];
    let took = rng.gen_range(50_000_000..2_000_000_000i64);
    let failed = rng.gen_ratio(1, 50);
    let trace = TraceId::fresh();
    let span =
        |parent: Option<SpanId>, name: String, kind, at: i64, end: i64, attributes: Vec<(&'static str, AttrValue)>| {
            SpanRecord {
                trace_id: trace,
                span_id: SpanId::random(),
                parent_id: parent,
                root: parent.is_none(),
                tenant_id: tenant.into(),
                name,
                kind,
                start_ns: at,
                end_ns: end,
                status: if failed { SpanStatus::Error } else { SpanStatus::Ok },
                status_message: failed.then(|| "upstream answered 503".into()),
                attributes: attributes.into_iter().map(|(k, v)| (Cow::Borrowed(k), v)).collect(),
            }
        };
    let key = format!("key_{}", rng.gen_range(0..20));
    let root = span(
        None,
        "POST /v1/chat/completions".into(),
        SpanKind::Server,
        start,
        start + took + 300_000,
        vec![
            (attrs::HTTP_METHOD, "POST".into()),
            (attrs::HTTP_ROUTE, "/v1/chat/completions".into()),
            (attrs::HTTP_STATUS, 200i64.into()),
            (attrs::KEY_ID, key.clone().into()),
            (attrs::REQUEST_ID, format!("req_{}", TraceId::random()).into()),
        ],
    );
    let (input, output) = (rng.gen_range(10..4000i64), rng.gen_range(1..1000i64));
    let call = span(
        Some(root.span_id),
        format!("chat {model}"),
        SpanKind::Internal,
        start + 100_000,
        start + took + 200_000,
        vec![
            (attrs::OPERATION, "chat".into()),
            (attrs::REQUEST_MODEL, model.into()),
            (attrs::CALL_ID, TraceId::random().to_string().into()),
            (attrs::KEY_ID, key.into()),
            (attrs::PROVIDER, "openai".into()),
            (attrs::RESPONSE_MODEL, format!("{model}-2026").into()),
            (attrs::INPUT_TOKENS, input.into()),
            (attrs::OUTPUT_TOKENS, output.into()),
            (attrs::COST_USD, AttrValue::Float((input as f64 * 0.15 + output as f64 * 0.6) / 1e6)),
            (attrs::TTFT_MS, (took / 4_000_000).into()),
            (attrs::RETRIES, 0u32.into()),
            (attrs::FALLBACKS, 0u32.into()),
        ],
    );
    let attempt = span(
        Some(call.span_id),
        format!("chat {model}-2026"),
        SpanKind::Client,
        start + 150_000,
        start + took + 100_000,
        vec![(attrs::OPERATION, "chat".into()), (attrs::PROVIDER, "openai".into()), (attrs::ATTEMPT, 0u32.into())],
    );
    [root, call, attempt]
}

async fn storage(total: u64, batch: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(cairn_store::SqliteStore::open(&dir.path().join("bench.db"), 4).await?);
    let mut rng = rand::thread_rng();
    let now = cairn_core::trace::now_ns();
    // The store fills as it would over a week of traffic: requests in time order, the week
    // ending now.
    let step = 7 * DAY_NS / (total / 3).max(1) as i64;
    let mut at = now - 7 * DAY_NS;

    // Batch inserts, as the span writer makes them.
    let started = Instant::now();
    let mut written = 0u64;
    while written < total {
        let mut spans = Vec::with_capacity(batch);
        while spans.len() < batch {
            spans.extend(request_spans(&mut rng, at));
            at += step;
        }
        store.insert_spans(&spans).await?;
        written += spans.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("## Span storage on SQLite (cairn-bench traces)\n");
    println!("| measure | value |\n|---|---|");
    println!("| spans written in batches of {batch} (3 per request: HTTP, model call, attempt) | {written} in {secs:.1} s: {:.0} spans/s |", written as f64 / secs);

    // A sustained stream through the bounded queue: 20,000 spans/s for 5 s, paced.
    let metrics = Arc::new(Metrics::new());
    let settings = SpanQueueSettings { capacity: 20_000, batch, flush: Duration::from_millis(200) };
    let writer = Arc::new(StoreWriter { store: store.clone(), metrics: metrics.clone() });
    let queue = SpanQueue::start(writer, metrics.spans_dropped.clone(), settings);
    let (rate, secs) = (20_000u64, 5u64);
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    for tick in 0..(secs * 100) {
        tokio::time::sleep_until(start + Duration::from_millis(tick * 10)).await;
        while sent < rate * (tick + 1) / 100 {
            for s in request_spans(&mut rng, cairn_core::trace::now_ns()) {
                queue.submit(s);
            }
            sent += 3;
        }
    }
    queue.flush().await;
    let took = start.elapsed().as_secs_f64();
    let dropped = metrics.spans_dropped.get();
    println!(
        "| sustained through the span queue at {rate} spans/s for {secs} s | {sent} submitted, {} written, {dropped} dropped, all written {took:.2} s after the first |",
        metrics.spans_written.get()
    );

    // Reads over the full store.
    let stored = written + metrics.spans_written.get();
    let q = |f: fn(&mut TraceQuery)| {
        let mut q = TraceQuery { tenant_id: Some("acme".into()), limit: 50, ..Default::default() };
        f(&mut q);
        q
    };
    let queries: [(&str, TraceQuery); 5] = [
        ("trace list, newest first (50)", q(|_| {})),
        ("trace list, model = smart", q(|q| q.model = Some("smart".into()))),
        ("trace list, errors only", q(|q| q.status = Some(SpanStatus::Error))),
        ("trace list, cost >= $0.002", q(|q| q.min_cost = Some(NanoUsd::from_usd(0.002)))),
        ("trace list, every tenant (owner)", q(|q| q.tenant_id = None)),
    ];
    println!("\n| query, {stored} spans stored | p50 | max (20 runs) |\n|---|---|---|");
    let mut last_id = None;
    for (name, query) in queries {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let found = store.list_traces(&query).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            last_id = found.first().map(|t| t.trace_id.clone()).or(last_id);
        }
        times.sort_by(f64::total_cmp);
        println!("| {name} | {:.2} ms | {:.2} ms |", load::percentile(&times, 0.5), times[times.len() - 1]);
    }
    if let Some(id) = last_id {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            store.get_trace(None, &id).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| one trace with its spans | {:.2} ms | {:.2} ms |",
            load::percentile(&times, 0.5),
            times[times.len() - 1]
        );
    }
    // The overview's aggregates (what the dashboard's first page asks), over hourly rollups.
    let traces = TraceService::start(
        store.clone(),
        store.clone(),
        store.clone(),
        Arc::new(Metrics::new()),
        &TracingConfig::default(),
        None,
    )
    .map_err(anyhow::Error::msg)?;
    let owner =
        Principal { key_id: "bench".into(), tenant_id: "acme".into(), role: Role::Owner, limits: KeyLimits::default() };
    let now_ms = now / 1_000_000;
    let windows: [(&str, i64, StatsBucket, Option<&str>); 4] = [
        ("overview, last 24 h by hour, one tenant", 1, StatsBucket::Hour, Some("acme")),
        ("overview, last 7 days by day, one tenant", 7, StatsBucket::Day, Some("acme")),
        ("overview, last 7 days by hour, every tenant (owner)", 7, StatsBucket::Hour, None),
        ("overview, last 30 days by day, every tenant (owner)", 30, StatsBucket::Day, None),
    ];
    for (name, days, bucket, tenant) in windows {
        let mut times = Vec::new();
        for _ in 0..20 {
            let req = StatsRequest {
                from_ms: Some(now_ms - days * 86_400_000),
                to_ms: Some(now_ms + 1),
                bucket: Some(bucket),
                tenant: tenant.map(str::to_owned),
            };
            let t = Instant::now();
            traces.stats(&owner, req).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!("| {name} | {:.2} ms | {:.2} ms |", load::percentile(&times, 0.5), times[times.len() - 1]);
    }
    let file = cairn_store::traces_path(&dir.path().join("bench.db"));
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "| traces file size | {:.0} MB ({:.0} bytes per span) | |",
        size as f64 / 1e6,
        size as f64 / stored as f64
    );
    Ok(())
}
