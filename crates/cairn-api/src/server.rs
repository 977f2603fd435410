//! Serving with graceful shutdown: on the signal, stop accepting connections, let in-flight
//! requests and streams run for the grace period, then end open streams cleanly (an error
//! event, then the connection closes), flush usage records, and return. The in-process job
//! worker runs beside the server and stops the same way: it claims nothing more, lets running
//! jobs finish within the grace period, and hands the rest back to the queue.
//!
//! Connections are bounded: at most `server.max_connections` are served at once (the rest wait
//! in the listen backlog), and one that has not sent a request's headers within
//! `server.header_read_timeout_secs` is closed, so slow clients cannot hold the server.
//! Each connection runs inside `Repoll` (`crate::repoll`), which polls it again at once when
//! hyper wakes it during its own poll, instead of a sibling worker being woken for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::repoll::Repoll;

/// Extra time after the grace period for cut streams to flush before giving up on them.
const CUT_DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` resolves, then drains as described above.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(app.config.server.shutdown_grace_secs);
    let cut = app.state.streams_cut.clone();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = CancellationToken::new();
    let worker = app.worker.clone().map(|w| {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            w.start();
            stopping.cancelled().await;
            w.shutdown(grace).await;
        })
    });
    let signal = async move {
        shutdown.await;
        stopping.cancel();
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: refusing new connections, draining in-flight requests"
        );
        let _ = stopping_tx.send(());
    };
    let limits = ConnectionLimits {
        max: app.config.server.max_connections.max(1),
        header_read_timeout: Duration::from_secs(app.config.server.header_read_timeout_secs.max(1)),
    };
    let server = accept_loop(listener, app.router(), limits, signal);
    let deadline = async move {
        if stopping_rx.await.is_err() {
            return std::future::pending().await;
        }
        tokio::time::sleep(grace).await;
        tracing::warn!("grace period over: cutting open streams");
        cut.cancel();
        tokio::time::sleep(CUT_DRAIN).await;
    };
    tokio::select! {
        r = server => r?,
        _ = deadline => tracing::warn!("connections still open after the drain period; exiting anyway"),
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    app.state.gateway.flush_usage().await;
    // Bounded: an unreachable OTLP collector must not hold the process (stored spans are
    // flushed first and are quick).
    if tokio::time::timeout(grace, app.state.traces.flush()).await.is_err() {
        tracing::warn!("spans still waiting for export at shutdown; dropping them");
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// How many connections, and how long each may take to send its headers.
struct ConnectionLimits {
    max: usize,
    header_read_timeout: Duration,
}

/// Accepts connections until `signal` resolves, then waits for the open ones to finish.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    tokio::pin!(signal);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = &mut signal => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(Repoll::new(async move {
            // Errors here are the client's (a reset, a header timeout): nothing to report.
            let _ = conn.await;
            drop(slot);
        }));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves only `/healthz` and `/metrics` from `metrics` until `shutdown` resolves: the
/// operations endpoints of processes without the API, such as `cairn worker`.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: std::sync::Arc<cairn_telemetry::Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let router = axum::Router::new()
        .route("/healthz", get(crate::routes::ops::healthz))
        .route("/metrics", get(move || async move { crate::routes::ops::render(&metrics) }));
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
