//! Chat completions through the pipeline (`pipeline` has the stages): the input guards once
//! per request, then per try the cache, admission, routing (each target getting the request
//! its trust allows), the output guards and accounting. A try whose answer fails its schema
//! is re-asked; a streamed answer relays chunks through the stream guards.

use std::time::Duration;

use cairn_core::config::ModelKind;
use cairn_core::guard::GuardSettings;
use cairn_core::openai::{ChatCompletion, ChatRequest, RouteDecision};
use cairn_core::trace::attrs;
use cairn_core::usage::CallStatus;
use cairn_core::{CallContext, Result};
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::accounting::{CallGuard, Endpoint};
use crate::cache::CachePlan;
use crate::guard::{output::reask, GuardPlan, Verdict};
use crate::router::{Deadline, ModelRoute, Routed};
use crate::service::GatewayService;
use crate::stream::{relay, ChatStream, Relay};

/// Puts what the guards did so far, and the routing decision, on the call's span.
fn annotate(guard: &mut CallGuard, plan: &GuardPlan, decision: Option<&RouteDecision>) {
    let report = plan.report.header();
    if !report.is_empty() {
        guard.call.annotate(attrs::GUARDS, report);
    }
    if let Some(d) = decision {
        guard.call.annotate(attrs::ROUTE, d.header());
    }
}

/// How one try of a chat call ended.
enum Try {
    /// The answer, past every guard.
    Done(ChatCompletion, Routed),
    /// The answer failed its schema, with this error: ask again.
    Reask(ChatCompletion, String),
}

impl GatewayService {
    /// A non-streaming chat completion.
    pub async fn chat(&self, ctx: &CallContext, mut req: ChatRequest) -> Result<(ChatCompletion, Routed)> {
        req.validate()?;
        let (decision, routed_guards) = self.pick(ctx, &mut req).await;
        let route = self.route(&req.model, ModelKind::Chat)?;
        let mut plan = self.guards.plan(route, &ctx.principal, &routed_guards);
        let redacted = self.guard_input(ctx, route, &req, &mut plan, || self.chat_spec(&req, false)).await?;
        let (completion, mut routed) = self.chat_guarded(ctx, route, req, redacted, plan, decision.as_ref()).await?;
        routed.route = decision;
        Ok((completion, routed))
    }

    /// The cost-routing stage: when `req` names a routed alias, decides which of its models
    /// answers and names that one in `req` (usage is recorded under it); returns the decision
    /// and the routed alias's own guards.
    async fn pick(&self, ctx: &CallContext, req: &mut ChatRequest) -> (Option<RouteDecision>, GuardSettings) {
        let Some((route, guards)) = self.cost_router.get(&req.model) else {
            return (None, GuardSettings::default());
        };
        let decision = self.cost_router.decide(&req.model, route, req, ctx.route).await;
        req.model.clone_from(&decision.alias);
        (Some(decision), *guards)
    }

    /// Tries until an answer passes the output guards, re-asking after schema failures.
    #[allow(clippy::too_many_arguments)] // the call's own state, passed on to each try
    async fn chat_guarded(
        &self,
        ctx: &CallContext,
        route: &ModelRoute,
        mut req: ChatRequest,
        mut redacted: Option<ChatRequest>,
        mut plan: GuardPlan,
        decision: Option<&RouteDecision>,
    ) -> Result<(ChatCompletion, Routed)> {
        let mut asked = 0u8;
        loop {
            match self.chat_once(ctx, route, &req, redacted.as_ref(), &mut plan, asked, decision).await? {
                Try::Done(completion, mut routed) => {
                    routed.guards = plan.report;
                    return Ok((completion, routed));
                }
                Try::Reask(failed, error) => {
                    redacted = redacted.map(|r| reask(&r, &failed, &error));
                    req = reask(&req, &failed, &error);
                    asked += 1;
                }
            }
        }
    }

    /// One try: cache, admission, routing, output guards, accounting.
    #[allow(clippy::too_many_arguments)] // the try's own state, each used once
    async fn chat_once(
        &self,
        ctx: &CallContext,
        route: &ModelRoute,
        req: &ChatRequest,
        redacted: Option<&ChatRequest>,
        plan: &mut GuardPlan,
        asked: u8,
        decision: Option<&RouteDecision>,
    ) -> Result<Try> {
        let mut cache = self.cache.plan_chat(route, ctx, req)?;
        let mut spec = self.chat_spec(req, false);
        if let Some(entry) = self.cached(ctx, &mut cache, &mut spec).await? {
            if let Some(mut completion) = crate::cache::completion(&entry) {
                // A hit passes the output guards too: it may have been stored under laxer ones.
                let mut trial = plan.clone();
                if let Verdict::Pass = self.guards.check_output(&mut trial, req, &mut completion) {
                    *plan = trial;
                    return Ok(Try::Done(completion, self.hit(ctx, route, spec, &entry, &cache)));
                }
            }
        }
        let mut guard = self.open(ctx, route, spec).await?;
        let result = self
            .router
            .call(route, Deadline::Total, self.traced(ctx, &guard, Endpoint::Chat), |t, _permit| {
                let req = if t.trusted { req } else { redacted.unwrap_or(req) };
                async move { t.provider.chat(req, &t.model).await }
            })
            .await;
        let (mut completion, trace) = result.map_err(|e| guard.fail(e))?;
        let reported = completion.usage.as_ref().map(|u| (u.prompt_tokens, u.completion_tokens));
        let chars = completion.choices.iter().map(|c| c.message.text_content().len()).sum();
        let verdict = match self.guards.check_output(plan, req, &mut completion) {
            Verdict::Reask(e) if asked >= plan.settings.retries() => {
                Verdict::Block(self.guards.schema_block(plan, &e, asked))
            }
            v => v,
        };
        if guard.call.capture.is_some() {
            guard.call.output_text = serde_json::to_string(&completion.choices).unwrap_or_default();
        }
        annotate(&mut guard, plan, decision);
        match verdict {
            Verdict::Pass => {
                let mut routed = guard.succeed(trace, reported, chars);
                routed.cache = Some(cache.status);
                self.keep(ctx, &cache, &routed, guard.call.cost_usd, &completion, &mut guard).await;
                Ok(Try::Done(completion, routed))
            }
            Verdict::Reask(error) => {
                guard.succeed(trace, reported, chars);
                guard.durable().await;
                Ok(Try::Reask(completion, error))
            }
            Verdict::Block(b) => {
                let call_id = guard.call.call_id();
                guard.settle(trace, reported, chars, CallStatus::Blocked, Some(b.error().to_string()));
                let audit = self.block_audit(ctx, req);
                tokio::join!(guard.durable(), audit.record(&b, &call_id));
                Err(b.error())
            }
        }
    }

    /// Waits for a finished call's usage record and, when `plan` writes, stores its answer.
    pub(crate) async fn keep<T: Serialize>(
        &self,
        ctx: &CallContext,
        plan: &CachePlan,
        routed: &Routed,
        cost_usd: f64,
        answer: &T,
        guard: &mut CallGuard,
    ) {
        let store = async {
            if plan.writes() {
                if let Ok(body) = serde_json::to_string(answer) {
                    self.cache.store(&ctx.principal.tenant_id, plan, routed, body, cost_usd).await;
                }
            }
        };
        tokio::join!(guard.durable(), store);
    }

    /// Starts a streamed chat completion. Returns once the first chunk has arrived, so every
    /// retry and fallback happens before the client has seen a byte; from then on, no retry.
    /// An answer that must match a schema is produced whole (re-asked as needed), then streamed.
    pub async fn chat_stream(
        &self,
        ctx: &CallContext,
        mut req: ChatRequest,
        shutdown: CancellationToken,
    ) -> Result<(ChatStream, Routed)> {
        req.validate()?;
        let (decision, routed_guards) = self.pick(ctx, &mut req).await;
        let route = self.route(&req.model, ModelKind::Chat)?;
        let mut plan = self.guards.plan(route, &ctx.principal, &routed_guards);
        let redacted = self.guard_input(ctx, route, &req, &mut plan, || self.chat_spec(&req, true)).await?;
        let wants_usage = req.wants_stream_usage();
        if self.guards.validates(&plan, &req) {
            let (completion, mut routed) =
                self.chat_guarded(ctx, route, req, redacted, plan, decision.as_ref()).await?;
            routed.route = decision;
            return Ok((crate::cache::replay(completion, wants_usage), routed));
        }
        let mut cache = self.cache.plan_chat(route, ctx, &req)?;
        let mut spec = self.chat_spec(&req, true);
        if let Some(entry) = self.cached(ctx, &mut cache, &mut spec).await? {
            if let Some(mut completion) = crate::cache::completion(&entry) {
                let mut trial = plan.clone();
                if let Verdict::Pass = self.guards.check_output(&mut trial, &req, &mut completion) {
                    let mut routed = self.hit(ctx, route, spec, &entry, &cache);
                    routed.guards = trial.report;
                    routed.route = decision;
                    return Ok((crate::cache::replay(completion, wants_usage), routed));
                }
            }
        }
        let slot = if ctx.holds_connection { Some(self.stream_slot(&ctx.principal)?) } else { None };
        let mut guard = self.open(ctx, route, spec).await?;
        let started = tokio::time::Instant::now();
        let result = self
            .router
            .call(route, Deadline::FirstToken, self.traced(ctx, &guard, Endpoint::Chat), |t, permit| {
                let req = if t.trusted { &req } else { redacted.as_ref().unwrap_or(&req) };
                async move {
                    let mut upstream = t.provider.chat_stream(req, &t.model).await?;
                    match upstream.next().await {
                        Some(Ok(first)) => Ok((first, upstream, permit, t.provider.token_count(&t.model).await)),
                        Some(Err(e)) => Err(e),
                        None => Err(crate::ProviderError::Protocol("stream ended before any chunk".into())),
                    }
                }
            })
            .await;
        let ((first, upstream, permit, counter), trace) = result.map_err(|e| guard.fail(e))?;
        annotate(&mut guard, &plan, decision.as_ref());
        let pii = self.guards.stream_pii(&plan);
        let audit = pii.is_some().then(|| self.block_audit(ctx, &req));
        if let Some(counter) = counter {
            guard.call.count_with(counter, std::mem::take(&mut req.messages));
        }
        let total = trace.target.as_ref().map(|t| t.timeouts.total_ms).unwrap_or(600_000);
        let mut routed = guard.started(trace);
        routed.cache = Some(cache.status);
        routed.guards = plan.report;
        routed.route = decision;
        let keep = cache
            .writes()
            .then(|| crate::cache::StreamKeep::new(&self.cache, &ctx.principal.tenant_id, cache, routed.clone()));
        let stream = relay(Relay {
            upstream,
            first,
            guard,
            wants_usage,
            durable: ctx.holds_connection,
            deadline: started + Duration::from_millis(total),
            shutdown,
            permit,
            slot,
            metrics: self.metrics.clone(),
            keep,
            pii,
            audit,
        });
        Ok((stream, routed))
    }
}
