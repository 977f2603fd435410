//! `cairn-bench cache`: what an exact-cache hit costs. One `cairn serve` in front of the bench
//! upstream, with two aliases of the same target: `bench` (no cache) and `cached`. After one
//! call fills the entry, every `cached` request is a hit. Open-loop runs at a fixed rate, side
//! by side in one run: the upstream direct vs a hit, and Cairn uncached vs a hit (both through
//! the same server, keys, limits and tracing as any call); then hits alone at that rate, the
//! machine carrying one path's load instead of two. Then the semantic cache: an alias
//! whose partition holds `SEMANTIC_ENTRIES` stored questions (same system prompt), asked a
//! paraphrase of one of them, so every request misses the exact tier, embeds the question with
//! the in-process MiniLM, scores every candidate and checks agreement: an exact hit beside a
//! semantic hit, at a hundredth of the rate (embedding a question takes about 25 ms of one core
//! on the 2-core machine: more than that rate would queue).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;

use crate::load::{self, Target};

/// Questions stored in the semantic alias's partition before the run (its `max_candidates`).
const SEMANTIC_ENTRIES: usize = 1_000;
use crate::{row, server_time, start_cairn, upstream, BENCH_KEY};

/// Runs the benchmark against the `cairn` binary: `seconds` per run at `rate` requests/s.
pub async fn run(cairn: PathBuf, seconds: u64, rate: u32) -> Result<()> {
    let upstream = upstream::start().await?;
    let dir = tempfile::tempdir()?;
    let cached = "[models.cached]\ntargets = [{ provider = \"up\", model = \"bench\" }]\ncache = { ttl_s = 3600 }\n\
                  [local]\nthreads = 1\n[providers.local]\nkind = \"local\"\n\
                  [models.\"local/minilm\"]\nkind = \"embedding\"\ntargets = [{ provider = \"local\", model = \"minilm\" }]\n\
                  [models.semantic]\ntargets = [{ provider = \"up\", model = \"bench\" }]\n\
                  cache = { ttl_s = 3600, semantic = { max_candidates = 1000 } }\n";
    let (server, port, _) = start_cairn(&cairn, dir.path(), upstream, cached).await?;
    let ask = |model: &str, question: &str| {
        Bytes::from(format!(
            r#"{{"model":"{model}","temperature":0,"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{question}"}}]}}"#
        ))
    };
    let body = |model: &str| ask(model, "Say hello to the benchmark.");
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
    let _ = load::paired_rate(&uncached, &hit, 200, warm, false).await;
    let dur = Duration::from_secs(seconds);
    println!("## Exact-cache hits (cairn-bench cache, {seconds}s per run at {rate} req/s each path, non-streaming)\n");
    println!(
        "| run (a vs b) | rate | a p50 | a p99 | b p50 | b p99 | b-a p50 | b-a p99 | generator lag p99 | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let cpu_before = load::cpu_time(server.0.id());
    let from = cairn_core::trace::now_ns();
    let (a, b, lag) = load::paired_rate(&direct, &hit, rate, dur, false).await?;
    let hit_window = from..cairn_core::trace::now_ns();
    let cpu_after = load::cpu_time(server.0.id());
    row("upstream direct vs Cairn cache hit", rate, &a, &b, lag);
    let (a, b, lag) = load::paired_rate(&uncached, &hit, rate, dur, false).await?;
    row("Cairn uncached vs Cairn cache hit", rate, &a, &b, lag);
    // The paired runs put two paths' load on the machine; this one, the goal's load alone.
    let (solo, lag) = load::solo_rate(&hit, rate, dur).await?;
    println!(
        "| Cairn cache hit alone | {rate} | | | {:.3} ms | {:.3} ms | | | {lag:.2} ms | {} |",
        solo.p50, solo.p99, solo.errors
    );
    let metrics = load::metrics(port).await.unwrap_or_default();
    let count = |result: &str| {
        let series = format!("cairn_cache_lookups_total{{model=\"cached\",endpoint=\"chat\",result=\"{result}\"}}");
        load::sample(&metrics, &series).unwrap_or("0").to_owned()
    };
    println!("\nCache lookups on `cached`: {} hits, {} misses.", count("hit"), count("miss"));
    // In the first run Cairn answers only hits: its CPU per hit, which moves far less with the
    // machine's noise than a p99 does.
    if let (Some(t0), Some(t1)) = (cpu_before, cpu_after) {
        let hits = (rate as f64 * seconds as f64).max(1.0);
        println!(
            "CPU per hit in the first run (every thread of the server): {:.0} µs.\n",
            (t1 - t0).as_secs_f64() * 1e6 / hits
        );
    }
    let parts: [server_time::Part; 1] = [("a hit, from the server's first to its last byte", |r| r.whole)];
    server_time::report(dir.path(), port, hit_window, "The first run's hits as the server timed them", &parts).await?;

    // The semantic tier: fill the partition, then ask a paraphrase of the first question.
    let semantic = |question: &str| Target { body: ask("semantic", question), ..via("semantic") };
    let filled = std::time::Instant::now();
    for i in 0..SEMANTIC_ENTRIES {
        let question = if i == 0 {
            "How do I delete a local git branch?".to_owned()
        } else {
            format!("What happened in the year {}?", 1000 + i)
        };
        if load::one(&client, &semantic(&question)).await.is_none() {
            bail!("filling the semantic cache failed at entry {i}");
        }
    }
    let fill = filled.elapsed();
    let paraphrase = semantic("How can I remove a local branch in git?");
    let exact = semantic("How do I delete a local git branch?");
    let slow = (rate / 100).max(1);
    let _ = load::paired_rate(&exact, &paraphrase, slow, warm, false).await;
    println!(
        "## Semantic-cache hits ({SEMANTIC_ENTRIES} stored questions in the partition, filled in {:.1}s)\n",
        fill.as_secs_f64()
    );
    println!(
        "| run (a vs b) | rate | a p50 | a p99 | b p50 | b p99 | b-a p50 | b-a p99 | generator lag p99 | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (a, b, lag) = load::paired_rate(&exact, &paraphrase, slow, dur, false).await?;
    row("exact hit vs semantic hit (embed + 1000 candidates + agreement)", slow, &a, &b, lag);
    let metrics = load::metrics(port).await.unwrap_or_default();
    let semantic_hits = load::sample(&metrics, "cairn_cache_semantic_hits_total{model=\"semantic\"}").unwrap_or("0");
    println!("\nSemantic hits on `semantic`: {semantic_hits}.\n");
    Ok(())
}
