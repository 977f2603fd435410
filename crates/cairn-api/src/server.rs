//! Serving with graceful shutdown: on the signal, stop accepting connections, let in-flight
//! requests and streams run for the grace period, then end open streams cleanly (an error
//! event, then the connection closes), flush usage records, and return. The in-process job
//! worker runs beside the server and stops the same way: it claims nothing more, lets running
//! jobs finish within the grace period, and hands the rest back to the queue.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;

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
    let server = axum::serve(listener, app.router()).with_graceful_shutdown(signal);
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
    tracing::info!("shutdown complete");
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
