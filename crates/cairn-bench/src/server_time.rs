//! What the server measured itself, from the spans it wrote: each request's server span, the
//! model call inside it and its upstream attempts. Beside the client's figures these split a
//! request's time into Cairn's own work and what the machine adds around it (sockets, waiting
//! for a CPU on a shared machine).

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::load;

/// One request as its spans tell it, in nanoseconds.
pub struct Request {
    /// The server span: the request from the server's first to its last byte.
    pub whole: i64,
    /// The longest internal span inside it (the model call; 0 when there is none).
    pub model_call: i64,
    /// The client spans inside it (upstream attempts), summed.
    pub upstream: i64,
}

/// A row of the report: its name and the part of a request it measures.
pub type Part = (&'static str, fn(&Request) -> i64);

/// Prints p50, p99 and max of each of `parts` over the requests of the server on `port`
/// (its data directory under `dir`) that started within `window` (Unix nanoseconds), once the
/// span writer has caught up.
pub async fn report(dir: &Path, port: u16, window: Range<i64>, title: &str, parts: &[Part]) -> Result<()> {
    // The span writer commits in batches: wait until the count stops moving.
    let written = || async {
        let m = load::metrics(port).await.unwrap_or_default();
        load::sample(&m, "cairn_spans_written_total").map(str::to_owned)
    };
    let mut last = written().await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = written().await;
        if now == last {
            break;
        }
        last = now;
    }
    let file = dir.join("data").join("cairn-traces.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&file).read_only(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await?;
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT s.end_ns - s.start_ns, \
         COALESCE((SELECT MAX(c.end_ns - c.start_ns) FROM spans c WHERE c.tenant_id = s.tenant_id \
         AND c.trace_id = s.trace_id AND c.kind = 'internal'), 0), \
         COALESCE((SELECT SUM(c.end_ns - c.start_ns) FROM spans c WHERE c.tenant_id = s.tenant_id \
         AND c.trace_id = s.trace_id AND c.kind = 'client'), 0) \
         FROM spans s WHERE s.kind = 'server' AND s.start_ns >= ?1 AND s.start_ns < ?2",
    )
    .bind(window.start)
    .bind(window.end)
    .fetch_all(&pool)
    .await?;
    let requests: Vec<Request> =
        rows.into_iter().map(|(whole, model_call, upstream)| Request { whole, model_call, upstream }).collect();
    println!("\n{title} ({} requests):\n\n| part | p50 | p99 | max |\n|---|---|---|---|", requests.len());
    for (name, part) in parts {
        let mut v: Vec<f64> = requests.iter().map(|r| part(r) as f64 / 1e6).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms |",
            load::percentile(&v, 0.50),
            load::percentile(&v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!();
    Ok(())
}
