//! The composition root: builds storage, services and the HTTP router from a `Config`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use cairn_access::AccessService;
use cairn_core::config::Config;
use cairn_gateway::adapters::{GatewayChat, GatewayEmbedder};
use cairn_gateway::GatewayService;
use cairn_jobs::{JobService, SystemClock, Worker};
use cairn_knowledge::answer::AnswerService;
use cairn_knowledge::embed::TextEmbedder;
use cairn_knowledge::ingest::{IngestHandler, INGEST_JOB};
use cairn_knowledge::live::LiveIndex;
use cairn_knowledge::service::KnowledgeService;
use cairn_telemetry::Metrics;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::error_response;
use crate::middleware::observe;
use crate::openapi::ApiDoc;
use crate::routes::{admin, answer, chat, embeddings, jobs, knowledge, models, ops, usage, webhooks};
use crate::state::AppState;

/// A built Cairn application, ready to serve.
pub struct App {
    /// Shared state.
    pub state: AppState,
    /// The configuration it was built from.
    pub config: Config,
    /// The admin key generated on first start, to be shown once; `None` afterwards.
    pub bootstrap_secret: Option<String>,
    /// The in-process job worker (`jobs.workers_in_serve`); `serve` starts and stops it.
    pub worker: Option<Worker>,
}

impl App {
    /// Opens storage (migrating it), builds the services, and bootstraps the first admin key
    /// (`admin_key` when given, e.g. from `CAIRN_ADMIN_KEY`).
    pub async fn build(config: Config, admin_key: Option<&str>) -> Result<App, String> {
        let state = Self::services(&config).await?;
        let bootstrap_secret = state.access.bootstrap(admin_key).await.map_err(|e| e.to_string())?;
        let worker = config.jobs.workers_in_serve.then(|| Worker::new(state.jobs.clone(), Worker::default_id(), None));
        Ok(App { state, config, bootstrap_secret, worker })
    }

    /// Opens storage (migrating it) and builds every service, with nothing else: what a
    /// process without the API (`cairn worker`) runs on. Creates no key.
    pub async fn services(config: &Config) -> Result<AppState, String> {
        let store = cairn_store::open(&config.storage.database_url(), config.storage.max_connections)
            .await
            .map_err(|e| format!("opening storage {}: {e}", config.storage.redacted_url()))?;
        let metrics = Arc::new(Metrics::new());
        let access =
            Arc::new(AccessService::new(store.clone(), Duration::from_millis(config.gateway.key_cache_ttl_ms)));
        let gateway = Arc::new(GatewayService::new(config, store.clone(), metrics.clone())?);
        let index = Arc::new(LiveIndex::open(&*store).await.map_err(|e| format!("building the search index: {e}"))?);
        let embedder: Arc<dyn TextEmbedder> = Arc::new(GatewayEmbedder(gateway.clone()));
        // Keys the `hash` PII policy; from the environment only, like every secret.
        let pii_key = std::env::var("CAIRN_PII_KEY").unwrap_or_default().into_bytes();
        let mut registry = cairn_jobs::builtin::registry(&config.jobs, store.clone());
        registry.register_internal(
            INGEST_JOB,
            IngestHandler::new(store.clone(), embedder.clone(), index.clone(), pii_key.clone()),
        );
        let jobs = Arc::new(JobService::new(
            store.clone(),
            registry,
            config.jobs.clone(),
            Arc::new(SystemClock),
            metrics.clone(),
        ));
        let knowledge = Arc::new(
            KnowledgeService::new(store, jobs.clone(), embedder, index)
                .with_pii_key(pii_key)
                .with_limits(&config.knowledge),
        );
        let streams_cut = CancellationToken::new();
        let chat = Arc::new(GatewayChat { gateway: gateway.clone(), shutdown: streams_cut.clone() });
        let answers = Arc::new(AnswerService::new(knowledge.clone(), chat, config.knowledge.clone()));
        Ok(AppState {
            gateway,
            access,
            jobs,
            knowledge,
            answers,
            knowledge_config: config.knowledge.clone(),
            metrics,
            streams_cut,
            request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        })
    }

    /// The HTTP router with every route and layer.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/v1/chat/completions", post(chat::chat_completions))
            .route("/v1/embeddings", post(embeddings::embeddings))
            .route("/v1/models", get(models::list_models))
            .route("/v1/usage", get(usage::usage))
            .route("/v1/admin/tenants", post(admin::create_tenant).get(admin::list_tenants))
            .route("/v1/admin/keys", post(admin::create_key).get(admin::list_keys))
            .route("/v1/admin/keys/{id}", delete(admin::revoke_key))
            .route("/v1/jobs", post(jobs::enqueue).get(jobs::list))
            .route("/v1/jobs/batch", post(jobs::enqueue_batch))
            .route("/v1/jobs/types", get(jobs::types))
            .route("/v1/jobs/purge", post(jobs::purge))
            .route("/v1/jobs/dead/retry", post(jobs::retry_dead))
            .route("/v1/jobs/{id}", get(jobs::get))
            .route("/v1/jobs/{id}/events", get(jobs::events))
            .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
            .route("/v1/jobs/{id}/retry", post(jobs::retry))
            .route("/v1/webhooks/secret", get(webhooks::get).post(webhooks::rotate))
            .route("/v1/collections", post(knowledge::create).get(knowledge::list))
            .route("/v1/collections/{id}", get(knowledge::get).delete(knowledge::delete))
            .route("/v1/collections/{id}/documents", post(knowledge::add_documents).get(knowledge::list_documents))
            .route(
                "/v1/collections/{id}/documents/{doc}",
                get(knowledge::get_document).delete(knowledge::delete_document),
            )
            .route("/v1/collections/{id}/search", post(knowledge::search))
            .route("/v1/collections/{id}/answer", post(answer::answer))
            .route(
                "/v1/collections/{id}/files",
                post(knowledge::upload_files).layer(DefaultBodyLimit::max(self.config.knowledge.max_upload_bytes)),
            )
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .route("/metrics", get(ops::metrics))
            .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
            .fallback(|| async {
                error_response(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("unknown_route"),
                    None,
                    "no such route".into(),
                )
            })
            .method_not_allowed_fallback(|| async {
                error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request_error",
                    Some("method_not_allowed"),
                    None,
                    "method not allowed on this route".into(),
                )
            })
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), observe))
            .layer(DefaultBodyLimit::max(self.config.server.max_body_bytes));
        let router = match cors(&self.config.server.cors_allowed_origins) {
            Some(layer) => router.layer(layer),
            None => router,
        };
        router.with_state(self.state.clone())
    }
}

/// CORS from `server.cors_allowed_origins`: none when empty, any origin for `["*"]`.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}
