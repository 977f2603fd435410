//! What a shared rate-limit take costs: the same bucket operations on PostgreSQL (one atomic
//! statement) and on Redis (one Lua script), side by side in one run. Sequential takes give a
//! take's latency; takes from many tasks at once give throughput on one hot key and over many
//! keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_core::config::RedisConfig;
use cairn_core::store::{RateKind, RateStore, RateTake};
use cairn_redis::RedisRates;

/// Runs every measure on each store given.
pub async fn run(postgres: Option<String>, redis: Option<String>, takes: usize, tasks: usize) -> Result<()> {
    let mut stores: Vec<(&str, Arc<dyn RateStore>)> = Vec::new();
    if let Some(url) = postgres {
        let (store, _, _) = crate::pgsearch::fresh(&url).await?;
        stores.push(("PostgreSQL", store as Arc<dyn RateStore>));
    }
    if let Some(url) = redis {
        let prefix = format!("cairn-bench:{}:", cairn_core::time::now_ms());
        let cfg = RedisConfig { url, key_prefix: prefix, ..RedisConfig::default() };
        stores.push(("Redis", Arc::new(RedisRates::connect(&cfg).await.map_err(anyhow::Error::msg)?)));
    }
    anyhow::ensure!(!stores.is_empty(), "give --postgres URL and/or --redis URL");
    println!("## Shared rate-limit takes (cairn-bench rates, {takes} takes per measure, {tasks} tasks at once)\n");
    println!("| store | one take p50 | one take p99 | {tasks} tasks, one key | {tasks} tasks, a key each |");
    println!("|---|---|---|---|---|");
    for (name, store) in stores {
        let (p50, p99) = sequential(&*store, takes).await?;
        let hot = concurrent(&store, takes, tasks, false).await?;
        let spread = concurrent(&store, takes, tasks, true).await?;
        println!("| {name} | {p50:.3} ms | {p99:.3} ms | {hot:.0} takes/s | {spread:.0} takes/s |");
    }
    Ok(())
}

/// A take that always succeeds (a huge limit), so every run does the same work.
fn take() -> RateTake {
    RateTake { per_minute: 1e12, need: 1.0, take: 1.0, now_ms: cairn_core::time::now_ms() }
}

/// p50 and p99 of `n` takes one after another, in ms.
async fn sequential(store: &dyn RateStore, n: usize) -> Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        store.take_rate("seq", RateKind::Requests, take()).await?.map_err(|l| anyhow::anyhow!("refused at {l}"))?;
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    Ok((lat[n / 2], lat[(n * 99 / 100).min(n - 1)]))
}

/// Takes per second with `tasks` tasks sharing `n` takes, on one key or a key per task.
async fn concurrent(store: &Arc<dyn RateStore>, n: usize, tasks: usize, spread: bool) -> Result<f64> {
    let t0 = Instant::now();
    let per = n.div_ceil(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let store = store.clone();
            let key = if spread { format!("k{i}") } else { "hot".to_owned() };
            tokio::spawn(async move {
                for _ in 0..per {
                    store
                        .take_rate(&key, RateKind::Requests, take())
                        .await?
                        .map_err(|l| anyhow::anyhow!("refused at {l}"))?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    Ok((per * tasks) as f64 / t0.elapsed().max(Duration::from_micros(1)).as_secs_f64())
}
