//! The gateway service: what the HTTP layer and the knowledge layer call for chat (in `chat`),
//! embeddings, models and usage. Every call passes the stages in `pipeline`: cache, guards,
//! admit, route, account.

use std::sync::Arc;
use std::time::Duration;

use cairn_access::Limiter;
use cairn_core::config::{Config, GatewayConfig, ModelKind};
use cairn_core::openai::{
    ChatRequest, EmbeddingRequest, EmbeddingResponse, EmbeddingVector, EncodingFormat, Model, ModelInfo, ModelList,
};
use cairn_core::store::{RateStore, Store};
use cairn_core::tenancy::{Principal, Role};
use cairn_core::topology::Dependency;
use cairn_core::trace::{attrs, AttrValue, Tracer};
use cairn_core::usage::{UsageBucket, UsageQuery};
use cairn_core::CallContext;
use cairn_core::{Error, Result};
use cairn_telemetry::Metrics;
use serde::{Deserialize, Serialize};

use crate::accounting::{CallGuard, Endpoint, UsageRecorder};
use crate::cache::ResponseCache;
use crate::guard::{Guards, SharedVectors};
use crate::journal::UsageJournal;
use crate::pipeline::CallSpec;
use crate::provider::TokenCount;
use crate::router::Routed;
use crate::router::{Deadline, ModelRoute, RouteError, Router, Traced};
use crate::routing::CostRouter;
pub use crate::stream::{ChatStream, StreamEvent};

/// Most inputs in one embeddings request (OpenAI's limit).
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// A usage query as clients send it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct UsageRequest {
    /// First day, `YYYY-MM-DD` (UTC); default 30 days before `to`.
    #[param(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    #[schema(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last day, inclusive, `YYYY-MM-DD`; default today.
    #[param(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    #[schema(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub to: Option<String>,
    /// Tenant (admins only; default the caller's own).
    pub tenant: Option<String>,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only this model alias.
    pub model: Option<String>,
}

/// Usage report: buckets by day, tenant, model and key, with totals.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// Always `list`.
    pub object: String,
    /// First day covered.
    pub from: String,
    /// Last day covered.
    pub to: String,
    /// The buckets.
    pub data: Vec<UsageBucket>,
    /// Sums over all buckets.
    pub totals: UsageTotals,
}

/// Sums over a usage report.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// Calls.
    pub requests: u64,
    /// Calls that did not end `ok`.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// The model gateway.
pub struct GatewayService {
    pub(crate) router: Router,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) recorder: UsageRecorder,
    pub(crate) gateway_config: GatewayConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tracer: Tracer,
    pub(crate) cache: ResponseCache,
    pub(crate) guards: Guards,
    pub(crate) cost_router: CostRouter,
    started_secs: i64,
}

impl GatewayService {
    /// Builds the gateway from config over `store`, with per-key rate buckets in
    /// `shared_rates` when they are shared across nodes (else in this process); starts the
    /// usage writer, which makes records durable in `journal` first when there is one.
    pub fn new(
        cfg: &Config,
        store: Arc<dyn Store>,
        shared_rates: Option<Arc<dyn RateStore>>,
        metrics: Arc<Metrics>,
        journal: Option<UsageJournal>,
    ) -> std::result::Result<Self, String> {
        let router = Router::from_config(cfg, metrics.clone())?;
        router.warm_up();
        let vectors = SharedVectors::new(crate::models_dir(&cfg.local), cfg.guards.injection_model.clone());
        let recorder = UsageRecorder::start(
            store.clone(),
            metrics.clone(),
            Duration::from_millis(cfg.gateway.usage_flush_ms.max(1)),
            journal,
        );
        Ok(Self {
            router,
            limiter: Arc::new(Limiter::new(store.clone(), cfg.gateway.max_streams_per_key, shared_rates)),
            recorder,
            gateway_config: cfg.gateway.clone(),
            cache: ResponseCache::start(store.clone(), &cfg.gateway, metrics.clone()),
            guards: Guards::new(cfg, vectors.clone(), metrics.clone())?,
            cost_router: CostRouter::new(cfg, vectors)?,
            store,
            metrics,
            tracer: Tracer::off(),
            started_secs: cairn_core::time::now_secs(),
        })
    }

    /// The same gateway recording a span per call and per attempt through `tracer`.
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    /// Where `guard`'s attempts are traced.
    pub(crate) fn traced<'a>(&'a self, ctx: &'a CallContext, guard: &CallGuard, operation: Endpoint) -> Traced<'a> {
        Traced {
            tracer: &self.tracer,
            // The call's span lives until the call ends, so it is there while routing.
            at: guard.call.trace_context().unwrap_or(ctx.trace),
            tenant: &ctx.principal.tenant_id,
            operation: operation.as_str(),
        }
    }

    pub(crate) fn route(&self, alias: &str, kind: ModelKind) -> Result<&ModelRoute> {
        if kind == ModelKind::Embedding && self.cost_router.get(alias).is_some() {
            let hint = format!("model '{alias}' is a routed chat model: use /v1/chat/completions");
            return Err(Error::invalid_param("model", hint));
        }
        let route = self.router.route(alias).ok_or_else(|| Error::ModelNotFound(alias.into()))?;
        if route.kind != kind {
            let hint = match route.kind {
                ModelKind::Chat => "a chat model: use /v1/chat/completions",
                ModelKind::Embedding => "an embedding model: use /v1/embeddings",
            };
            return Err(Error::invalid_param("model", format!("model '{alias}' is {hint}")));
        }
        Ok(route)
    }

    /// Whether every target of chat model `alias` can call tools (a fallback that cannot
    /// would break a tool-calling run); `ModelNotFound` for unknown names.
    pub fn supports_tools(&self, alias: &str) -> Result<bool> {
        if let Some((r, _)) = self.cost_router.get(alias) {
            return Ok(self.supports_tools(&r.small)? && self.supports_tools(&r.large)?);
        }
        // Not a chat model is, for a caller that needs one, no such model.
        let route = self
            .router
            .route(alias)
            .filter(|r| r.kind == ModelKind::Chat)
            .ok_or_else(|| Error::ModelNotFound(alias.into()))?;
        Ok(route.targets.iter().all(|t| t.tools && t.provider.supports_tools(&t.model)))
    }

    /// What a call to `alias` served as `routed` costs at its target's prices (0 when the
    /// target is unknown), as the call's usage record counts it.
    pub fn cost(&self, alias: &str, routed: &Routed, input_tokens: u64, output_tokens: u64) -> f64 {
        let alias = routed.route.as_ref().map_or(alias, |d| d.alias.as_str());
        self.router
            .route(alias)
            .and_then(|r| r.targets.iter().find(|t| t.provider_name == routed.provider && t.model == routed.model))
            .map_or(0.0, |t| t.cost(input_tokens, output_tokens))
    }

    pub(crate) fn chat_spec(&self, req: &ChatRequest, streamed: bool) -> CallSpec {
        let mut attributes: Vec<(&'static str, AttrValue)> = Vec::new();
        if self.tracer.enabled() {
            if let Some(n) = req.output_cap() {
                attributes.push((attrs::REQUEST_MAX_TOKENS, n.into()));
            }
            if let Some(t) = req.temperature {
                attributes.push((attrs::REQUEST_TEMPERATURE, t.into()));
            }
            if let Some(u) = &req.user {
                attributes.push((attrs::END_USER, u.clone().into()));
            }
            if self.tracer.captures_content() {
                let prompt = serde_json::to_string(&req.messages).unwrap_or_default();
                if let Some(text) = self.tracer.content(&prompt) {
                    attributes.push((attrs::INPUT_MESSAGES, text.into()));
                }
            }
        }
        CallSpec {
            endpoint: Endpoint::Chat,
            streamed,
            prompt_bound: req.prompt_token_bound(),
            prompt_estimate: req.estimated_prompt_tokens(),
            output_cap: u64::from(req.output_cap().unwrap_or(self.gateway_config.reserve_output_tokens)),
            attributes,
            request_taken: false,
        }
    }

    /// A place among the caller's open streams (`gateway.max_streams_per_key`): streamed calls
    /// hold one, and so do SSE watchers (job events), which take it here.
    pub fn stream_slot(&self, p: &Principal) -> Result<cairn_access::StreamSlot> {
        self.limiter.open_stream(p).inspect_err(|_| {
            self.metrics.limited.get_or_create(&vec![("limit", "streams".into())]).inc();
        })
    }

    /// The tokenizer of the embedding model `alias` (its first target's), when Cairn runs that
    /// model itself; `None` for remote models and unknown names.
    pub async fn token_count(&self, alias: &str) -> Option<TokenCount> {
        let route = self.route(alias, ModelKind::Embedding).ok()?;
        let first = route.targets.first()?;
        first.provider.token_count(&first.model).await
    }

    /// Embeddings, re-encoded as base64 when the client asks (the official SDKs do by default).
    pub async fn embeddings(&self, ctx: &CallContext, req: EmbeddingRequest) -> Result<(EmbeddingResponse, Routed)> {
        if req.input.is_empty() {
            return Err(Error::invalid_param("input", "input must not be empty"));
        }
        if req.input.len() > MAX_EMBEDDING_INPUTS {
            return Err(Error::invalid_param("input", format!("at most {MAX_EMBEDDING_INPUTS} inputs per request")));
        }
        if req.dimensions == Some(0) {
            return Err(Error::invalid_param("dimensions", "dimensions must be at least 1"));
        }
        let route = self.route(&req.model, ModelKind::Embedding)?;
        let mut plan = self.cache.plan_embeddings(route, &ctx.cache, &ctx.principal.tenant_id, &req)?;
        let mut spec = CallSpec {
            endpoint: Endpoint::Embeddings,
            streamed: false,
            prompt_bound: req.input.token_bound(),
            prompt_estimate: req.input.estimated_tokens(),
            output_cap: 0,
            attributes: Vec::new(),
            request_taken: false,
        };
        if let Some(entry) = self.cached(ctx, &mut plan, &mut spec).await? {
            if let Some(resp) = crate::cache::embeddings(&entry).filter(|r| r.data.len() == req.input.len()) {
                let routed = self.hit(ctx, route, spec, &entry, &plan);
                return Ok((encoded(resp, req.encoding_format), routed));
            }
        }
        let mut guard = self.open(ctx, route, spec).await?;
        let result = self
            .router
            .call(route, Deadline::Total, self.traced(ctx, &guard, Endpoint::Embeddings), |t, _permit| {
                let req = &req;
                async move { t.provider.embed(req, &t.model).await }
            })
            .await;
        match result {
            Ok((mut resp, trace)) => {
                if resp.data.len() != req.input.len() {
                    let message =
                        format!("upstream returned {} embeddings for {} inputs", resp.data.len(), req.input.len());
                    return Err(guard.fail(RouteError { error: Error::Upstream { message, timeout: false }, trace }));
                }
                resp.data.sort_by_key(|d| d.index);
                let mut routed = guard.succeed(trace, Some((resp.usage.prompt_tokens, 0)), 0);
                routed.cache = Some(plan.status);
                // Kept as floats; the encoding a request asks for is applied after a hit.
                self.keep(ctx, &plan, &routed, guard.call.cost_usd, &resp, &mut guard).await;
                Ok((encoded(resp, req.encoding_format), routed))
            }
            Err(e) => Err(guard.fail(e)),
        }
    }

    /// The models the caller may use.
    pub fn models(&self, p: &Principal) -> Result<ModelList> {
        p.require(Role::Reader)?;
        let model = |id: &str, kind: ModelKind, targets: Vec<String>| Model {
            id: id.to_owned(),
            object: "model".into(),
            created: self.started_secs,
            owned_by: "cairn".into(),
            cairn: ModelInfo {
                kind: match kind {
                    ModelKind::Chat => "chat".into(),
                    ModelKind::Embedding => "embedding".into(),
                },
                targets,
            },
        };
        let mut data: Vec<Model> = self
            .router
            .routes()
            .map(|r| model(&r.alias, r.kind, r.targets.iter().map(|t| t.label()).collect()))
            .collect();
        // A routed alias lists the aliases it routes to.
        data.extend(
            self.cost_router.aliases().map(|(a, r)| model(a, ModelKind::Chat, vec![r.small.clone(), r.large.clone()])),
        );
        data.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(ModelList { object: "list".into(), data })
    }

    /// Usage aggregated by day, model and key, for the caller's tenant (admins: any or all).
    pub async fn usage(&self, p: &Principal, q: UsageRequest) -> Result<UsageReport> {
        use cairn_core::time::{iso_day, now_ms, parse_iso_day, DAY_MS};
        p.require(Role::Reader)?;
        let tenant = p.readable_tenant(q.tenant.as_deref())?;
        let day = |param: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    parse_iso_day(s)
                        .ok_or_else(|| Error::invalid_param(param, format!("'{s}' is not a YYYY-MM-DD date")))
                })
                .transpose()
        };
        let to = day("to", &q.to)?.unwrap_or_else(|| now_ms().div_euclid(DAY_MS) * DAY_MS);
        let from = day("from", &q.from)?.unwrap_or(to - 29 * DAY_MS);
        // Any window: the work is bounded by the records in it, not by its length; a window
        // that ends before it starts holds nothing.
        let query =
            UsageQuery { tenant_id: tenant, key_id: q.key_id, model_alias: q.model, from_ms: from, to_ms: to + DAY_MS };
        // Records of calls this node answered without waiting for them (cache hits, blocked
        // calls) may still be queued: a caller reads its own calls.
        self.recorder.flush().await;
        let data = self.store.usage_buckets(&query).await?;
        let mut totals = UsageTotals::default();
        for b in &data {
            totals.requests += b.requests;
            totals.errors += b.errors;
            totals.input_tokens += b.input_tokens;
            totals.output_tokens += b.output_tokens;
            totals.cost_usd += b.cost_usd;
        }
        Ok(UsageReport { object: "list".into(), from: iso_day(from), to: iso_day(to), data, totals })
    }

    /// Writes every queued usage record, then gives idle budget credit back to storage for
    /// other nodes (tests and shutdown).
    pub async fn flush_usage(&self) {
        self.recorder.flush().await;
        self.limiter.release_credit().await;
    }

    /// Checks storage answers, and the shared rate limits when they live elsewhere (for
    /// `/readyz`); an error names which did not.
    pub async fn ready(&self) -> std::result::Result<(), (Dependency, Error)> {
        self.store.ping().await.map_err(|e| (Dependency::Storage, e.into()))?;
        self.limiter.ping_rates().await.map_err(|e| (Dependency::RateLimits, e))
    }
}

/// `resp` in the encoding the client asked for (upstreams always answer in floats).
fn encoded(mut resp: EmbeddingResponse, format: Option<EncodingFormat>) -> EmbeddingResponse {
    if format == Some(EncodingFormat::Base64) {
        for d in &mut resp.data {
            d.embedding = std::mem::replace(&mut d.embedding, EmbeddingVector::Float(vec![])).into_base64();
        }
    }
    resp
}
