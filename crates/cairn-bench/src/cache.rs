//! `cairn-bench cache`: what an exact-cache hit costs. One `cairn serve` in front of the bench
//! upstream, with two aliases of the same target: `bench` (no cache) and `cached`. After one
//! call fills the entry, every `cached` request is a hit. Open-loop runs at a fixed rate, side
//! by side in one run: the upstream direct vs a hit, and Cairn uncached vs a hit (both through
//! the same server, keys, limits and tracing as any call).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;

use crate::load::{self, Target};
use crate::{row, start_cairn, upstream, BENCH_KEY};

/// Runs the benchmark against the `cairn` binary: `seconds` per run at `rate` requests/s.
pub async fn run(cairn: PathBuf, seconds: u64, rate: u32) -> Result<()> {
    let upstream = upstream::start().await?;
    let dir = tempfile::tempdir()?;
    let cached = "[models.cached]\ntargets = [{ provider = \"up\", model = \"bench\" }]\ncache = { ttl_s = 3600 }\n";
    let (_server, port, _) = start_cairn(&cairn, dir.path(), upstream, cached).await?;
    let body = |model: &str| {
        Bytes::from(format!(
            r#"{{"model":"{model}","temperature":0,"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"Say hello to the benchmark."}}]}}"#
        ))
    };
    let via = |model: &str| Target {
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        key: Some(BENCH_KEY.into()),
        body: body(model),
    };
    let direct = Target { url: format!("http://{upstream}/v1/chat/completions"), key: None, body: body("bench") };
    let (uncached, hit) = (via("bench"), via("cached"));
    let client = load::client();
    if load::one(&client, &hit).await.is_none() {
        bail!("the first call to the cached alias failed");
    }
    let warm = Duration::from_secs(1);
    let _ = load::paired_rate(&client, &uncached, &hit, 200, warm, false).await;
    let dur = Duration::from_secs(seconds);
    println!("## Exact-cache hits (cairn-bench cache, {seconds}s per run at {rate} req/s each path, non-streaming)\n");
    println!(
        "| run (a vs b) | rate | a p50 | a p99 | b p50 | b p99 | b-a p50 | b-a p99 | generator lag p99 | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (a, b, lag) = load::paired_rate(&client, &direct, &hit, rate, dur, false).await;
    row("upstream direct vs Cairn cache hit", rate, &a, &b, lag);
    let (a, b, lag) = load::paired_rate(&client, &uncached, &hit, rate, dur, false).await;
    row("Cairn uncached vs Cairn cache hit", rate, &a, &b, lag);
    let metrics = load::metrics(port).await.unwrap_or_default();
    let count = |result: &str| {
        let line = format!("cairn_cache_lookups_total{{model=\"cached\",endpoint=\"chat\",result=\"{result}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).map(str::trim).unwrap_or("0").to_owned()
    };
    println!("\nCache lookups on `cached`: {} hits, {} misses.\n", count("hit"), count("miss"));
    Ok(())
}
