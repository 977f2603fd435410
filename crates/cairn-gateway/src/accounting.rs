//! Accounting: every model call becomes a `UsageRecord`, counted in the metrics at once and
//! written to storage in batches by a background task (one transaction per batch, so the
//! request path never waits on the database). `flush` forces a write; shutdown calls it.
//! A write that fails is kept and retried with the next batch; inserts are idempotent by
//! request id, so a retried batch never double-counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_access::Limiter;
use cairn_core::store::Store;
use cairn_core::tenancy::Principal;
use cairn_core::usage::{CallStatus, UsageRecord};
use cairn_telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

use crate::router::{RouteError, RouteTrace, Routed};

/// Records kept in memory at most while storage is failing; older ones are dropped (logged).
const MAX_BUFFER: usize = 100_000;
/// Records per transaction.
const BATCH: usize = 1_000;

enum Msg {
    Record(Box<UsageRecord>),
    Flush(oneshot::Sender<()>),
}

/// Hands usage records to the background writer. Cheap to clone.
#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::UnboundedSender<Msg>,
    metrics: Arc<Metrics>,
}

impl UsageRecorder {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>, every: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, metrics.clone(), rx, every));
        Self { tx, metrics }
    }

    /// Counts a record in the metrics and queues it for storage.
    pub fn record(&self, r: UsageRecord) {
        let m = &self.metrics;
        let model = r.model_alias.clone();
        m.model_calls
            .get_or_create(&vec![
                ("model", model.clone()),
                ("endpoint", r.endpoint.clone()),
                ("provider", r.provider.clone()),
                ("status", r.status.as_str().into()),
            ])
            .inc();
        m.model_latency
            .get_or_create(&vec![("model", model.clone()), ("endpoint", r.endpoint.clone())])
            .observe(r.latency_ms as f64 / 1000.0);
        if let Some(ttft) = r.ttft_ms {
            m.model_ttft.get_or_create(&vec![("model", model.clone())]).observe(ttft as f64 / 1000.0);
        }
        m.tokens.get_or_create(&vec![("model", model.clone()), ("direction", "input".into())]).inc_by(r.input_tokens);
        m.tokens.get_or_create(&vec![("model", model.clone()), ("direction", "output".into())]).inc_by(r.output_tokens);
        m.cost_usd.get_or_create(&vec![("model", model)]).inc_by(r.cost_usd);
        if self.tx.send(Msg::Record(Box::new(r))).is_err() {
            tracing::error!("usage writer has stopped; a usage record was not stored");
        }
    }

    /// Waits until every record queued so far has been written (or the write failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn writer(store: Arc<dyn Store>, metrics: Arc<Metrics>, mut rx: mpsc::UnboundedReceiver<Msg>, every: Duration) {
    let mut buf: Vec<UsageRecord> = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Record(r)) => {
                    buf.push(*r);
                    if buf.len() >= BATCH {
                        write(&*store, &metrics, &mut buf).await;
                    }
                }
                Some(Msg::Flush(done)) => {
                    write(&*store, &metrics, &mut buf).await;
                    let _ = done.send(());
                }
                None => {
                    write(&*store, &metrics, &mut buf).await;
                    return;
                }
            },
            _ = tick.tick() => write(&*store, &metrics, &mut buf).await,
        }
    }
}

async fn write(store: &dyn Store, metrics: &Metrics, buf: &mut Vec<UsageRecord>) {
    while !buf.is_empty() {
        let n = buf.len().min(BATCH);
        match store.insert_usage(&buf[..n]).await {
            Ok(()) => {
                buf.drain(..n);
            }
            Err(e) => {
                metrics.usage_write_failures.inc();
                tracing::error!(error = %e, pending = buf.len(), "writing usage records failed; will retry");
                if buf.len() > MAX_BUFFER {
                    let excess = buf.len() - MAX_BUFFER;
                    buf.drain(..excess);
                    tracing::error!(dropped = excess, "usage buffer full; oldest records dropped");
                }
                return;
            }
        }
    }
}

/// What is being called, for the usage record.
pub(crate) struct CallMeta<'a> {
    /// Request id (the record's id).
    pub request_id: &'a str,
    /// `chat` or `embeddings`.
    pub endpoint: &'a str,
    /// Model alias requested.
    pub alias: &'a str,
    /// Whether the response is streamed.
    pub streamed: bool,
    /// Prompt token estimate, used when the upstream reports no usage.
    pub prompt_estimate: u64,
}

/// A model call being accounted. Finishing it records the call; dropping it unfinished
/// (the client went away) records it as `cancelled`, so cut calls are billed too.
pub(crate) struct PendingCall {
    recorder: UsageRecorder,
    limiter: Arc<Limiter>,
    principal: Principal,
    record: Option<UsageRecord>,
    started: Instant,
    /// When the first chunk arrived (streams).
    pub first_token_at: Option<Instant>,
    /// Output estimate in characters, used when the upstream reports no usage.
    pub output_chars: usize,
    /// Prompt token estimate, used when the upstream reports no usage.
    pub prompt_estimate: u64,
    /// Usage the upstream reported.
    pub reported: Option<(u64, u64)>,
}

impl PendingCall {
    /// Starts accounting a call.
    pub(crate) fn start(
        recorder: UsageRecorder,
        limiter: Arc<Limiter>,
        principal: &Principal,
        meta: CallMeta<'_>,
    ) -> Self {
        let record = UsageRecord {
            id: meta.request_id.into(),
            ts_ms: cairn_core::time::now_ms(),
            tenant_id: principal.tenant_id.clone(),
            key_id: principal.key_id.clone(),
            endpoint: meta.endpoint.into(),
            model_alias: meta.alias.into(),
            provider: String::new(),
            upstream_model: String::new(),
            input_tokens: 0,
            output_tokens: 0,
            tokens_estimated: false,
            cost_usd: 0.0,
            latency_ms: 0,
            ttft_ms: None,
            output_tokens_per_s: None,
            retries: 0,
            fallbacks: 0,
            streamed: meta.streamed,
            status: CallStatus::Ok,
            error: None,
        };
        Self {
            recorder,
            limiter,
            principal: principal.clone(),
            record: Some(record),
            started: Instant::now(),
            first_token_at: None,
            output_chars: 0,
            prompt_estimate: meta.prompt_estimate,
            reported: None,
        }
    }

    /// Notes which target served (or failed) and how routing went.
    pub(crate) fn routed(&mut self, trace: &RouteTrace) {
        if let Some(r) = self.record.as_mut() {
            if let Some(t) = &trace.target {
                r.provider = t.provider_name.clone();
                r.upstream_model = t.model.clone();
            }
            r.retries = trace.retries;
            r.fallbacks = trace.fallbacks;
        }
    }

    /// Sets the cost function's inputs and records the call with `status`.
    pub(crate) fn finish(&mut self, status: CallStatus, error: Option<String>, trace: &RouteTrace) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        let now = Instant::now();
        let (input, output, estimated) = match self.reported {
            Some((i, o)) => (i, o, false),
            // Nothing reported (cut stream, or an upstream that sends no usage): estimate.
            None if status != CallStatus::Error || self.output_chars > 0 => {
                (self.prompt_estimate, (self.output_chars as u64).div_ceil(4), true)
            }
            None => (0, 0, false),
        };
        r.input_tokens = input;
        r.output_tokens = output;
        r.tokens_estimated = estimated;
        r.cost_usd = trace.target.as_ref().map(|t| t.cost(input, output)).unwrap_or(0.0);
        r.latency_ms = now.duration_since(self.started).as_millis() as u64;
        r.ttft_ms = self.first_token_at.map(|t| t.duration_since(self.started).as_millis() as u64);
        let gen_secs = now.duration_since(self.first_token_at.unwrap_or(self.started)).as_secs_f64();
        r.output_tokens_per_s = (output > 0 && gen_secs > 0.0).then(|| output as f64 / gen_secs);
        r.status = status;
        r.error = error;
        self.limiter.charge(&self.principal, input + output, r.cost_usd);
        self.recorder.record(r);
    }

    /// Records the call as cancelled if it was not finished.
    pub(crate) fn cancel(&mut self, trace: &RouteTrace) {
        if self.record.is_some() {
            self.finish(CallStatus::Cancelled, Some("client disconnected".into()), trace);
        }
    }
}

/// Pairs a pending call with its route trace so dropping it records a cancellation.
pub(crate) struct CallGuard {
    /// The call being accounted.
    pub call: PendingCall,
    /// What routing did so far.
    pub trace: RouteTrace,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let trace = std::mem::take(&mut self.trace);
        self.call.cancel(&trace);
    }
}

impl CallGuard {
    /// Records a completed call with the usage the upstream reported (or `None` to estimate
    /// from `output_chars`); returns where it was served.
    pub(crate) fn succeed(&mut self, trace: RouteTrace, reported: Option<(u64, u64)>, output_chars: usize) -> Routed {
        self.call.routed(&trace);
        self.call.reported = reported;
        self.call.output_chars = output_chars;
        self.call.finish(CallStatus::Ok, None, &trace);
        let routed = Routed::from(&trace);
        self.trace = trace;
        routed
    }

    /// Notes the route of a call that goes on (a stream); the stream records it when it ends.
    pub(crate) fn started(&mut self, trace: RouteTrace) -> Routed {
        self.call.routed(&trace);
        let routed = Routed::from(&trace);
        self.trace = trace;
        routed
    }

    /// Records a failed call; returns the error for the client.
    pub(crate) fn fail(&mut self, e: RouteError) -> cairn_core::Error {
        self.call.routed(&e.trace);
        self.call.finish(CallStatus::Error, Some(e.error.to_string()), &e.trace);
        self.trace = e.trace;
        e.error
    }
}
