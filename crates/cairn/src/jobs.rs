//! `cairn worker` and `cairn jobs ...`: job workers without the HTTP API, and the operator's
//! view of the queue, both straight on the configured storage.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cairn_access::AccessService;
use cairn_core::config::Config;
use cairn_core::time::{iso_datetime, now_ms};
use cairn_jobs::{EnqueueRequest, JobService, ListRequest, PurgeRequest, RetryDeadRequest, Worker};
use cairn_telemetry::Metrics;
use futures::StreamExt;

use crate::cli::{JobsCommand, WorkerArgs};

/// Builds the job service over the configured storage.
async fn service(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<JobService>> {
    let store = cairn::compose::store(config, config.storage.max_connections).await.map_err(|e| anyhow!(e))?;
    Ok(cairn::compose::jobs_only(config, store, metrics))
}

/// Runs workers until `signal`, then stops them gracefully.
pub async fn worker(mut config: Config, args: WorkerArgs, signal: impl Future<Output = ()>) -> Result<()> {
    let _log = cairn_telemetry::init_logging(config.log.format, &config.log.level);
    if let Some(c) = args.concurrency {
        if c == 0 {
            bail!("--concurrency must be at least 1");
        }
        config.jobs.default_concurrency = c;
        config.jobs.concurrency.clear();
    }
    // The same services as `cairn serve` (every job type, knowledge ingestion included).
    let state = cairn::compose::services(&config).await.map_err(|e| anyhow!(e))?;
    let (svc, metrics) = (state.jobs.clone(), state.metrics.clone());
    let known: Vec<String> = svc.types().into_iter().map(|t| t.kind).collect();
    if let Some(bad) = args.types.iter().find(|t| !known.contains(t)) {
        bail!("unknown job type '{bad}' (known: {})", known.join(", "));
    }
    let kinds = (!args.types.is_empty()).then_some(args.types);
    let stop = tokio_util::sync::CancellationToken::new();
    if let Some(bind) = &args.metrics_bind {
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /healthz and /metrics");
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(cairn_api::serve_metrics(listener, metrics, stopped));
    }
    let worker = Worker::new(svc, Worker::default_id(), kinds);
    worker.start();
    signal.await;
    stop.cancel();
    tracing::info!("shutting down: finishing running jobs");
    worker.shutdown(Duration::from_secs(config.server.shutdown_grace_secs)).await;
    // The usage of the model calls the last jobs made (ingestion embeddings) is on disk before
    // the process ends.
    state.gateway.flush_usage().await;
    Ok(())
}

/// `cairn jobs ...`, as the local operator (admin over every tenant).
pub async fn jobs(config: &Config, cmd: JobsCommand) -> Result<()> {
    let svc = service(config, Arc::new(Metrics::new())).await?;
    let op = AccessService::operator();
    match cmd {
        JobsCommand::List { kind, state, tenant, since_secs, limit, json } => {
            let state = state.map(|s| s.parse()).transpose().map_err(|e: String| anyhow!(e))?;
            let created_from_ms = since_secs.map(|s| now_ms() - (s as i64).saturating_mul(1000));
            let req = ListRequest {
                kind,
                state,
                tenant_id: tenant,
                created_from_ms,
                limit: Some(limit),
                ..Default::default()
            };
            let page = svc.list(&op, req).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page.data)?);
                return Ok(());
            }
            println!(
                "{:<36} {:<10} {:<9} {:<12} {:<8} {:<20} ERROR",
                "ID", "TYPE", "STATE", "TENANT", "ATTEMPTS", "CREATED"
            );
            for j in page.data {
                let mut error = j.last_error.unwrap_or_default();
                error.truncate(60);
                println!(
                    "{:<36} {:<10} {:<9} {:<12} {:<8} {:<20} {}",
                    j.id,
                    j.kind,
                    j.state.as_str(),
                    j.tenant_id,
                    format!("{}/{}", j.attempts, j.max_attempts),
                    iso_datetime(j.created_at_ms),
                    error
                );
            }
        }
        JobsCommand::Show { id } => println!("{}", serde_json::to_string_pretty(&svc.get(&op, &id).await?)?),
        JobsCommand::Watch { id } => {
            let mut stream = svc.watch(&op, &id).await?;
            while let Some(j) = stream.next().await {
                let progress = j.progress.map(|p| format!(" progress={p}")).unwrap_or_default();
                let error = j.last_error.map(|e| format!(" error={e:?}")).unwrap_or_default();
                println!(
                    "{} {} attempts={}/{}{progress}{error}",
                    iso_datetime(j.updated_at_ms),
                    j.state.as_str(),
                    j.attempts,
                    j.max_attempts
                );
            }
        }
        JobsCommand::Enqueue { kind, payload, tenant, priority, delay_ms, max_attempts, idempotency_key } => {
            let payload = serde_json::from_str(&payload).context("--payload is not valid JSON")?;
            let req = EnqueueRequest {
                kind,
                payload,
                priority,
                delay_ms,
                max_attempts,
                idempotency_key,
                tenant_id: tenant,
                ..Default::default()
            };
            let (job, created) = svc.enqueue(&op, req).await?;
            eprintln!("{} {}", if created { "enqueued" } else { "already enqueued (same idempotency key):" }, job.id);
            println!("{}", job.id);
        }
        JobsCommand::Cancel { id } => {
            let j = svc.cancel(&op, &id).await?;
            let what = if j.cancel_requested { "cancellation requested (the job is running)" } else { "cancelled" };
            println!("{}: {what}", j.id);
        }
        JobsCommand::Retry { id } => println!("{}: {}", id, svc.retry(&op, &id).await?.state.as_str()),
        JobsCommand::RetryDead { kind, tenant } => {
            let n = svc.retry_dead(&op, RetryDeadRequest { kind, tenant_id: tenant }).await?.count;
            println!("{n} dead jobs queued again");
        }
        JobsCommand::Purge { older_than, kind, tenant } => {
            let older_than_secs = parse_age(&older_than)?;
            let n = svc.purge(&op, PurgeRequest { older_than_secs, kind, tenant_id: tenant }).await?.count;
            println!("{n} finished jobs deleted");
        }
    }
    Ok(())
}

/// Parses an age like `90s`, `30m`, `12h` or `7d` into seconds.
fn parse_age(s: &str) -> Result<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| anyhow!("invalid age '{s}': use e.g. 90s, 30m, 12h or 7d"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid age '{s}': use e.g. 90s, 30m, 12h or 7d"),
    };
    Ok(n.saturating_mul(mult))
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages() {
        assert_eq!(parse_age("90").unwrap(), 90);
        assert_eq!(parse_age("30m").unwrap(), 1800);
        assert_eq!(parse_age("7d").unwrap(), 604_800);
        assert!(parse_age("7w").is_err() && parse_age("d").is_err());
    }
}
