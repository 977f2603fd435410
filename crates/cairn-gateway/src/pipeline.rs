//! The stages every model call passes, written once for chat, streaming chat and embeddings
//! (and so for RAG generation and knowledge embeddings, which go through those):
//!
//! 1. **cache** (`cached`): when the alias has a response cache and the request may use it,
//!    the caller's role and request rate are checked and the cache is read; a hit answers the
//!    call here, accounted as `cached` at no cost (it reserves no budget and takes no
//!    provider slot);
//! 2. **admit**: the caller's role, its rate limits, and the call's worst-case cost reserved
//!    against its budget (`Limiter::admit`); a refusal holds nothing;
//! 3. **route**: the caller runs the router with retries and fallbacks;
//! 4. **settle and account**: the returned `CallGuard` records the call however it ends (done,
//!    failed, cut, or dropped because the client left), which gives back the unused part of
//!    its admission and, once stored, settles its reservation to the real cost; a complete
//!    answer is then stored in the cache when the plan says so.

use std::time::Duration;

use cairn_access::{Admission, WorstCase};
use cairn_core::cache::{CacheEntry, CacheStatus};
use cairn_core::config::{GatewayConfig, UsageCommit};
use cairn_core::openai::{EmbeddingInput, EmbeddingRequest, EmbeddingVector};
use cairn_core::tenancy::Role;
use cairn_core::trace::{attrs, ActiveSpan, AttrValue, SpanKind};
use cairn_core::usage::{CallStatus, NanoUsd};
use cairn_core::{CallContext, Error, Result};

use crate::accounting::{CallGuard, CallMeta, Endpoint, PendingCall, Urgency};
use crate::cache::CachePlan;
use crate::guard::Blocked;
use crate::router::{ModelRoute, RouteTrace, Routed};
use crate::service::GatewayService;

/// Slack added to a call's longest possible run before its reservation lapses.
const RESERVATION_SLACK: Duration = Duration::from_secs(60);

/// What admission needs to know about a call before it runs.
pub(crate) struct CallSpec {
    /// Which API the call serves.
    pub endpoint: Endpoint,
    /// Whether the response is streamed.
    pub streamed: bool,
    /// Prompt tokens, an upper bound (for the reservation).
    pub prompt_bound: u64,
    /// Prompt tokens, a likely count (for accounting when the upstream reports none).
    pub prompt_estimate: u64,
    /// Output tokens at most: the request's cap, or the configured default for chat.
    pub output_cap: u64,
    /// Attributes of the request for the call's span (sampling settings; content under
    /// `full` capture).
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// The request's place in the key's request rate was taken already (by the cache stage).
    pub request_taken: bool,
}

/// The most a call may cost and take: its token bound at the dearest target's prices, and its
/// longest possible run (every target, every retry, every backoff, plus slack).
pub(crate) fn worst_case(route: &ModelRoute, cfg: &GatewayConfig, spec: &CallSpec) -> WorstCase {
    let cost = route.targets.iter().map(|t| t.cost(spec.prompt_bound, spec.output_cap)).fold(0.0, f64::max);
    let attempts = u64::from(cfg.max_retries) + 1;
    let longest: u64 = route
        .targets
        .iter()
        .map(|t| attempts * (t.timeouts.total_ms + cfg.backoff_max_ms))
        .fold(0, u64::saturating_add);
    WorstCase {
        tokens: spec.prompt_bound.saturating_add(spec.output_cap),
        cost: NanoUsd::ceil_usd(cost),
        max_duration: Duration::from_millis(longest) + RESERVATION_SLACK,
    }
}

impl GatewayService {
    /// The cache stage: reads the cache when `plan` says so, after checking the caller's role
    /// and taking its place in the key's request rate (noted in `spec`, so admission takes no
    /// second one). With a semantic tier, a miss embeds the question (a model call on the
    /// caller's key; the answer is stored with it) and looks for an earlier one like it.
    /// Returns the entry found; the caller answers from it and calls `hit`.
    pub(crate) async fn cached(
        &self,
        ctx: &CallContext,
        plan: &mut CachePlan,
        spec: &mut CallSpec,
    ) -> Result<Option<CacheEntry>> {
        if plan.reads() || plan.semantic.is_some() {
            let p = &ctx.principal;
            p.require(Role::Member)?;
            ctx.check()?;
            if !ctx.request_admitted {
                self.limiter.admit_request(p).await.inspect_err(|_| {
                    self.metrics.limited.get_or_create(&vec![("limit", "rate".into())]).inc();
                })?;
                spec.request_taken = true;
            }
        }
        let tenant = &ctx.principal.tenant_id;
        // A question holding personal data is neither stored in the clear nor matched by meaning
        // (two questions about different people's orders would agree).
        if plan.semantic.as_ref().is_some_and(|s| self.guards.has_pii(&s.question)) {
            plan.semantic = None;
        }
        let mut found = self.cache.lookup(tenant, plan).await;
        if found.is_none() && plan.semantic.is_some() {
            self.embed_question(ctx, plan).await;
            found = self.cache.lookup_similar(tenant, plan).await;
        }
        self.cache.count(plan, found.as_ref());
        if self.tracer.enabled() {
            spec.attributes.push((attrs::CACHE_STATUS, plan.status.as_str().into()));
            if let Some(s) = plan.similarity {
                spec.attributes.push((attrs::CACHE_SIMILARITY, format!("{s:.4}").into()));
            }
        }
        Ok(found)
    }

    /// Embeds the plan's question with its semantic tier's model, on the caller's key (the
    /// request already holds its place in the request rate). On failure the call goes on
    /// without the semantic tier.
    async fn embed_question(&self, ctx: &CallContext, plan: &mut CachePlan) {
        let Some(s) = plan.semantic.as_mut() else { return };
        let mut inner = ctx.clone();
        inner.request_admitted = true;
        inner.cache = Default::default();
        inner.knowledge = Vec::new();
        let req = EmbeddingRequest::new(&s.config.embedding, EmbeddingInput::Text(s.question.clone()));
        match Box::pin(self.embeddings(&inner, req)).await {
            Ok((resp, _)) => match resp.data.into_iter().next().map(|d| d.embedding) {
                Some(EmbeddingVector::Float(v)) => s.vector = Some(v),
                _ => plan.semantic = None,
            },
            Err(e) => {
                tracing::warn!(error = %e, model = %s.config.embedding, "embedding a question for the semantic cache failed");
                plan.semantic = None;
            }
        }
    }

    /// Accounts a call answered from the cache: a usage record with status `cached`, no cost
    /// and no tokens, and the call's span; returns where the entry was first served.
    pub(crate) fn hit(
        &self,
        ctx: &CallContext,
        route: &ModelRoute,
        spec: CallSpec,
        entry: &CacheEntry,
        plan: &CachePlan,
    ) -> Routed {
        let mut spec = CallSpec { prompt_estimate: 0, ..spec };
        let call_id = uuid::Uuid::now_v7().to_string();
        let mut span = self.call_span(ctx, route, &mut spec, &call_id);
        span.set(attrs::LIMIT_DECISION, "admitted");
        // The answer is sent without waiting for its record, which costs nothing and settles
        // no budget: it may share a transaction with others.
        let mut call = self.pending(ctx, route, &spec, Admission::default(), span, call_id).unawaited();
        call.served_by(&entry.provider, &entry.upstream_model);
        call.reported = Some((0, 0));
        if call.capture.is_some() {
            call.output_text.clone_from(&entry.body);
        }
        call.finish(CallStatus::Cached, None, &RouteTrace::default());
        Routed {
            provider: entry.provider.clone(),
            model: entry.upstream_model.clone(),
            retries: 0,
            fallbacks: 0,
            cache: Some(CacheStatus::Hit),
            cache_similarity: plan.similarity,
            guards: Default::default(),
            route: None,
        }
    }

    /// Accounts a call a guard refused before any upstream call: the caller's role and request
    /// rate are checked as for any call (a refused call is still a request), then a usage
    /// record with status `blocked`, no cost and no tokens, and the call's span. Returns the
    /// call's id.
    pub(crate) async fn blocked(
        &self,
        ctx: &CallContext,
        route: &ModelRoute,
        spec: CallSpec,
        b: &Blocked,
    ) -> Result<String> {
        let p = &ctx.principal;
        p.require(Role::Member)?;
        ctx.check()?;
        if !ctx.request_admitted && !spec.request_taken {
            self.limiter.admit_request(p).await.inspect_err(|_| {
                self.metrics.limited.get_or_create(&vec![("limit", "rate".into())]).inc();
            })?;
        }
        let mut spec = CallSpec { prompt_estimate: 0, ..spec };
        let call_id = uuid::Uuid::now_v7().to_string();
        let mut span = self.call_span(ctx, route, &mut spec, &call_id);
        span.set(attrs::LIMIT_DECISION, "admitted");
        let mut call = self.pending(ctx, route, &spec, Admission::default(), span, call_id.clone()).unawaited();
        call.reported = Some((0, 0));
        call.finish(CallStatus::Blocked, Some(b.error().to_string()), &RouteTrace::default());
        Ok(call_id)
    }

    /// A model call's span, with the attributes every call carries (taking `spec`'s).
    fn call_span(&self, ctx: &CallContext, route: &ModelRoute, spec: &mut CallSpec, call_id: &str) -> ActiveSpan {
        let operation = spec.endpoint.as_str();
        let mut span = ctx.span(&self.tracer, format!("{operation} {}", route.alias), SpanKind::Internal);
        if span.recording() {
            span.set(attrs::OPERATION, operation);
            span.set(attrs::REQUEST_MODEL, route.alias.clone());
            span.set(attrs::CALL_ID, call_id.to_owned());
            span.set(attrs::KEY_ID, ctx.principal.key_id.clone());
            span.set(attrs::REQUEST_ID, ctx.request_id.clone());
            span.set(attrs::STREAMED, spec.streamed);
            for (k, v) in std::mem::take(&mut spec.attributes) {
                span.set(k, v);
            }
        }
        span
    }

    /// Starts accounting a call of `ctx`'s caller on `route` holding `admission`.
    fn pending(
        &self,
        ctx: &CallContext,
        route: &ModelRoute,
        spec: &CallSpec,
        admission: Admission,
        span: ActiveSpan,
        call_id: String,
    ) -> PendingCall {
        let meta = CallMeta {
            call_id,
            request_id: &ctx.request_id,
            endpoint: spec.endpoint,
            alias: &route.alias,
            streamed: spec.streamed,
            prompt_estimate: spec.prompt_estimate,
            admission,
            span,
            capture: self.tracer.captures_content().then(|| self.tracer.clone()),
            // Cairn's own streams (agent runs) hold no client, and answers may be configured
            // not to wait: then records can linger.
            urgency: if ctx.holds_connection && self.gateway_config.usage_commit == UsageCommit::BeforeAnswer {
                Urgency::Awaited
            } else {
                Urgency::Behind
            },
        };
        PendingCall::start(self.recorder.clone(), self.limiter.clone(), &ctx.principal, meta)
    }

    /// Admits a call for `ctx`'s caller on `route`; the guard accounts it from here on.
    pub(crate) async fn open(&self, ctx: &CallContext, route: &ModelRoute, mut spec: CallSpec) -> Result<CallGuard> {
        let p = &ctx.principal;
        p.require(Role::Member)?;
        ctx.check()?;
        let worst = worst_case(route, &self.gateway_config, &spec);
        let call_id = uuid::Uuid::now_v7().to_string();
        let mut span = self.call_span(ctx, route, &mut spec, &call_id);
        let take_request = !ctx.request_admitted && !spec.request_taken;
        let mut admitted = self.limiter.admit(p, &worst, take_request).await;
        if matches!(admitted, Err(Error::BudgetExceeded { .. })) {
            // Finished calls' costs may still be on their way to storage (records are
            // committed in batches): once they are written, storage tells spent from held, so
            // the refusal says when a retry can succeed. Same decision: the sum is the same.
            self.recorder.flush().await;
            admitted = self.limiter.admit(p, &worst, take_request).await;
        }
        let admission = match admitted {
            Ok(a) => a,
            Err(e) => {
                let kind = if matches!(e, Error::BudgetExceeded { .. }) { "budget" } else { "rate" };
                self.metrics.limited.get_or_create(&vec![("limit", kind.into())]).inc();
                span.set(attrs::LIMIT_DECISION, kind);
                span.set(attrs::ERROR_TYPE, "limited");
                span.fail(&e);
                return Err(e);
            }
        };
        span.set(attrs::LIMIT_DECISION, "admitted");
        let call = self.pending(ctx, route, &spec, admission, span, call_id);
        Ok(CallGuard { call, trace: RouteTrace::default() })
    }
}

impl GatewayService {
    /// Admits a request that costs work (search, upload, job) against the caller's request
    /// rate; the context then says so, and model calls made for it take no second request.
    pub async fn admit_request(&self, ctx: &mut CallContext) -> Result<()> {
        if !ctx.request_admitted {
            if let Err(e) = self.limiter.admit_request(&ctx.principal).await {
                self.metrics.limited.get_or_create(&vec![("limit", "rate".into())]).inc();
                return Err(e);
            }
            ctx.request_admitted = true;
        }
        Ok(())
    }
}
