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

enum Msg {
    Span(SpanRecord),
    Flush(oneshot::Sender<()>),
}

/// A bounded queue in front of one `Deliver`; a `SpanSink` for the `Tracer`.
pub struct SpanQueue {
    tx: mpsc::Sender<Msg>,
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
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        if let Err(e) = cairn_core::priority::spawn_background("cairn-spans", run(target, rx, settings)) {
            // The receiver went with it: submits count as drops, flushes end at once.
            tracing::error!(error = %e, "cannot start the span writer's thread; spans are dropped");
        }
        Arc::new(Self { tx, dropped })
    }

    /// Waits until every span queued so far has been delivered (or given up on).
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

async fn run(target: Arc<dyn Deliver>, mut rx: mpsc::Receiver<Msg>, settings: SpanQueueSettings) {
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
        // A flush delivers what came before it; drain what else is already queued too.
        while flushing && spans.len() < batch {
            match rx.try_recv() {
                Ok(msg) => {
                    take(msg, &mut spans, &mut waiting);
                }
                Err(_) => break,
            }
        }
        if !spans.is_empty() {
            target.deliver(std::mem::replace(&mut spans, Vec::with_capacity(batch))).await;
        }
        for w in waiting.drain(..) {
            let _ = w.send(());
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
