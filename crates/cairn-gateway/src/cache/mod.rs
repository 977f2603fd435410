//! The exact response cache, a stage of the call pipeline for chat (streamed or not) and
//! embeddings. Before a call runs, `plan` decides from the alias's `[models.NAME.cache]`, the
//! request's sampling and its cache control whether the cache is read, written, or neither;
//! a read that finds an unexpired entry of the caller's tenant answers the call (accounted as
//! `cached`, at no cost, taking no provider slot); otherwise the call runs and its complete,
//! successful answer is stored before the response ends, so the next identical request hits.
//! Cache trouble never fails a call: a failed read is a miss, a failed write is counted.
//! An alias with `[models.NAME.cache.semantic]` also answers questions asked in other words
//! (`semantic`). Answers built from knowledge collections are tied to them: storage deletes
//! them when a collection changes, and they are never held in this node's memory tier.

mod admin;
mod key;
mod memory;
mod replay;
pub mod semantic;

pub use admin::{CachePurgeRequest, CachePurged};

use std::sync::Arc;
use std::time::Duration;

use cairn_core::cache::{
    CacheControl, CacheEntry, CacheKey, CachePurge, CacheStatus, EntryIndex, ResponseCacheStore, SemanticIndex,
};
use cairn_core::config::{GatewayConfig, ModelCacheConfig};
use cairn_core::openai::{ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse, Routed, Usage};
use cairn_core::{CallContext, Error, Result};
use cairn_telemetry::Metrics;

pub(crate) use replay::{replay, Assembler};

use crate::accounting::Endpoint;
use crate::router::ModelRoute;

/// How often expired entries are swept, and how many at most per statement.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_BATCH: u32 = 5_000;

/// The cache's decision for one call, made before it runs.
#[derive(Clone, Debug)]
pub(crate) struct CachePlan {
    /// What the cache did: `Bypass` unless it was read.
    pub status: CacheStatus,
    /// The request's key, when the cache is read or written.
    key: Option<CacheKey>,
    /// Read the cache before calling.
    read: bool,
    /// Store the answer for this long, at most this big.
    write: Option<(Duration, usize)>,
    /// Only entries at least this recent (Unix ms) answer.
    fresh_since_ms: Option<i64>,
    namespace: String,
    alias: String,
    endpoint: Endpoint,
    /// The semantic tier's part, when the alias has one and the request can be matched.
    pub semantic: Option<semantic::SemanticPlan>,
    /// The knowledge collections the answer is built from.
    collections: Vec<String>,
    /// For a semantic hit, how similar the questions were.
    pub similarity: Option<f32>,
}

impl CachePlan {
    /// The plan of a call that never touches the cache.
    pub(crate) fn bypass(route: &ModelRoute, endpoint: Endpoint) -> Self {
        CachePlan {
            status: CacheStatus::Bypass,
            key: None,
            read: false,
            write: None,
            fresh_since_ms: None,
            namespace: String::new(),
            alias: route.alias.clone(),
            endpoint,
            semantic: None,
            collections: Vec::new(),
            similarity: None,
        }
    }

    /// Whether the cache is read before the call.
    pub(crate) fn reads(&self) -> bool {
        self.read
    }

    /// Whether the answer is to be stored.
    pub(crate) fn writes(&self) -> bool {
        self.write.is_some()
    }
}

/// The response cache over its storage port. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ResponseCache {
    store: Arc<dyn ResponseCacheStore>,
    memory: Option<Arc<memory::MemoryTier>>,
    metrics: Arc<Metrics>,
}

impl ResponseCache {
    /// The cache over `store`, with recently used entries in memory as `cfg` says; starts the
    /// sweep of expired entries on the current runtime.
    pub(crate) fn start(store: Arc<dyn ResponseCacheStore>, cfg: &GatewayConfig, metrics: Arc<Metrics>) -> Self {
        tokio::spawn(sweep(Arc::downgrade(&store)));
        let memory = (cfg.cache_memory_mb > 0).then(|| {
            let fresh_for = Duration::from_millis(cfg.cache_memory_fresh_ms);
            Arc::new(memory::MemoryTier::new(cfg.cache_memory_mb.saturating_mul(1 << 20), fresh_for))
        });
        Self { store, memory, metrics }
    }

    /// The unexpired entry under `key`: from memory when this node saw it lately, else from
    /// storage (then held in memory if `hold`).
    async fn read(
        &self,
        tenant: &str,
        key: &CacheKey,
        hold: bool,
    ) -> cairn_core::store::StoreResult<Option<CacheEntry>> {
        let now = cairn_core::time::now_ms();
        if let Some(found) = self.memory.as_ref().and_then(|m| m.get(tenant, key, now)) {
            return Ok(Some(found));
        }
        let found = self.store.cache_get(tenant, key, now).await?;
        if let (Some(memory), Some(e), true) = (&self.memory, &found, hold) {
            memory.put(e.clone(), now);
        }
        Ok(found)
    }

    /// The plan for chat request `req` made in `ctx` on `route`.
    pub(crate) fn plan_chat(&self, route: &ModelRoute, ctx: &CallContext, req: &ChatRequest) -> Result<CachePlan> {
        // A request without a temperature samples at the provider's default (1).
        let sampled = req.temperature.is_none_or(|t| t > 0.0);
        let tenant = &ctx.principal.tenant_id;
        let mut p = plan(route, Endpoint::Chat, &ctx.cache, sampled, |ns| key::chat_key(tenant, ns, req))?;
        p.collections.clone_from(&ctx.knowledge);
        let semantic = route.cache.as_ref().and_then(|c| c.semantic.as_ref());
        if let (Some(config), Some(_)) = (semantic, &p.key) {
            p.semantic = key::semantic_key(tenant, &p.namespace, req, config.context_messages)
                .filter(|(_, question)| question.len() <= semantic::MAX_QUESTION_BYTES)
                .map(|(key, question)| semantic::SemanticPlan { key, question, config: config.clone(), vector: None });
        }
        Ok(p)
    }

    /// The plan for embeddings request `req` of `tenant` on `route`.
    pub(crate) fn plan_embeddings(
        &self,
        route: &ModelRoute,
        control: &CacheControl,
        tenant: &str,
        req: &EmbeddingRequest,
    ) -> Result<CachePlan> {
        plan(route, Endpoint::Embeddings, control, false, |ns| key::embeddings_key(tenant, ns, req))
    }

    /// Reads the entry the plan names, if the plan reads; sets the plan's status.
    pub(crate) async fn lookup(&self, tenant: &str, plan: &mut CachePlan) -> Option<CacheEntry> {
        let found = match (&plan.key, plan.read) {
            (Some(key), true) => self.read_or_miss(tenant, key, plan.collections.is_empty()).await,
            _ => None,
        };
        let found = found.filter(|e| plan.fresh_since_ms.is_none_or(|since| e.created_ms >= since));
        if plan.read {
            plan.status = if found.is_some() { CacheStatus::Hit } else { CacheStatus::Miss };
        }
        found
    }

    /// Reads the entry whose question is most like the plan's and agrees with it, if the plan
    /// reads and its question is embedded; sets the plan's status and similarity on a hit.
    pub(crate) async fn lookup_similar(&self, tenant: &str, plan: &mut CachePlan) -> Option<CacheEntry> {
        let s = plan.semantic.as_ref().filter(|_| plan.read)?;
        let limit = u32::try_from(s.config.max_candidates).unwrap_or(u32::MAX);
        let now = cairn_core::time::now_ms();
        let candidates = match self.store.cache_similar(tenant, &s.key, now, limit).await {
            Ok(c) => c,
            Err(e) => {
                self.metrics.cache_failures.inc();
                tracing::warn!(error = %e, "semantic cache read failed; calling upstream");
                return None;
            }
        };
        let (key, similarity) = semantic::best(s, &candidates, plan.fresh_since_ms)?;
        let found = self.read_or_miss(tenant, &key, plan.collections.is_empty()).await?;
        plan.status = CacheStatus::Hit;
        plan.similarity = Some(similarity);
        Some(found)
    }

    /// The entry under `key` (held in memory if `hold`); a failed read counts and is a miss.
    async fn read_or_miss(&self, tenant: &str, key: &CacheKey, hold: bool) -> Option<CacheEntry> {
        self.read(tenant, key, hold)
            .await
            .inspect_err(|e| {
                self.metrics.cache_failures.inc();
                tracing::warn!(error = %e, "response cache read failed; calling upstream");
            })
            .ok()
            .flatten()
    }

    /// Counts what the cache did for a planned call (`found`: the entry that answered).
    pub(crate) fn count(&self, plan: &CachePlan, found: Option<&CacheEntry>) {
        let labels = vec![
            ("model", plan.alias.clone()),
            ("endpoint", plan.endpoint.as_str().into()),
            ("result", plan.status.as_str().into()),
        ];
        self.metrics.cache_lookups.get_or_create(&labels).inc();
        if plan.similarity.is_some() {
            self.metrics.cache_semantic_hits.get_or_create(&vec![("model", plan.alias.clone())]).inc();
        }
        if let Some(e) = found {
            self.metrics.cache_saved_usd.get_or_create(&vec![("model", plan.alias.clone())]).inc_by(e.cost_usd);
        }
    }

    /// Stores a call's complete answer `body` if the plan writes (and it is small enough).
    pub(crate) async fn store(&self, tenant: &str, plan: &CachePlan, routed: &Routed, body: String, cost_usd: f64) {
        let (Some(key), Some((ttl, max_bytes))) = (&plan.key, plan.write) else { return };
        if body.len() > max_bytes {
            return;
        }
        let now = cairn_core::time::now_ms();
        let entry = CacheEntry {
            tenant_id: tenant.to_owned(),
            key: key.clone(),
            namespace: plan.namespace.clone(),
            model: plan.alias.clone(),
            provider: routed.provider.clone(),
            upstream_model: routed.model.clone(),
            body,
            cost_usd,
            created_ms: now,
            expires_ms: now.saturating_add(ttl.as_millis() as i64),
        };
        let index = EntryIndex {
            semantic: plan.semantic.as_ref().and_then(|s| {
                let vector = s.vector.clone()?;
                Some(SemanticIndex { key: s.key.clone(), question: s.question.clone(), vector })
            }),
            collections: plan.collections.clone(),
        };
        match self.store.cache_put(&entry, &index).await {
            Ok(()) => {
                // Storage deletes answers built on knowledge when it changes; a copy here would outlive that.
                if let (Some(memory), true) = (&self.memory, plan.collections.is_empty()) {
                    memory.put(entry, now);
                }
            }
            Err(e) => {
                self.metrics.cache_failures.inc();
                tracing::warn!(error = %e, "response cache write failed; the answer was not kept");
            }
        }
    }

    /// Removes `tenant`'s entries that `what` selects; returns how many.
    pub(crate) async fn purge(&self, tenant: &str, what: &CachePurge) -> Result<u64> {
        let deleted = self.store.cache_purge(tenant, what).await?;
        if let Some(memory) = &self.memory {
            memory.purge(tenant, what);
        }
        Ok(deleted)
    }
}

/// The chat answer stored in `entry` as a new completion (its own id and time); `None` when
/// it does not read as one, and the call then goes upstream.
pub(crate) fn completion(entry: &CacheEntry) -> Option<ChatCompletion> {
    let mut c: ChatCompletion = serde_json::from_str(&entry.body)
        .inspect_err(|e| tracing::warn!(error = %e, "a cached chat answer does not parse; calling upstream"))
        .ok()?;
    c.id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    c.created = cairn_core::time::now_secs();
    Some(c)
}

/// The embeddings stored in `entry`; `None` when they do not parse (the call goes upstream).
pub(crate) fn embeddings(entry: &CacheEntry) -> Option<EmbeddingResponse> {
    serde_json::from_str(&entry.body)
        .inspect_err(|e| tracing::warn!(error = %e, "cached embeddings do not parse; calling upstream"))
        .ok()
}

/// A streamed answer being assembled for the cache; stored when its stream ends complete.
pub(crate) struct StreamKeep {
    /// The chunks so far.
    pub assembler: Assembler,
    cache: ResponseCache,
    tenant: String,
    plan: CachePlan,
    routed: Routed,
}

impl StreamKeep {
    /// Keeps the stream of a call planned by `plan`, for `tenant`, served as `routed`.
    pub(crate) fn new(cache: &ResponseCache, tenant: &str, plan: CachePlan, routed: Routed) -> Self {
        Self { assembler: Assembler::default(), cache: cache.clone(), tenant: tenant.to_owned(), plan, routed }
    }

    /// Stores the assembled answer, accounted as `usage` at `cost_usd`.
    pub(crate) async fn store(self, usage: Usage, cost_usd: f64) {
        let Some(completion) = self.assembler.finish(usage) else { return };
        if let Ok(body) = serde_json::to_string(&completion) {
            self.cache.store(&self.tenant, &self.plan, &self.routed, body, cost_usd).await;
        }
    }
}

/// Decides what the cache does for one call (see the module docs).
fn plan(
    route: &ModelRoute,
    endpoint: Endpoint,
    control: &CacheControl,
    sampled: bool,
    key: impl FnOnce(&str) -> CacheKey,
) -> Result<CachePlan> {
    let mut p = CachePlan::bypass(route, endpoint);
    let Some(cfg) = &route.cache else { return Ok(p) };
    if control.no_store || (sampled && !cfg.sampled) {
        return Ok(p);
    }
    let ttl = ttl(cfg, control)?;
    p.namespace = control.namespace.clone().unwrap_or_default();
    p.key = Some(key(&p.namespace));
    p.read = !control.no_cache && control.max_age != Some(0);
    p.write = Some((ttl, cfg.max_entry_bytes));
    p.fresh_since_ms = control.max_age.map(|s| cairn_core::time::now_ms() - i64::from(s) * 1000);
    Ok(p)
}

/// How long an answer is kept: the request's `ttl` up to the alias's `max_ttl_s`.
fn ttl(cfg: &ModelCacheConfig, control: &CacheControl) -> Result<Duration> {
    match control.ttl {
        Some(s) if s > cfg.max_ttl_s => Err(Error::invalid_param(
            "cairn.cache.ttl",
            format!("ttl {s} exceeds this model's longest cache time, {} seconds", cfg.max_ttl_s),
        )),
        Some(s) => Ok(Duration::from_secs(u64::from(s))),
        None => Ok(Duration::from_secs(u64::from(cfg.ttl_s))),
    }
}

/// Deletes expired entries every `SWEEP_EVERY` until the store is gone.
async fn sweep(store: std::sync::Weak<dyn ResponseCacheStore>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(store) = store.upgrade() else { return };
        loop {
            match store.cache_sweep(cairn_core::time::now_ms(), SWEEP_BATCH).await {
                Ok(n) if n >= u64::from(SWEEP_BATCH) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping expired cache entries failed");
                    break;
                }
            }
        }
    }
}
