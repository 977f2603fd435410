//! The client-facing side of a streamed chat completion: relays upstream chunks in OpenAI's
//! format, shapes `usage` the way the client asked (`null` on every chunk and a final usage
//! chunk, or no usage at all), enforces the total deadline, ends cleanly on server shutdown,
//! and accounts the call however it ends: complete, cut upstream, or dropped by the client.
//!
//! Usage an upstream reports on any chunk is kept (in-process models report the tokens so far
//! on every chunk, as do upstreams streaming usage continuously): a call cut mid-stream is
//! charged what it counted, and only a call whose upstream reported nothing is estimated.

use std::collections::VecDeque;
use std::time::Instant;

use cairn_core::openai::{ChatChunk, Extra, Usage, UsageField};
use cairn_core::usage::CallStatus;
use cairn_telemetry::Metrics;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::accounting::CallGuard;
use crate::provider::ChunkStream;
pub use cairn_core::openai::{ChatStream, StreamEvent};

/// Keeps the in-flight streams gauge accurate however the stream ends.
struct InflightGuard(Arc<Metrics>);

impl InflightGuard {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.inflight_streams.inc();
        Self(metrics)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight_streams.dec();
    }
}

/// Everything the relay needs, moved into the stream.
pub(crate) struct Relay {
    /// The upstream chunks after the first.
    pub upstream: ChunkStream,
    /// The first chunk, already received by the router.
    pub first: ChatChunk,
    /// Accounting for this call.
    pub guard: CallGuard,
    /// The client asked for `stream_options.include_usage`.
    pub wants_usage: bool,
    /// The last event waits for the usage record (a client's stream; see `relay`).
    pub durable: bool,
    /// When the whole call must be over.
    pub deadline: tokio::time::Instant,
    /// Cancelled when the server is shutting down and the grace period is over.
    pub shutdown: CancellationToken,
    /// The provider's concurrency slot: never read, held so it is released when the stream ends.
    #[allow(dead_code)]
    pub permit: OwnedSemaphorePermit,
    /// The caller's stream slot: held, like the permit, until the stream ends.
    #[allow(dead_code)]
    pub slot: Option<cairn_access::StreamSlot>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The answer being assembled for the response cache, when it is to be kept.
    pub keep: Option<crate::cache::StreamKeep>,
    /// The PII output guard, when it is on: it sees every chunk before anything else does.
    pub pii: Option<crate::guard::StreamPii>,
    /// Where a guard's refusal is audited.
    pub audit: Option<crate::guard::BlockAudit>,
}

struct State {
    relay: Relay,
    out: VecDeque<StreamEvent>,
    ended: bool,
    /// A usage-only chunk went to the client.
    usage_sent: bool,
    template: ChatChunk,
    /// Storing the complete answer in the cache (or auditing a refusal), awaited before the
    /// last event.
    storing: Option<futures::future::BoxFuture<'static, ()>>,
    /// Why a guard stopped the stream.
    blocked: Option<crate::guard::Blocked>,
    _inflight: InflightGuard,
}

impl State {
    /// Passes a chunk through the PII guard, then on to `push_chunk`; a refusal ends the stream.
    fn guarded_chunk(&mut self, mut chunk: ChatChunk) {
        let checked = self.relay.pii.as_mut().map_or(Ok(()), |pii| pii.chunk(&mut chunk));
        match checked {
            Ok(()) => self.push_chunk(chunk),
            Err(b) => self.refuse(b),
        }
    }

    /// The upstream ended: what the PII guard still holds goes out, then the call ends.
    fn upstream_done(&mut self) {
        let rest = self.relay.pii.as_mut().map_or(Ok(None), |pii| pii.finish(&self.template));
        match rest {
            Ok(last) => {
                if let Some(chunk) = last {
                    self.push_chunk(chunk);
                }
                self.end(CallStatus::Ok, None);
            }
            Err(b) => self.refuse(b),
        }
    }

    /// Ends the stream refused by a guard: accounted as `blocked` and audited.
    fn refuse(&mut self, b: crate::guard::Blocked) {
        let message = b.error().to_string();
        let call_id = self.relay.guard.call.call_id();
        if let Some(audit) = self.relay.audit.take() {
            let b = b.clone();
            self.storing = Some(Box::pin(async move { audit.record(&b, &call_id).await }));
        }
        self.blocked = Some(b);
        self.end(CallStatus::Blocked, Some(message));
    }

    /// Tracks a chunk and queues it for the client in the shape it asked for.
    fn push_chunk(&mut self, mut chunk: ChatChunk) {
        if let Some(keep) = self.relay.keep.as_mut() {
            keep.assembler.push(&chunk);
        }
        let call = &mut self.relay.guard.call;
        let keep = call.counter.is_some() || call.capture.is_some();
        for choice in &chunk.choices {
            let before = call.output_chars;
            let text = choice.delta.content.as_deref().unwrap_or_default();
            call.output_chars += text.len();
            if keep {
                call.output_text.push_str(text);
            }
            for tc in choice.delta.tool_calls.iter().flatten() {
                let args = tc.function.as_ref().and_then(|f| f.arguments.as_deref()).unwrap_or_default();
                call.output_chars += args.len();
                if keep {
                    call.output_text.push_str(args);
                }
            }
            call.output_chunks += u64::from(call.output_chars > before);
        }
        if let Some(u) = chunk.usage.as_ref() {
            call.reported = Some((u.prompt_tokens, u.completion_tokens));
        }
        let usage_only = chunk.choices.is_empty() && chunk.usage.as_ref().is_some();
        if usage_only {
            if !self.relay.wants_usage {
                return; // a usage-only chunk the client did not ask for
            }
            if let UsageField::Some(u) = &mut chunk.usage {
                u.total_tokens = u.total_tokens.max(u.prompt_tokens + u.completion_tokens);
            }
            self.usage_sent = true;
        } else {
            // Usage so far on a content chunk is for accounting; clients see it once, last.
            chunk.usage = if self.relay.wants_usage { UsageField::Null } else { UsageField::Absent };
        }
        self.out.push_back(StreamEvent::Chunk(Box::new(chunk)));
    }

    fn end(&mut self, status: CallStatus, error: Option<String>) {
        self.ended = true;
        let trace = std::mem::take(&mut self.relay.guard.trace);
        let call = &mut self.relay.guard.call;
        call.finish(status, error.clone(), &trace);
        // The usage as accounted: reported by the upstream, or counted once by `finish`.
        let ((prompt, completion), cost) = (call.tokens, call.cost_usd);
        if status == CallStatus::Ok && self.relay.wants_usage && !self.usage_sent {
            // No usage-only chunk came: the client still gets the one it asked for, with the
            // last usage reported, or an estimate.
            let usage = Usage::new(prompt, completion);
            let mut last = ChatChunk { choices: vec![], usage: UsageField::Some(usage), ..self.template.clone() };
            last.extra = Extra::new();
            self.out.push_back(StreamEvent::Chunk(Box::new(last)));
        }
        if let Some(keep) = self.relay.keep.take().filter(|_| status == CallStatus::Ok) {
            self.storing = Some(Box::pin(keep.store(Usage::new(prompt, completion), cost)));
        }
        if let Some(pii) = &self.relay.pii {
            pii.settle();
        }
        self.relay.guard.trace = trace;
        self.out.push_back(match (self.blocked.take(), error) {
            (Some(b), _) => StreamEvent::Refused { guard: b.guard, message: b.error().to_string() },
            (None, Some(e)) => StreamEvent::Error(e),
            (None, None) => StreamEvent::Done,
        });
    }
}

/// Builds the client-facing stream.
pub(crate) fn relay(relay: Relay) -> ChatStream {
    let mut template = relay.first.clone();
    template.choices.clear();
    template.usage = UsageField::Absent;
    let inflight = InflightGuard::new(relay.metrics.clone());
    let first = relay.first.clone();
    let mut state = State {
        relay,
        out: VecDeque::new(),
        ended: false,
        usage_sent: false,
        template,
        storing: None,
        blocked: None,
        _inflight: inflight,
    };
    state.relay.guard.call.first_token_at = Some(Instant::now());
    state.guarded_chunk(first);
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.out.pop_front() {
                return Some((ev, s));
            }
            if s.ended {
                return None;
            }
            let next = tokio::select! {
                biased;
                _ = s.relay.shutdown.cancelled() => Err("the server is shutting down; the stream was cut"),
                _ = tokio::time::sleep_until(s.relay.deadline) => Err("the response exceeded its total time limit"),
                n = s.relay.upstream.next() => Ok(n),
            };
            match next {
                Ok(Some(Ok(chunk))) => s.guarded_chunk(chunk),
                Ok(None) => s.upstream_done(),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream stream broke after it started");
                    s.end(CallStatus::Cut, Some(format!("upstream stream failed: {e}")));
                }
                Err(why) => s.end(CallStatus::Cut, Some(why.into())),
            }
            // A client's last event goes out once the call's usage record is written. Cairn's
            // own streams (a run reading its model) read the end at once: the record is written
            // behind them, and a run waits for its records before it ends.
            if s.ended && s.relay.durable {
                s.relay.guard.durable().await;
            }
            // A complete answer is in the cache before the client reads the end, so the same
            // request made next hits.
            if let Some(storing) = s.storing.take() {
                storing.await;
            }
        }
    }))
}
