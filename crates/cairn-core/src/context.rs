//! The call context: what travels with one request's work through every service, so a model
//! call made deep inside ingestion or RAG is still charged to the key that caused it, carries
//! the request's id, and stops when the request's deadline passes or its client goes away.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::tenancy::Principal;
use crate::trace::{ActiveSpan, TraceContext};

/// Who asked, which request, by when, and whether the work is still wanted.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The caller; every model call made for this work is charged to its key.
    pub principal: Principal,
    /// The request (or job) that caused the work; usage records carry it.
    pub request_id: String,
    /// When the work must be done by, if bounded.
    pub deadline: Option<Instant>,
    /// Cancelled when the work is no longer wanted (client gone, shutdown).
    pub cancel: CancellationToken,
    /// True when the request already took its place in the key's request-rate limit (routes
    /// that cost work, and the jobs they enqueue): its model calls take no second one.
    pub request_admitted: bool,
    /// True when a streamed call holds a client connection open, so it takes one of the key's
    /// stream places (`gateway.max_streams_per_key`) and its last event waits for its usage
    /// record. Cairn's own streams (an agent run reading its model) hold none; the job
    /// concurrency bounds them, and the run waits for its usage records before it ends.
    pub holds_connection: bool,
    /// Where the work sits in its trace: spans it opens are children of `trace.parent`.
    pub trace: TraceContext,
    /// What the request asked of the response cache (its `Cache-Control`, `cairn.cache`).
    pub cache: crate::cache::CacheControl,
    /// The model a routed alias must use, when the request says (`x-cairn-route`,
    /// `cairn.route`); `None`: the router decides.
    pub route: Option<crate::config::ModelSize>,
    /// The knowledge collections the answer is built from (grounded chat sets them): cached
    /// answers are tied to them and deleted when any of them changes.
    pub knowledge: Vec<String>,
}

impl CallContext {
    /// A context for `principal` and `request_id`, unbounded and not cancelled.
    pub fn new(principal: Principal, request_id: impl Into<String>) -> Self {
        Self {
            principal,
            request_id: request_id.into(),
            deadline: None,
            cancel: CancellationToken::new(),
            request_admitted: false,
            holds_connection: true,
            trace: TraceContext::fresh(),
            cache: Default::default(),
            route: None,
            knowledge: Vec::new(),
        }
    }

    /// The same context for work done under `span` (its spans become `span`'s children).
    pub fn under(&self, span: &ActiveSpan) -> Self {
        Self { trace: span.context(), ..self.clone() }
    }

    /// Opens a span for this context's tenant at this context's place in its trace.
    pub fn span(
        &self,
        tracer: &crate::trace::Tracer,
        name: impl Into<std::borrow::Cow<'static, str>>,
        kind: crate::trace::SpanKind,
    ) -> ActiveSpan {
        tracer.start(&self.trace, &self.principal.tenant_id, name, kind)
    }

    /// The same context with a deadline `within` from now (kept if an earlier one is set).
    pub fn within(mut self, within: Duration) -> Self {
        let at = Instant::now() + within;
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
        self
    }

    /// Time left before the deadline (`None` when unbounded).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Fails with `Unavailable` when the deadline has passed or the work was cancelled: long
    /// loops call this between steps so they end when the request does.
    pub fn check(&self) -> crate::Result<()> {
        if self.cancel.is_cancelled() {
            return Err(crate::Error::Unavailable { message: "the request was cancelled".into(), retry_after: None });
        }
        if self.remaining() == Some(Duration::ZERO) {
            return Err(crate::Error::Unavailable {
                message: "the request ran past its deadline".into(),
                retry_after: None,
            });
        }
        Ok(())
    }
}
