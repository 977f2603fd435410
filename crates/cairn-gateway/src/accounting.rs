//! Accounting: every model call becomes a `UsageRecord` keyed by its own call id, counted in
//! the metrics at once and written to storage by the usage writer (`crate::usage_writer`),
//! which commits records in batches. Writing a record settles the call's budget reservation.
//!
//! With a usage journal (`crate::journal`), a record is first written there, on the caller's
//! thread; it is then durable, so no answer waits for its transaction and it lingers like the
//! records nobody waits for. Its journal entry is released once it is committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_access::{Admission, Limiter};
use cairn_core::openai::ChatMessage;
use cairn_core::store::Store;
use cairn_core::tenancy::Principal;
use cairn_core::trace::{attrs, ActiveSpan, Tracer};
use cairn_core::usage::{CallStatus, NanoUsd, Settlement, UsageRecord};
use cairn_telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

use crate::journal::UsageJournal;
use crate::router::{RouteError, RouteTrace, Routed};
use crate::usage_writer::{writer, Msg, Queues};

/// Whether a client waits for a record's transaction (its response is held until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// A response waits: written at once.
    Awaited,
    /// Nobody waits (an agent run's own call): may linger to share a transaction.
    Behind,
}

/// Hands usage records to the background writer. Cheap to clone.
#[derive(Clone)]
pub struct UsageRecorder {
    /// Awaited records and flushes.
    urgent: mpsc::UnboundedSender<Msg>,
    /// Records nobody waits for, journaled ones included.
    lazy: mpsc::UnboundedSender<Msg>,
    metrics: Arc<Metrics>,
    journal: Option<Arc<UsageJournal>>,
}

impl UsageRecorder {
    /// Starts the writer task on the current runtime; records go through `journal` first when
    /// there is one.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>, every: Duration, journal: Option<UsageJournal>) -> Self {
        let (urgent, urgent_rx) = mpsc::unbounded_channel();
        let (lazy, lazy_rx) = mpsc::unbounded_channel();
        let journal = journal.map(Arc::new);
        if let Some(journal) = &journal {
            tokio::spawn(crate::journal::adopt(Arc::downgrade(journal), store.clone()));
        }
        let queues = Queues { urgent: urgent_rx, lazy: lazy_rx };
        tokio::spawn(writer(store, metrics.clone(), queues, every, journal.clone()));
        Self { urgent, lazy, metrics, journal }
    }

    /// Counts a record in the metrics and queues it for storage, settled against
    /// `reservation_id`. The receiver resolves once the transaction holding it has ended; there
    /// is none when the record is durable already (written to the journal).
    pub(crate) fn record(
        &self,
        r: UsageRecord,
        reservation_id: Option<String>,
        urgency: Urgency,
    ) -> Option<oneshot::Receiver<()>> {
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
        if let Some(tps) = r.output_tokens_per_s {
            m.output_tokens_per_second.get_or_create(&vec![("model", model.clone())]).observe(tps);
        }
        m.tenant_cost_usd
            .get_or_create(&vec![("tenant", r.tenant_id.clone()), ("model", model.clone())])
            .inc_by(r.cost_usd);
        m.cost_usd.get_or_create(&vec![("model", model)]).inc_by(r.cost_usd);
        let settlement = Box::new(Settlement { record: r, reservation_id });
        if let Some(segment) = self.journal.as_ref().and_then(|j| j.append(&settlement)) {
            // Replayed at the next start if the writer is gone.
            let _ = self.lazy.send(Msg::Journaled(settlement, segment));
            return None;
        }
        let (done, committed) = oneshot::channel();
        let queue = if urgency == Urgency::Awaited { &self.urgent } else { &self.lazy };
        if queue.send(Msg::Record(settlement, urgency, done)).is_err() {
            tracing::error!("usage writer has stopped; a usage record was not stored");
        }
        Some(committed)
    }

    /// The journal records go through first, when there is one.
    pub fn journal(&self) -> Option<&UsageJournal> {
        self.journal.as_deref()
    }

    /// Waits until every record queued so far has been written (or the write failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.urgent.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// What is being called, for the usage record.
pub(crate) struct CallMeta<'a> {
    /// The call's own id (its usage record's).
    pub call_id: String,
    /// The request that caused the call.
    pub request_id: &'a str,
    /// Which API the call serves.
    pub endpoint: Endpoint,
    /// Model alias requested.
    pub alias: &'a str,
    /// Whether the response is streamed.
    pub streamed: bool,
    /// Prompt token estimate, used when the upstream reports no usage.
    pub prompt_estimate: u64,
    /// What admission holds for the call, given back when it ends.
    pub admission: Admission,
    /// The call's span, ended with its usage when the call ends.
    pub span: ActiveSpan,
    /// Whether spans keep content (then streamed output is kept for the span).
    pub capture: Option<Tracer>,
    /// Whether a client waits for the call's usage record.
    pub urgency: Urgency,
}

/// The API a model call serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions` (and RAG generation).
    Chat,
    /// `/v1/embeddings` (and ingestion and search embeddings).
    Embeddings,
}

impl Endpoint {
    /// The name in usage records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// A model call being accounted. Finishing it records the call; dropping it unfinished
/// (the client went away) records it as `cancelled`, so cut calls are billed too.
pub(crate) struct PendingCall {
    recorder: UsageRecorder,
    limiter: Arc<Limiter>,
    principal: Principal,
    admission: Admission,
    record: Option<UsageRecord>,
    started: Instant,
    /// When the first chunk arrived (streams).
    pub first_token_at: Option<Instant>,
    /// Output estimate in characters, used when the upstream reports no usage.
    pub output_chars: usize,
    /// Chunks that carried output (streams): at least one token each.
    pub output_chunks: u64,
    /// Prompt token estimate, used when the upstream reports no usage.
    pub prompt_estimate: u64,
    /// Usage the upstream reported.
    pub reported: Option<(u64, u64)>,
    /// The served model's tokenizer, when known (streams): then what was relayed is kept in
    /// `output_text` and counted, not estimated, if the upstream reports nothing.
    pub counter: Option<crate::provider::TokenCount>,
    /// The relayed output (text and tool arguments), kept only with a `counter`.
    pub output_text: String,
    /// The prompt's messages, counted with `counter` only if the upstream reports nothing.
    pub prompt_messages: Vec<ChatMessage>,
    /// Resolves once the finished call's record is written (none once it is journaled).
    committed: Option<oneshot::Receiver<()>>,
    /// The call's span (taken when it ends).
    span: Option<ActiveSpan>,
    /// Set under `full` capture: the output is kept in `output_text` for the span.
    pub capture: Option<Tracer>,
    /// Whether a client waits for the record.
    urgency: Urgency,
    /// What the finished call cost, in US dollars.
    pub cost_usd: f64,
    /// The finished call's (input, output) tokens, as accounted.
    pub tokens: (u64, u64),
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
            id: meta.call_id,
            request_id: meta.request_id.into(),
            ts_ms: cairn_core::time::now_ms(),
            tenant_id: principal.tenant_id.clone(),
            key_id: principal.key_id.clone(),
            endpoint: meta.endpoint.as_str().into(),
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
            admission: meta.admission,
            record: Some(record),
            started: Instant::now(),
            first_token_at: None,
            output_chars: 0,
            output_chunks: 0,
            prompt_estimate: meta.prompt_estimate,
            reported: None,
            counter: None,
            output_text: String::new(),
            prompt_messages: Vec::new(),
            committed: None,
            span: Some(meta.span),
            capture: meta.capture,
            urgency: meta.urgency,
            cost_usd: 0.0,
            tokens: (0, 0),
        }
    }

    /// Where work under this call sits in its trace (its attempts).
    pub(crate) fn trace_context(&self) -> Option<cairn_core::trace::TraceContext> {
        self.span.as_ref().map(ActiveSpan::context)
    }

    /// Sets an attribute on the call's span, while it is open and recording.
    pub(crate) fn annotate(&mut self, key: &'static str, value: impl Into<cairn_core::trace::AttrValue>) {
        if let Some(span) = self.span.as_mut().filter(|s| s.recording()) {
            span.set(key, value);
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

    /// The call's own id (empty once it is recorded).
    pub(crate) fn call_id(&self) -> String {
        self.record.as_ref().map(|r| r.id.clone()).unwrap_or_default()
    }

    /// Notes that the answer came from the cache, first served by `provider`'s `model`.
    pub(crate) fn served_by(&mut self, provider: &str, model: &str) {
        if let Some(r) = self.record.as_mut() {
            provider.clone_into(&mut r.provider);
            model.clone_into(&mut r.upstream_model);
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
            // Nothing reported (cut stream, or an upstream that sends no usage): estimate, never
            // below one token per chunk that carried output.
            None if status != CallStatus::Error || self.output_chars > 0 => self.unreported_usage(),
            None => (0, 0, false),
        };
        r.input_tokens = input;
        r.output_tokens = output;
        r.tokens_estimated = estimated;
        r.cost_usd = trace.target.as_ref().map(|t| t.cost(input, output)).unwrap_or(0.0);
        self.cost_usd = r.cost_usd;
        self.tokens = (input, output);
        r.latency_ms = now.duration_since(self.started).as_millis() as u64;
        r.ttft_ms = self.first_token_at.map(|t| t.duration_since(self.started).as_millis() as u64);
        let gen_secs = now.duration_since(self.first_token_at.unwrap_or(self.started)).as_secs_f64();
        r.output_tokens_per_s = (output > 0 && gen_secs > 0.0).then(|| output as f64 / gen_secs);
        r.status = status;
        r.error = error;
        self.limiter.settle(&self.principal, &self.admission, input + output, NanoUsd::from_usd(r.cost_usd));
        if let Some(mut span) = self.span.take() {
            annotate(&mut span, &r);
            if let Some(text) = self.capture.as_ref().and_then(|t| t.content(&self.output_text)) {
                span.set(attrs::OUTPUT_MESSAGES, text);
            }
        }
        let reservation_id = self.admission.budget.as_ref().map(|h| h.reservation_id.clone());
        self.committed = self.recorder.record(r, reservation_id, self.urgency);
    }

    /// Marks the call as one whose response does not wait for its record (a cache hit, a
    /// blocked call): the record may then wait to share a transaction with others.
    pub(crate) fn unawaited(mut self) -> Self {
        self.urgency = Urgency::Behind;
        self
    }

    /// Usage when the upstream reported none: (prompt, output, estimated). Counted with the
    /// model's tokenizer when it is known; else the prompt estimate and a quarter of the
    /// output characters, never below one token per chunk that carried output.
    pub(crate) fn unreported_usage(&self) -> (u64, u64, bool) {
        match &self.counter {
            Some(count) => {
                // Each message's text and tool-call arguments, plus OpenAI's framing (3 tokens
                // a message, 3 to prime the reply).
                let mut prompt = 3u64;
                for m in &self.prompt_messages {
                    prompt += 3 + count(&m.text_content()) as u64;
                    for tc in m.tool_calls.iter().flatten() {
                        prompt += (count(&tc.function.arguments) + count(&tc.function.name)) as u64;
                    }
                }
                (prompt, count(&self.output_text) as u64, false)
            }
            None => (self.prompt_estimate, (self.output_chars as u64).div_ceil(4).max(self.output_chunks), true),
        }
    }

    /// Counts with the served model's tokenizer if the upstream reports no usage; keeps the
    /// prompt's `messages` for that (counted only then, off the way of every call).
    pub(crate) fn count_with(&mut self, counter: crate::provider::TokenCount, messages: Vec<ChatMessage>) {
        self.prompt_messages = messages;
        self.counter = Some(counter);
    }

    /// Records the call as cancelled if it was not finished.
    pub(crate) fn cancel(&mut self, trace: &RouteTrace) {
        if self.record.is_some() {
            self.finish(CallStatus::Cancelled, Some("client disconnected".into()), trace);
        }
    }
}

/// Ends a model call's span with what its usage record says.
fn annotate(span: &mut ActiveSpan, r: &UsageRecord) {
    if !span.recording() {
        return;
    }
    if !r.provider.is_empty() {
        span.set(attrs::PROVIDER, r.provider.clone());
        span.set(attrs::RESPONSE_MODEL, r.upstream_model.clone());
    }
    span.set(attrs::INPUT_TOKENS, r.input_tokens);
    span.set(attrs::OUTPUT_TOKENS, r.output_tokens);
    span.set(attrs::COST_USD, r.cost_usd);
    if let Some(ttft) = r.ttft_ms {
        span.set(attrs::TTFT_MS, ttft);
    }
    if let Some(tps) = r.output_tokens_per_s {
        span.set(attrs::TOKENS_PER_S, tps);
    }
    span.set(attrs::RETRIES, r.retries);
    span.set(attrs::FALLBACKS, r.fallbacks);
    match r.status {
        CallStatus::Ok | CallStatus::Cached => span.ok(),
        status => {
            span.set(attrs::ERROR_TYPE, status.as_str());
            span.fail(r.error.as_deref().unwrap_or(status.as_str()));
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
    /// Waits until the finished call's usage record is written, when its answer is to wait
    /// (`gateway.usage_commit`) and the record is not in the journal already: a response sent
    /// after this leaves no call unaccounted if the process dies next.
    pub(crate) async fn durable(&mut self) {
        if let Some(committed) = self.call.committed.take().filter(|_| self.call.urgency == Urgency::Awaited) {
            let _ = committed.await;
        }
    }

    /// Records a completed call with the usage the upstream reported (or `None` to estimate
    /// from `output_chars`); returns where it was served.
    pub(crate) fn succeed(&mut self, trace: RouteTrace, reported: Option<(u64, u64)>, output_chars: usize) -> Routed {
        self.settle(trace, reported, output_chars, CallStatus::Ok, None)
    }

    /// Records a call whose upstream answered, with `status` (`blocked` when a guard refused
    /// the answer: its cost stands).
    pub(crate) fn settle(
        &mut self,
        trace: RouteTrace,
        reported: Option<(u64, u64)>,
        output_chars: usize,
        status: CallStatus,
        error: Option<String>,
    ) -> Routed {
        self.call.routed(&trace);
        self.call.reported = reported;
        self.call.output_chars = output_chars;
        self.call.finish(status, error, &trace);
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

#[cfg(test)]
#[path = "accounting_tests.rs"]
pub(crate) mod tests;
