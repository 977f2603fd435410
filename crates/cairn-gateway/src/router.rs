//! The router: maps a model alias to its ordered targets and runs one call across them with
//! retries (exponential backoff with jitter, honouring `retry-after`), then fallback to the
//! next target. Each target has its own circuit breaker and timeouts; each provider has a
//! concurrency limit shared by its targets. A call whose future is dropped (the client went
//! away) stops at once, dropping the upstream request with it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::config::{Config, ModelKind, Timeouts};
use cairn_core::trace::{attrs, ActiveSpan, SpanKind, TraceContext, Tracer};
use cairn_core::Error;
use cairn_telemetry::Metrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backoff;
use crate::breaker::Breaker;
use crate::provider::{self, Provider, ProviderError};

/// One provider + upstream model, with its runtime state.
pub struct Target {
    /// Provider name from config.
    pub provider_name: String,
    /// Upstream model name.
    pub model: String,
    /// The provider client.
    pub provider: Arc<dyn Provider>,
    slots: Arc<Semaphore>,
    breaker: Breaker,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    input_usd_per_mtok: f64,
    output_usd_per_mtok: f64,
    /// The operator says this model can call tools (`targets[].tools`).
    pub tools: bool,
    /// Its provider may see personal data (`providers.NAME.trusted`): the `pii_input` guard
    /// leaves prompts to it as they are.
    pub trusted: bool,
}

impl Target {
    /// Cost in US dollars of a call with these token counts.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_usd_per_mtok + output_tokens as f64 * self.output_usd_per_mtok) / 1e6
    }

    /// `provider/model`, for listings and error messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider_name, self.model)
    }

    fn publish_breaker(&self, metrics: &Metrics) {
        metrics
            .breaker_state
            .get_or_create(&vec![("provider", self.provider_name.clone()), ("model", self.model.clone())])
            .set(self.breaker.state().gauge());
    }
}

/// A model alias and its targets in fallback order.
pub struct ModelRoute {
    /// The name clients use.
    pub alias: String,
    /// Chat or embedding.
    pub kind: ModelKind,
    /// Targets, preferred first.
    pub targets: Vec<Arc<Target>>,
    /// The alias's response cache, if it has one.
    pub cache: Option<cairn_core::config::ModelCacheConfig>,
    /// The alias's guards.
    pub guards: cairn_core::guard::GuardSettings,
}

/// Which deadline bounds one attempt.
#[derive(Clone, Copy, Debug)]
pub enum Deadline {
    /// The whole call (`total_ms`): non-streaming calls.
    Total,
    /// Until the first chunk (`first_token_ms`): stream starts.
    FirstToken,
}

/// What routing did, for accounting: retries, fallbacks, and the target that answered (or
/// failed last).
#[derive(Clone, Default)]
pub struct RouteTrace {
    /// Retries across all targets.
    pub retries: u32,
    /// Moves to a later target.
    pub fallbacks: u32,
    /// The last target tried.
    pub target: Option<Arc<Target>>,
}

pub use cairn_core::openai::Routed;

impl From<&RouteTrace> for Routed {
    fn from(t: &RouteTrace) -> Self {
        Routed {
            provider: t.target.as_ref().map(|t| t.provider_name.clone()).unwrap_or_default(),
            model: t.target.as_ref().map(|t| t.model.clone()).unwrap_or_default(),
            retries: t.retries,
            fallbacks: t.fallbacks,
            cache: None,
            cache_similarity: None,
            guards: Default::default(),
            route: None,
        }
    }
}

/// A failed routed call: the client-facing error and what was tried.
pub struct RouteError {
    /// The error for the client.
    pub error: Error,
    /// What routing did.
    pub trace: RouteTrace,
}

/// Releases a half-open breaker's probe slot if the attempt is dropped without a verdict.
struct Attempt<'a> {
    breaker: &'a Breaker,
    settled: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.on_abandoned();
        }
    }
}

/// Where a routed call's attempts are traced: one span per attempt (and per target a breaker
/// refused), children of the call's span.
pub struct Traced<'a> {
    /// Records the spans.
    pub tracer: &'a Tracer,
    /// The call's place in its trace: attempts are children of the call's span.
    pub at: TraceContext,
    /// The tenant the call is for.
    pub tenant: &'a str,
    /// `chat` or `embeddings`.
    pub operation: &'static str,
}

impl Traced<'_> {
    fn attempt(&self, target: &Target, attempt: u32) -> ActiveSpan {
        let mut span =
            self.tracer.start(&self.at, self.tenant, format!("{} {}", self.operation, target.model), SpanKind::Client);
        if span.recording() {
            span.set(attrs::OPERATION, self.operation);
            span.set(attrs::PROVIDER, target.provider_name.clone());
            span.set(attrs::REQUEST_MODEL, target.model.clone());
            span.set(attrs::ATTEMPT, attempt);
        }
        span
    }
}

/// Routes model calls.
pub struct Router {
    routes: BTreeMap<String, ModelRoute>,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    metrics: Arc<Metrics>,
}

impl Router {
    /// Builds providers, targets and routes from config.
    pub fn from_config(cfg: &Config, metrics: Arc<Metrics>) -> Result<Self, String> {
        let g = &cfg.gateway;
        let slots: HashMap<&str, Arc<Semaphore>> =
            cfg.providers.iter().map(|(n, p)| (n.as_str(), Arc::new(Semaphore::new(p.max_concurrency)))).collect();
        let local = Arc::new(provider::LocalProvider::new(&cfg.local));
        // One client per (provider, connect timeout): targets share connection pools.
        let mut clients: HashMap<(String, u64), Arc<dyn Provider>> = HashMap::new();
        let mut routes = BTreeMap::new();
        // Routed aliases have no targets: the cost router sends their calls to other aliases.
        for (alias, m) in cfg.models.iter().filter(|(_, m)| m.route.is_none()) {
            let mut targets = Vec::new();
            for t in &m.targets {
                let p = cfg.providers.get(&t.provider).ok_or_else(|| format!("unknown provider {}", t.provider))?;
                let timeouts = t.timeouts.over(p.timeouts.over(g.timeouts));
                let key = (t.provider.clone(), timeouts.connect_ms);
                let client = match clients.get(&key) {
                    Some(c) => c.clone(),
                    None => {
                        let c = provider::build(&t.provider, p, Duration::from_millis(timeouts.connect_ms), &local)?;
                        clients.insert(key, c.clone());
                        c
                    }
                };
                let target = Target {
                    provider_name: t.provider.clone(),
                    model: t.model.clone(),
                    provider: client,
                    slots: slots[t.provider.as_str()].clone(),
                    breaker: Breaker::new(g.breaker_failure_threshold, Duration::from_millis(g.breaker_open_ms)),
                    timeouts,
                    input_usd_per_mtok: t.input_usd_per_mtok,
                    output_usd_per_mtok: t.output_usd_per_mtok,
                    tools: t.tools,
                    trusted: p.is_trusted(),
                };
                target.publish_breaker(&metrics);
                targets.push(Arc::new(target));
            }
            routes.insert(
                alias.clone(),
                ModelRoute { alias: alias.clone(), kind: m.kind, targets, cache: m.cache.clone(), guards: m.guards },
            );
        }
        Ok(Self {
            routes,
            max_retries: g.max_retries,
            backoff_base: Duration::from_millis(g.backoff_base_ms),
            backoff_max: Duration::from_millis(g.backoff_max_ms),
            metrics,
        })
    }

    /// Starts preparing every target in the background (in-process models load now rather than
    /// on their first request); failures are logged with what fixes them.
    pub fn warm_up(&self) {
        for route in self.routes.values() {
            for t in &route.targets {
                let target = t.clone();
                tokio::spawn(async move {
                    if let Err(e) = target.provider.warm_up(&target.model).await {
                        tracing::warn!(target = %target.label(), error = %e, "model not ready");
                    }
                });
            }
        }
    }

    /// The route for an alias.
    pub fn route(&self, alias: &str) -> Option<&ModelRoute> {
        self.routes.get(alias)
    }

    /// Every route, by alias.
    pub fn routes(&self) -> impl Iterator<Item = &ModelRoute> {
        self.routes.values()
    }

    /// Runs `op` against the route's targets until one succeeds. `op` gets the target and a
    /// concurrency slot, which it may keep (streams hold theirs until they end).
    pub async fn call<T, F, Fut>(
        &self,
        route: &ModelRoute,
        deadline: Deadline,
        traced: Traced<'_>,
        op: F,
    ) -> Result<(T, RouteTrace), RouteError>
    where
        F: Fn(Arc<Target>, OwnedSemaphorePermit) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut trace = RouteTrace::default();
        let mut last_err: Option<ProviderError> = None;
        let mut tried_any = false;
        for (i, target) in route.targets.iter().enumerate() {
            if i > 0 && tried_any {
                trace.fallbacks += 1;
                self.metrics.fallbacks.get_or_create(&vec![("model", route.alias.clone())]).inc();
            }
            trace.target = Some(target.clone());
            let limit = Duration::from_millis(match deadline {
                Deadline::Total => target.timeouts.total_ms,
                Deadline::FirstToken => target.timeouts.first_token_ms,
            });
            for attempt in 0..=self.max_retries {
                let mut span = traced.attempt(target, attempt);
                if !target.breaker.try_acquire() {
                    span.set(attrs::ERROR_TYPE, "circuit_open");
                    span.fail("circuit open: the target was not called");
                    last_err.get_or_insert(ProviderError::Connect(format!("circuit open for {}", target.label())));
                    break;
                }
                tried_any = true;
                let mut guard = Attempt { breaker: &target.breaker, settled: false };
                // One deadline per attempt covers both waiting for a slot and the call itself.
                let until = tokio::time::Instant::now() + limit;
                let result = match tokio::time::timeout_at(until, target.slots.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => match tokio::time::timeout_at(
                        until,
                        provider::TRACEPARENT.scope(span.context().traceparent(span.id()), op(target.clone(), permit)),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(ProviderError::Timeout(match deadline {
                            Deadline::Total => "the response",
                            Deadline::FirstToken => "the first token",
                        })),
                    },
                    // Saturated locally: not the upstream's fault, so the breaker is left alone.
                    _ => {
                        guard.settled = true;
                        target.breaker.on_abandoned();
                        span.set(attrs::ERROR_TYPE, "no_free_slot");
                        span.fail("no free connection slot in time");
                        last_err = Some(ProviderError::Timeout("a free connection slot"));
                        break;
                    }
                };
                guard.settled = true;
                match result {
                    Ok(value) => {
                        span.ok();
                        target.breaker.on_success();
                        target.publish_breaker(&self.metrics);
                        return Ok((value, trace));
                    }
                    Err(e) => {
                        span.set(attrs::ERROR_TYPE, e.kind());
                        span.fail(&e);
                        drop(span);
                        self.metrics
                            .upstream_errors
                            .get_or_create(&vec![("provider", target.provider_name.clone()), ("kind", e.kind().into())])
                            .inc();
                        if let (true, ProviderError::Status { status, message, .. }) = (e.is_client_error(), &e) {
                            target.breaker.on_success();
                            let error = Error::UpstreamRejected { status: *status, message: message.clone() };
                            return Err(RouteError { error, trace });
                        }
                        if matches!(e, ProviderError::Unavailable { .. }) {
                            // Not an upstream fault (e.g. a model not installed): next target.
                            target.breaker.on_abandoned();
                            last_err = Some(e);
                            break;
                        }
                        target.breaker.on_failure();
                        target.publish_breaker(&self.metrics);
                        tracing::warn!(target = %target.label(), attempt, error = %e, "upstream call failed");
                        let retry = e.is_retryable() && attempt < self.max_retries;
                        let wait = retry
                            .then(|| {
                                backoff::delay(
                                    attempt,
                                    self.backoff_base,
                                    self.backoff_max,
                                    e.retry_after(),
                                    &mut rand::thread_rng(),
                                )
                            })
                            .flatten();
                        last_err = Some(e);
                        let Some(wait) = wait else { break };
                        trace.retries += 1;
                        self.metrics.retries.get_or_create(&vec![("provider", target.provider_name.clone())]).inc();
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        let error = match (tried_any, last_err) {
            (false, _) => Error::Unavailable {
                message: format!(
                    "every target of model '{}' is unavailable (circuit open); try again later",
                    route.alias
                ),
                retry_after: Some(Duration::from_secs(1)),
            },
            (true, Some(ProviderError::Unavailable { message, retry_after })) => {
                Error::Unavailable { message, retry_after }
            }
            (true, Some(e)) => Error::Upstream {
                message: format!(
                    "model '{}': all targets failed; last error from {}: {e}",
                    route.alias,
                    trace.target.as_ref().map(|t| t.label()).unwrap_or_default()
                ),
                timeout: matches!(e, ProviderError::Timeout(_)),
            },
            (true, None) => Error::Internal("routing ended without a result".into()),
        };
        Err(RouteError { error, trace })
    }
}
