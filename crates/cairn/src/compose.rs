//! The composition root: the one place that turns a `Config` into running services. `cairn
//! serve`, `cairn worker`, the CLI commands and the tests all build what they run here, so a
//! second storage adapter or a new service is one line in one file.

use std::sync::Arc;
use std::time::Duration;

use cairn_access::{AccessService, MetricsGate};
use cairn_agents::events::RunHub;
use cairn_agents::mcp::McpServers;
use cairn_agents::ports::{ApprovalRules, Memories};
use cairn_agents::runner::{RunHandler, Runtime, RUN_JOB};
use cairn_agents::runs::RunService;
use cairn_agents::spec::ToolKind;
use cairn_agents::tools::{HttpRequest, KnowledgeSearchTool, McpServerTool, MemoryTool, Toolbox, WebhookTool};
use cairn_agents::writer::JournalWriter;
use cairn_api::{App, AppState};
use cairn_core::config::{Config, Retrieval, UsageCommit};
use cairn_core::models::TextEmbedder;
use cairn_core::search::SearchStore;
use cairn_core::store::{RateStore, Store};
use cairn_core::topology::{StateHome, Topology};
use cairn_core::trace::Redact;
use cairn_gateway::adapters::{GatewayChat, GatewayEmbedder};
use cairn_gateway::journal::{self, UsageJournal};
use cairn_gateway::GatewayService;
use cairn_guard::{PiiPolicy, Redactor};
use cairn_jobs::builtin::Webhook;
use cairn_jobs::{JobService, SystemClock, Worker};
use cairn_knowledge::answer::AnswerService;
use cairn_knowledge::ingest::{IngestHandler, INGEST_JOB};
use cairn_knowledge::live::{LiveIndex, LiveOptions};
use cairn_knowledge::retrieve::{DatabaseRetriever, Retriever};
use cairn_knowledge::service::KnowledgeService;
use cairn_knowledge::AnnParams;
use cairn_redis::RedisRates;
use cairn_telemetry::{FeedbackService, Metrics, TraceService};
use tokio_util::sync::CancellationToken;

use crate::agent_ports::{FilterRules, KnowledgeMemories, KnowledgeTool};

/// How often `cairn serve` deletes traces past their retention.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Masks personal data in span content with the guard's PII detectors.
struct PiiMask(Redactor);

impl Redact for PiiMask {
    fn redact(&self, text: &str) -> String {
        self.0.redact(text).text
    }
}

/// Opens storage (migrating it), builds the services, and bootstraps the first owner key
/// (`admin_key` when given, e.g. from `CAIRN_ADMIN_KEY`): what `cairn serve` runs.
pub async fn app(config: Config, admin_key: Option<&str>) -> Result<App, String> {
    let state = services(&config).await?;
    tokio::spawn(state.traces.clone().keep_retention(RETENTION_EVERY, state.streams_cut.clone()));
    let bootstrap_secret = state.access.bootstrap(admin_key).await.map_err(|e| e.to_string())?;
    let worker = config.jobs.workers_in_serve.then(|| Worker::new(state.jobs.clone(), Worker::default_id(), None));
    Ok(App { state, config, bootstrap_secret, worker })
}

/// Opens the configured storage and migrates it; the password never reaches an error.
pub async fn store(config: &Config, max_connections: u32) -> Result<Arc<dyn Store>, String> {
    cairn_store::open(&config.storage.database_url(), max_connections)
        .await
        .map_err(|e| format!("opening storage {}: {e}", config.storage.redacted_url()))
}

/// Keys and tenants over `store`, for the operator's commands (no key cache: each command is
/// one process).
pub fn access(store: Arc<dyn Store>) -> AccessService {
    AccessService::new(store, Duration::from_secs(0))
}

/// The job service with the built-in types only: what `cairn jobs` needs to list, cancel and
/// replay jobs without loading models or indexes.
pub fn jobs_only(config: &Config, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<JobService> {
    let registry = cairn_jobs::builtin::registry(&config.jobs, store.clone());
    Arc::new(JobService::new(store, registry, config.jobs.clone(), Arc::new(SystemClock), metrics))
}

/// The retriever `setting` asks for: in memory (built from every chunk now), or inside the
/// database when the store offers search (`auto` takes it whenever it does).
async fn retriever(
    config: &Config,
    store: Arc<dyn Store>,
    search: Option<Arc<dyn SearchStore>>,
) -> Result<Arc<dyn Retriever>, String> {
    match (config.knowledge.retrieval, search) {
        (Retrieval::Database | Retrieval::Auto, Some(search)) => {
            let retriever = Arc::new(DatabaseRetriever::new(search));
            // Chunks stored before the database searched them: indexed in the background, so
            // the node starts at once (searches miss them until then).
            let (backfill, chunks) = (retriever.clone(), store);
            tokio::spawn(async move {
                match backfill.backfill(&*chunks).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(chunks = n, "indexed earlier chunks in the database"),
                    Err(e) => tracing::warn!(error = %e, "indexing earlier chunks failed; the next start retries"),
                }
            });
            Ok(retriever)
        }
        (Retrieval::Database, None) => {
            Err("knowledge.retrieval = \"database\" needs PostgreSQL storage (with pgvector)".into())
        }
        (Retrieval::Memory | Retrieval::Auto, _) => {
            let v = &config.knowledge.vector_index;
            let options = LiveOptions {
                ann: AnnParams {
                    m: v.m,
                    ef_construction: v.ef_construction,
                    ef_search: v.ef_search,
                    graph_from: v.graph_from,
                },
                dir: v.persist.then(|| config.storage.data_dir.join("indexes")),
                parallel_from: config.knowledge.parallel_hybrid_from,
            };
            let index =
                LiveIndex::open_with(store, options).await.map_err(|e| format!("building the search index: {e}"))?;
            Ok(Arc::new(index))
        }
    }
}

/// Where this node's rate buckets live, and the shared store holding them (none when they
/// live in this process); connects to Redis when they live there.
async fn shared_rates(
    config: &Config,
    store: &Arc<dyn Store>,
) -> Result<(StateHome, Option<Arc<dyn RateStore>>), String> {
    let home = config.gateway.shared_limits.home(store.backend());
    let rates: Option<Arc<dyn RateStore>> = match home {
        StateHome::Process => None,
        StateHome::Database => Some(store.clone()),
        StateHome::Redis => Some(Arc::new(RedisRates::connect(&config.redis).await?)),
    };
    Ok((home, rates))
}

/// Replays the usage journals that stopped processes left beside a SQLite database, then opens
/// this process's own when answers wait for durable accounting (`cairn_gateway::journal`).
async fn usage_journal(config: &Config, store: &dyn Store) -> Result<Option<UsageJournal>, String> {
    let Some(dir) = cairn_store::usage_journal_dir(&config.storage.database_url()) else {
        return Ok(None);
    };
    journal::replay(&dir, store).await?;
    if config.gateway.usage_commit != UsageCommit::BeforeAnswer {
        return Ok(None);
    }
    UsageJournal::create(&dir).map(Some).map_err(|e| format!("creating the usage journal in {}: {e}", dir.display()))
}

/// Opens storage (migrating it) and builds every service, with nothing else: what a
/// process without the API (`cairn worker`, `cairn eval`) runs on. Creates no key.
pub async fn services(config: &Config) -> Result<AppState, String> {
    let (store, search) = cairn_store::open_with_search(&config.storage.database_url(), config.storage.max_connections)
        .await
        .map_err(|e| format!("opening storage {}: {e}", config.storage.redacted_url()))?;
    let metrics = Arc::new(Metrics::new());
    let access = Arc::new(AccessService::new(store.clone(), Duration::from_millis(config.gateway.key_cache_ttl_ms)));
    let redact: Arc<dyn Redact> = Arc::new(PiiMask(Redactor::new(PiiPolicy::Mask)));
    let traces = Arc::new(TraceService::start(
        store.clone(),
        store.clone(),
        store.clone(),
        metrics.clone(),
        &config.tracing,
        Some(redact),
    )?);
    let feedback = Arc::new(FeedbackService::new(store.clone(), store.clone(), store.clone(), traces.clone()));
    let tracer = traces.tracer();
    let (rate_home, shared_rates) = shared_rates(config, &store).await?;
    let journal = usage_journal(config, &*store).await?;
    let gateway = Arc::new(
        GatewayService::new(config, store.clone(), shared_rates, metrics.clone(), journal)?.with_tracer(tracer.clone()),
    );
    let index = retriever(config, store.clone(), search).await?;
    let topology = Topology {
        storage: store.backend(),
        retrieval: index.kind(),
        rate_limits: rate_home,
        budgets: StateHome::Database,
        circuit_breakers: StateHome::Process,
        provider_concurrency: StateHome::Process,
        streams_per_key: StateHome::Process,
        runs_jobs: config.jobs.workers_in_serve,
    };
    let embedder: Arc<dyn TextEmbedder> = Arc::new(GatewayEmbedder(gateway.clone()));
    // Keys the `hash` PII policy; from the environment only, like every secret.
    let pii_key = std::env::var("CAIRN_PII_KEY").unwrap_or_default().into_bytes();
    let mut registry = cairn_jobs::builtin::registry(&config.jobs, store.clone());
    registry.register_internal(
        INGEST_JOB,
        IngestHandler::new(store.clone(), embedder.clone(), index.clone(), pii_key.clone()).with_tracer(tracer.clone()),
    );
    let run_handler = RunHandler::default();
    registry.register_internal(RUN_JOB, run_handler.clone());
    let jobs = Arc::new(
        JobService::new(store.clone(), registry, config.jobs.clone(), Arc::new(SystemClock), metrics.clone())
            .with_tracer(tracer.clone()),
    );
    let knowledge = Arc::new(
        KnowledgeService::new(store.clone(), jobs.clone(), embedder, index)
            .with_telemetry(tracer.clone(), metrics.clone())
            .with_pii_key(pii_key)
            .with_limits(&config.knowledge),
    );
    let streams_cut = CancellationToken::new();
    let chat = Arc::new(GatewayChat { gateway: gateway.clone(), shutdown: streams_cut.clone() });
    let answers = Arc::new(
        AnswerService::new(knowledge.clone(), chat.clone(), config.knowledge.clone())
            .with_decisions(cairn_knowledge::decisions::Decisions::new(store.clone())),
    );
    // Approval rules are the metadata filter language, over a tool call's arguments.
    let rules: Arc<dyn ApprovalRules> = Arc::new(FilterRules);
    let agents = Arc::new(cairn_agents::AgentService::new(store.clone(), store.clone(), chat.clone(), rules.clone()));
    let threads = Arc::new(cairn_agents::ThreadService::new(store.clone(), store.clone()));
    let webhook = Arc::new(Webhook::new(&config.jobs, store.clone()));
    let memories: Arc<dyn Memories> = Arc::new(KnowledgeMemories(knowledge.clone()));
    let mcp = Arc::new(McpServers::new(store.clone(), config.agents.mcp_servers.clone(), webhook.clone()));
    let tools = Toolbox::default()
        .with(ToolKind::KnowledgeSearch, Arc::new(KnowledgeSearchTool(Arc::new(KnowledgeTool(knowledge.clone())))))
        .with(ToolKind::HttpRequest, Arc::new(HttpRequest::new(webhook.clone())))
        .with(ToolKind::Webhook, Arc::new(WebhookTool(webhook)))
        .with(ToolKind::Memory, Arc::new(MemoryTool(memories.clone())))
        .with(ToolKind::Mcp, Arc::new(McpServerTool::new(mcp.clone())));
    let runtime = Arc::new(Runtime {
        runs: store.clone(),
        agents: store.clone(),
        keys: store.clone(),
        audit: store.clone(),
        models: chat,
        tools,
        rules,
        hub: RunHub::default(),
        jobs: jobs.clone(),
        journal: JournalWriter::start(store),
        memories,
        tracer: tracer.clone(),
        metrics: metrics.clone(),
    });
    run_handler.bind(runtime.clone());
    let runs = Arc::new(RunService::new(runtime));
    Ok(AppState {
        gateway,
        access,
        jobs,
        knowledge,
        answers,
        agents,
        threads,
        runs,
        mcp,
        knowledge_config: config.knowledge.clone(),
        traces,
        feedback,
        metrics,
        metrics_gate: Arc::new(MetricsGate::new(
            config.server.public_metrics,
            config.server.metrics_token()?.as_deref(),
        )),
        streams_cut,
        request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        topology,
    })
}
