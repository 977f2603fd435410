//! Span queues: finished spans go into a bounded queue and a background task hands them on in
//! batches (up to `batch` at a time, or whatever arrived within `flush`) to a `Deliver`: the
//! trace store, or an OTLP collector. The request path only ever does a `try_send`: when a queue
//! is full the span is dropped and counted, so tracing can never slow or fail a request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::trace::{SpanRecord, SpanSink, TraceStore};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::Metrics;

/// Times a failed storage batch is tried before it is dropped (counted).
const WRITE_TRIES: u32 = 3;

/// Where a span queue's batches go. Delivery retries as its target needs and counts what it
/// gives up on; the queue only batches.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Hands on one batch (never empty).
    async fn deliver(&self, spans: Vec<SpanRecord>);
}

/// A bounded queue in front of one `Deliver`; a `SpanSink` for the `Tracer`.
pub struct SpanQueue {
    spans: mpsc::Sender<SpanRecord>,
    /// Flush requests, on a channel of their own: spans are taken in batches without the
    /// writer waking for each one, so a flush must be able to wake it.
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
    dropped: Counter,
}

/// How a queue batches.
#[derive(Clone, Copy, Debug)]
pub struct SpanQueueSettings {
    /// Spans waiting at most.
    pub capacity: usize,
    /// Spans per batch at most.
    pub batch: usize,
    /// Longest a span waits for others to join its batch.
    pub flush: Duration,
}

impl SpanQueue {
    /// Starts the queue's task on a background thread of its own (`cairn_core::priority`);
    /// `dropped` counts spans refused by a full queue.
    pub fn start(target: Arc<dyn Deliver>, dropped: Counter, settings: SpanQueueSettings) -> Arc<Self> {
        let (spans, rx) = mpsc::channel(settings.capacity.max(1));
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        if let Err(e) = cairn_core::priority::spawn_background("cairn-spans", run(target, rx, flush_rx, settings)) {
            // The receivers went with it: submits count as drops, flushes end at once.
            tracing::error!(error = %e, "cannot start the span writer's thread; spans are dropped");
        }
        Arc::new(Self { spans, flushes, dropped })
    }

    /// Waits until every span queued so far has been delivered (or given up on).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.flushes.send(done).is_ok() {
            let _ = wait.await;
        }
    }
}

impl SpanSink for SpanQueue {
    fn submit(&self, span: SpanRecord) {
        if self.spans.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

/// Hands each span to every sink (the store's queue, the exporter's).
pub struct Fanout(pub Vec<Arc<dyn SpanSink>>);

impl SpanSink for Fanout {
    fn submit(&self, span: SpanRecord) {
        if let Some((last, rest)) = self.0.split_last() {
            for sink in rest {
                sink.submit(span.clone());
            }
            last.submit(span);
        }
    }
}

/// The writer: waits for a first span (or a flush), then sleeps out the batching window
/// without reading the queue, so the spans that arrive meanwhile wake nobody (a receiver that
/// waits on the queue is woken, a thread hand-off, by every span: once per span on a quiet
/// server); then takes what queued up, in batches, until the queue is empty. A flush cuts the
/// window short, and is answered once everything queued before it is delivered.
async fn run(
    target: Arc<dyn Deliver>,
    mut rx: mpsc::Receiver<SpanRecord>,
    mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    settings: SpanQueueSettings,
) {
    let batch = settings.batch.max(1);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    // The queue's handle is gone: what is queued is still delivered, then the task ends.
    let mut closing = false;
    loop {
        let mut spans: Vec<SpanRecord> = Vec::with_capacity(batch);
        tokio::select! {
            span = rx.recv() => match span {
                Some(span) => spans.push(span),
                None => return,
            },
            flush = flushes.recv(), if !closing => match flush {
                Some(done) => waiting.push(done),
                None => closing = true,
            },
        }
        if waiting.is_empty() && !closing {
            let until = tokio::time::Instant::now() + settings.flush;
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                Some(done) = flushes.recv() => waiting.push(done),
            }
        }
        while let Ok(done) = flushes.try_recv() {
            waiting.push(done);
        }
        // Everything queued by now, batch by batch: under load the queue is drained as fast
        // as the target takes it, not one batch per window.
        loop {
            while spans.len() < batch {
                match rx.try_recv() {
                    Ok(span) => spans.push(span),
                    Err(_) => break,
                }
            }
            if spans.is_empty() {
                break;
            }
            let full = spans.len() == batch;
            target.deliver(std::mem::replace(&mut spans, Vec::with_capacity(batch))).await;
            if !full {
                break;
            }
        }
        for w in waiting.drain(..) {
            let _ = w.send(());
        }
    }
}

/// Delivers batches into the trace store, one transaction each.
pub struct StoreWriter {
    /// The store.
    pub store: Arc<dyn TraceStore>,
    /// Where writes and failures are counted.
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Deliver for StoreWriter {
    async fn deliver(&self, spans: Vec<SpanRecord>) {
        for attempt in 1..=WRITE_TRIES {
            match self.store.insert_spans(&spans).await {
                Ok(()) => {
                    self.metrics.spans_written.inc_by(spans.len() as u64);
                    return;
                }
                Err(e) if attempt < WRITE_TRIES => {
                    tracing::warn!(error = %e, spans = spans.len(), attempt, "writing spans failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => {
                    self.metrics.span_write_failures.inc();
                    self.metrics.spans_dropped.inc_by(spans.len() as u64);
                    tracing::error!(error = %e, spans = spans.len(), "writing spans failed; batch dropped");
                }
            }
        }
    }
}
