//! The HTTP application: the services (built by the composition root, `cairn::compose`)
//! behind the router with every route and layer.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use cairn_core::config::Config;
use cairn_jobs::Worker;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::error_response;
use crate::middleware::observe;
use crate::routes::{
    admin, agents, answer, audit, cache, chat, embeddings, feedback, jobs, knowledge, mcp, models, ops, runs, threads,
    traces, usage, webhooks,
};
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
    /// The HTTP router with every route and layer.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/v1/chat/completions", post(chat::chat_completions))
            .route("/v1/embeddings", post(embeddings::embeddings))
            .route("/v1/models", get(models::list_models))
            .route("/v1/usage", get(usage::usage))
            .route("/v1/cache", delete(cache::purge))
            .route("/v1/audit", get(audit::list))
            .route("/v1/audit/export", get(audit::export))
            .route("/v1/me", get(admin::me))
            .route("/v1/traces", get(traces::list))
            .route("/v1/traces/stats", get(traces::stats))
            .route("/v1/traces/{id}", get(traces::get))
            .route("/v1/traces/{id}/feedback", post(feedback::trace_give).get(feedback::trace_list))
            .route("/v1/answers/{id}/feedback", post(feedback::answer_give).get(feedback::answer_list))
            .route("/v1/runs/{id}/feedback", post(feedback::run_give).get(feedback::run_list))
            .route("/v1/evals", post(feedback::eval_create).get(feedback::eval_list))
            .route("/v1/evals/{id}", get(feedback::eval_get))
            .route("/v1/admin/tenants", post(admin::create_tenant).get(admin::list_tenants))
            .route("/v1/admin/keys", post(admin::create_key).get(admin::list_keys))
            .route("/v1/admin/keys/{id}", delete(admin::revoke_key))
            .route("/v1/agents", post(agents::create).get(agents::list))
            .route("/v1/agents/{id}", get(agents::get).post(agents::update).delete(agents::delete))
            .route("/v1/agents/{id}/versions/{version}", get(agents::version))
            .route("/v1/agents/{id}/memories", get(agents::memories))
            .route("/v1/agents/{id}/memories/{memory_id}", delete(agents::forget))
            .route("/v1/mcp_servers", post(mcp::create).get(mcp::list))
            .route("/v1/mcp_servers/{name}", get(mcp::get).delete(mcp::delete))
            .route("/v1/mcp_servers/{name}/tools", get(mcp::tools))
            .route("/v1/threads", post(threads::create))
            .route("/v1/threads/{id}", get(threads::get))
            .route("/v1/threads/{id}/messages", post(threads::add_messages).get(threads::messages))
            .route("/v1/runs", post(runs::create).get(runs::list))
            .route("/v1/runs/{id}", get(runs::get))
            .route("/v1/runs/{id}/cancel", post(runs::cancel))
            .route("/v1/runs/{id}/steps", get(runs::steps))
            .route("/v1/runs/{id}/events", get(runs::events))
            .route("/v1/runs/{id}/approvals", post(runs::approvals))
            .route("/v1/runs/{id}/tool_outputs", post(runs::tool_outputs))
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
            .route("/ui", get(crate::ui::redirect))
            .route("/ui/", get(crate::ui::index))
            .route("/ui/{file}", get(crate::ui::asset))
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .route("/metrics", get(ops::metrics))
            .merge(SwaggerUi::new("/docs").url("/openapi.json", crate::openapi::document(&self.state.jobs.types())))
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
