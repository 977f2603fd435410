//! The span writer: finished spans go into a bounded queue and a background task writes them
//! in batches (up to `tracing.batch` per transaction, or whatever arrived within
//! `tracing.flush_ms`). The request path only ever does a `try_send`: when the queue is full
//! the span is dropped and counted, so tracing can never slow or fail a request.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::trace::{SpanRecord, SpanSink, TraceStore};
use tokio::sync::{mpsc, oneshot};

use crate::Metrics;

/// Times a failed batch is tried before it is dropped (counted).
const WRITE_TRIES: u32 = 3;

enum Msg {
    Span(SpanRecord),
    Flush(oneshot::Sender<()>),
}

/// The bounded queue in front of the span writer; a `SpanSink` for the `Tracer`.
pub struct SpanQueue {
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
}

/// How the writer batches.
#[derive(Clone, Copy, Debug)]
pub struct SpanQueueSettings {
    /// Spans waiting at most.
    pub capacity: usize,
    /// Spans per transaction at most.
    pub batch: usize,
    /// Longest a span waits for others to join its batch.
    pub flush: Duration,
}

impl SpanQueue {
    /// Starts the writer on the current runtime.
    pub fn start(store: Arc<dyn TraceStore>, metrics: Arc<Metrics>, settings: SpanQueueSettings) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        tokio::spawn(writer(store, metrics.clone(), rx, settings));
        Arc::new(Self { tx, metrics })
    }

    /// Waits until every span queued so far has been written (or given up on).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl SpanSink for SpanQueue {
    fn submit(&self, span: SpanRecord) {
        if self.tx.try_send(Msg::Span(span)).is_err() {
            self.metrics.spans_dropped.inc();
        }
    }
}

async fn writer(
    store: Arc<dyn TraceStore>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Msg>,
    settings: SpanQueueSettings,
) {
    let batch = settings.batch.max(1);
    let mut spans: Vec<SpanRecord> = Vec::with_capacity(batch);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Wait for the first message, then up to `flush` for more to join it.
        let Some(first) = rx.recv().await else { return };
        let mut flushing = take(first, &mut spans, &mut waiting);
        let until = tokio::time::Instant::now() + settings.flush;
        while spans.len() < batch && !flushing {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(msg)) => flushing = take(msg, &mut spans, &mut waiting),
                Ok(None) | Err(_) => break,
            }
        }
        // A flush writes what came before it; drain what else is already queued too.
        while flushing && spans.len() < batch {
            match rx.try_recv() {
                Ok(msg) => {
                    take(msg, &mut spans, &mut waiting);
                }
                Err(_) => break,
            }
        }
        if !spans.is_empty() {
            write(&*store, &metrics, &mut spans).await;
        }
        if spans.is_empty() {
            for w in waiting.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// Adds a message to the batch; true when it asks for a flush.
fn take(msg: Msg, spans: &mut Vec<SpanRecord>, waiting: &mut Vec<oneshot::Sender<()>>) -> bool {
    match msg {
        Msg::Span(s) => {
            spans.push(s);
            false
        }
        Msg::Flush(done) => {
            waiting.push(done);
            true
        }
    }
}

async fn write(store: &dyn TraceStore, metrics: &Metrics, spans: &mut Vec<SpanRecord>) {
    for attempt in 1..=WRITE_TRIES {
        match store.insert_spans(spans).await {
            Ok(()) => {
                metrics.spans_written.inc_by(spans.len() as u64);
                spans.clear();
                return;
            }
            Err(e) if attempt < WRITE_TRIES => {
                tracing::warn!(error = %e, spans = spans.len(), attempt, "writing spans failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => {
                metrics.span_write_failures.inc();
                metrics.spans_dropped.inc_by(spans.len() as u64);
                tracing::error!(error = %e, spans = spans.len(), "writing spans failed; batch dropped");
                spans.clear();
            }
        }
    }
}
