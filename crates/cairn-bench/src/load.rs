//! Load generation over a pooled HTTP/1.1 client: an open-loop run at a fixed rate (latency is
//! measured from each request's scheduled start, so a slow server cannot hide queueing) and a
//! closed-loop run with N workers for maximum throughput.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One request to send repeatedly.
#[derive(Clone)]
pub struct Target {
    /// Full URL.
    pub url: String,
    /// Bearer key, if any.
    pub key: Option<String>,
    /// JSON body.
    pub body: Bytes,
}

/// Latency percentiles of one run, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests completed per second.
    pub throughput: f64,
}

/// A pooled client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client with a large keep-alive pool.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(4096).build(connector)
}

/// Sends one request; returns (time to first body bytes, total time), or None on failure.
pub async fn one(client: &HttpClient, t: &Target) -> Option<(Duration, Duration)> {
    let start = Instant::now();
    let mut req = hyper::Request::post(&t.url).header("content-type", "application/json");
    if let Some(k) = &t.key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req.body(Full::new(t.body.clone())).ok()?;
    let resp = client.request(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut body = resp.into_body();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if first.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            first = Some(start.elapsed());
        }
    }
    let total = start.elapsed();
    Some((first.unwrap_or(total), total))
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; NaN when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Open loop at `rate` requests per second to each of `a` and `b`, interleaved (b half a
/// period after a), so both paths see the same machine conditions at the same time. Latency
/// is timed from each request's actual send; the generator's own lag behind schedule is
/// reported separately (a large lag means the generator, not the server, was overloaded).
/// `first_byte` picks time to first byte instead of total time.
///
/// The generator is built to add as little as it can to what it measures: it runs on a thread
/// of its own with a single-threaded runtime and a client (connections) of its own, so a
/// request and its response never cross between runtime threads, and a second thread keeps the
/// schedule with the OS's high-resolution sleep. Tokio's timer ticks in whole milliseconds: on
/// it, a's and b's requests left together in bursts, competing for the machine at the same
/// instant instead of half a period apart.
pub async fn paired_rate(a: &Target, b: &Target, rate: u32, duration: Duration, first_byte: bool) -> Result<Paired> {
    let (mut out, lag) = open_loop(vec![a.clone(), b.clone()], rate, duration, first_byte).await?;
    let b = out.pop().unwrap_or_default();
    let a = out.pop().unwrap_or_default();
    Ok((a, b, lag))
}

/// Open loop at `rate` requests per second to `t` alone, as [`paired_rate`] runs each side:
/// the machine then carries one path's load, not two. Returns its latencies and the
/// generator's lag p99 (ms).
pub async fn solo_rate(t: &Target, rate: u32, duration: Duration) -> Result<(Summary, f64)> {
    let (out, lag) = open_loop(vec![t.clone()], rate, duration, false).await?;
    Ok((out.into_iter().next().unwrap_or_default(), lag))
}

/// What [`paired_rate`] measured: a's and b's latencies and the generator's lag p99 (ms).
pub type Paired = (Summary, Summary, f64);

/// Runs [`generate`] on a thread of its own (see [`paired_rate`]).
async fn open_loop(
    targets: Vec<Target>,
    rate: u32,
    duration: Duration,
    first_byte: bool,
) -> Result<(Vec<Summary>, f64)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("bench-generator".into()).spawn(move || {
        let _ = tx.send(generate(targets, rate, duration, first_byte));
    })?;
    rx.await?
}

/// The open loop's work, on the calling thread: `rate` requests per second to each target, the
/// targets' requests spread evenly over each period.
fn generate(targets: Vec<Target>, rate: u32, duration: Duration, first_byte: bool) -> Result<(Vec<Summary>, f64)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sides = targets.len().max(1);
    runtime.block_on(async move {
        let client = client();
        // Connections are opened before the clock starts (one each at least; more open if
        // requests overlap), so the run times requests, not TCP handshakes.
        for t in &targets {
            for _ in 0..4 {
                let _ = one(&client, t).await;
            }
        }
        let n = (rate as f64 * duration.as_secs_f64()) as u32;
        let period = Duration::from_secs_f64(1.0 / rate as f64);
        let (tick, mut ticks) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
        let start = Instant::now();
        std::thread::Builder::new().name("bench-schedule".into()).spawn(move || {
            precise_sleep();
            for i in 0..n {
                for side in 0..sides {
                    let scheduled = start + period * i + (period / sides as u32) * side as u32;
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if tick.send((side, scheduled)).is_err() {
                        return;
                    }
                }
            }
        })?;
        let errors: Vec<Arc<AtomicU64>> = (0..sides).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let targets: Vec<Arc<Target>> = targets.into_iter().map(Arc::new).collect();
        let mut tasks: Vec<Vec<tokio::task::JoinHandle<Option<f64>>>> = (0..sides).map(|_| Vec::new()).collect();
        let mut lags = Vec::with_capacity(sides * n as usize);
        while let Some((side, scheduled)) = ticks.recv().await {
            lags.push(scheduled.elapsed().as_secs_f64() * 1000.0);
            let (client, t, errors) = (client.clone(), targets[side].clone(), errors[side].clone());
            tasks[side].push(tokio::spawn(async move {
                match one(&client, &t).await {
                    Some((ttfb, total)) => Some((if first_byte { ttfb } else { total }).as_secs_f64() * 1000.0),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }));
        }
        let elapsed = start.elapsed().as_secs_f64();
        let mut out = Vec::with_capacity(sides);
        for (side, handles) in tasks.into_iter().enumerate() {
            let mut lat = Vec::with_capacity(handles.len());
            for h in handles {
                if let Ok(Some(ms)) = h.await {
                    lat.push(ms);
                }
            }
            lat.sort_by(f64::total_cmp);
            out.push(Summary {
                p50: percentile(&lat, 0.50),
                p99: percentile(&lat, 0.99),
                errors: errors[side].load(Ordering::Relaxed),
                throughput: lat.len() as f64 / elapsed,
            });
        }
        lags.sort_by(f64::total_cmp);
        Ok((out, percentile(&lags, 0.99)))
    })
}

/// Asks the OS to wake this thread's sleeps on time: Linux lets a sleep overrun by the thread's
/// timer slack (50 µs by default) to batch wake-ups; the schedule wants 1 µs.
fn precise_sleep() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes an integer and touches only the calling thread's slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// The Prometheus text of the server on `port`, read with the bench's owner key.
pub async fn metrics(port: u16) -> Option<String> {
    let req = hyper::Request::get(format!("http://127.0.0.1:{port}/metrics"))
        .header("authorization", format!("Bearer {}", crate::BENCH_KEY))
        .body(Full::new(Bytes::new()))
        .ok()?;
    let resp = client().request(req).await.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

/// The value of the sample named `series` (name and labels, as Prometheus prints them) in
/// the metrics `text`.
pub fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')).map(str::trim)
}

/// `workers` concurrent request loops for `duration`: completed requests per second.
pub async fn max_throughput(client: &HttpClient, t: &Target, workers: usize, duration: Duration) -> Summary {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, t, done, errors) = (client.clone(), t.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match one(&client, &t).await {
                    Some(_) => done.fetch_add(1, Ordering::Relaxed),
                    None => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Summary {
        throughput: done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        errors: errors.load(Ordering::Relaxed),
        ..Default::default()
    }
}

/// CPU time (user and system, every thread) process `pid` has used so far, from
/// `/proc/PID/stat` (Linux; `None` elsewhere or when it has exited).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, so split after its closing paren):
    // utime and stime are the 12th and 13th of them, in clock ticks.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads only its argument.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / per_sec))
}
