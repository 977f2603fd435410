//! The OpenAPI 3.1 document, generated from the handlers and types, and the interactive docs
//! at `/docs` (Swagger UI served from the binary: no CDN).

use cairn_core::jobs::{Attempt, AttemptOutcome, Job, JobState};
use cairn_core::openai::*;
use cairn_core::tenancy::{ApiKey, KeyLimits, Role, Tenant};
use cairn_core::usage::UsageBucket;
use cairn_gateway::{UsageReport, UsageRequest};
use cairn_jobs::{
    BulkResult, EnqueueRequest, JobDetail, JobPage, JobType, ListRequest, PurgeRequest, RetryDeadRequest,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, agents, answer, audit, cache, chat, embeddings, feedback, jobs, knowledge, mcp, models, ops, runs, threads,
    traces, usage, webhooks,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn", description = "The AI backend stack in one binary: an OpenAI-compatible model gateway and more."),
    paths(
        chat::chat_completions, embeddings::embeddings, models::list_models, usage::usage, cache::purge, audit::list, audit::export,
        admin::me, admin::create_tenant, admin::list_tenants, admin::create_key, admin::list_keys, admin::revoke_key,
        jobs::enqueue, jobs::enqueue_batch, jobs::list, jobs::types, jobs::get, jobs::events, jobs::cancel,
        jobs::retry, jobs::retry_dead, jobs::purge, webhooks::get, webhooks::rotate,
        knowledge::create, knowledge::list, knowledge::get, knowledge::delete, knowledge::add_documents,
        knowledge::get_document, knowledge::delete_document, knowledge::search, knowledge::upload_files, knowledge::list_documents,
        answer::answer,
        agents::create, agents::list, agents::get, agents::update, agents::delete, agents::version,
        threads::create, threads::get, threads::add_messages, threads::messages,
        agents::memories, agents::forget,
        mcp::create, mcp::list, mcp::get, mcp::delete, mcp::tools,
        runs::create, runs::list, runs::get, runs::cancel, runs::steps, runs::events, runs::approvals, runs::tool_outputs,
        traces::list, traces::stats, traces::get,
        feedback::trace_give, feedback::trace_list, feedback::answer_give, feedback::answer_list,
        feedback::run_give, feedback::run_list, feedback::eval_create, feedback::eval_list, feedback::eval_get,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(
        ChatRequest, ChatCompletion, ChatChunk, ChunkChoice, Delta, ToolCallDelta, FunctionCallDelta, ChatMessage,
        MessageContent, ContentPart, ChatRole, Tool, FunctionDef, ToolCall, FunctionCall, Choice, Usage, Stop,
        StreamOptions, EmbeddingRequest, EmbeddingInput, EncodingFormat, EmbeddingResponse, Embedding,
        EmbeddingVector, EmbeddingUsage, ModelList, Model, ModelInfo, ErrorBody, ErrorDetail, Tenant, ApiKey,
        KeyLimits, Role, UsageBucket, UsageReport, UsageRequest, admin::CreateTenant, admin::CreateKey,
        admin::CreatedKey, Job, JobState, Attempt, AttemptOutcome, EnqueueRequest, ListRequest, JobPage, JobDetail,
        JobType, RetryDeadRequest, PurgeRequest, BulkResult, jobs::EnqueueBatch, jobs::Enqueued,
        cairn_jobs::WebhookSecret, cairn_jobs::SecretQuery,
        cairn_core::knowledge::Collection, cairn_core::knowledge::Document, cairn_core::knowledge::DocumentState,
        cairn_core::knowledge::PiiMode, cairn_knowledge::service::CreateCollection, cairn_knowledge::service::NewDocument,
        cairn_knowledge::service::Accepted, cairn_knowledge::service::SearchRequest, cairn_knowledge::service::SearchHit,
        cairn_knowledge::service::DocumentPage,
        knowledge::AddDocuments, cairn_knowledge::answer::AnswerRequest, cairn_knowledge::answer::Answer,
        cairn_knowledge::answer::AnswerSource, cairn_knowledge::rag::Citation,
        cairn_knowledge::grounded_chat::CairnOptions, cairn_knowledge::grounded_chat::KnowledgeOption,
        cairn_core::cache::CacheControl, cairn_gateway::CachePurged, cairn_gateway::CachePurgeRequest,
        cairn_core::guard::GuardSettings, cairn_core::guard::GuardMode, cairn_core::guard::ScreenMode,
        cairn_core::config::ModelSize,
        cairn_core::audit::AuditAction, cairn_core::audit::AuditEntry, cairn_access::audit::AuditPage, cairn_access::audit::AuditRequest,
        cairn_agents::AgentSpec, cairn_agents::AgentView, cairn_agents::AgentPage, cairn_agents::spec::ToolSpec,
        cairn_agents::spec::ToolKind, cairn_agents::spec::ToolChoice, cairn_agents::spec::Approval, cairn_agents::spec::KnowledgeSearchTool,
        cairn_agents::spec::HttpRequestTool, cairn_agents::spec::HttpMethod, cairn_agents::spec::WebhookTool,
        cairn_agents::spec::ClientTool, cairn_agents::spec::McpTool, cairn_agents::spec::RunLimits, cairn_agents::spec::ContextSettings,
        cairn_agents::spec::MemorySettings, cairn_agents::ports::MemoryItem,
        cairn_agents::mcp::CreateMcpServer, cairn_agents::mcp::McpServerView, cairn_agents::mcp::McpToolView,
        cairn_agents::mcp::McpTransport,
        cairn_agents::threads::NewThread, cairn_agents::threads::AddMessages, cairn_agents::threads::NewMessage,
        cairn_agents::threads::Author, cairn_agents::threads::ThreadView, cairn_agents::threads::MessageView,
        cairn_agents::threads::MessagePage,
        cairn_agents::runs::CreateRun, cairn_agents::runs::RunPage, admin::Me, cairn_agents::runs::IfBusy, cairn_agents::runs::RunView, cairn_agents::runs::RunUsage,
        cairn_agents::runs::StepView, cairn_agents::runs::StepPage, cairn_agents::runs::Approvals, cairn_agents::runs::ActionAnswer,
        cairn_agents::runs::DecisionKind, cairn_agents::runs::ToolOutputs, cairn_agents::runs::ToolOutput,
        cairn_agents::actions::PendingAction, cairn_agents::actions::ActionKind, cairn_core::runs::RunState,
        cairn_core::runs::StepKind,
        cairn_core::trace::TraceSummary, cairn_core::trace::StoredSpan, cairn_core::trace::SpanKind,
        cairn_core::trace::SpanStatus, cairn_telemetry::traces::TraceList, cairn_telemetry::traces::TraceDetail,
        cairn_telemetry::traces::SpanNode, cairn_telemetry::traces::StatusFilter,
        cairn_telemetry::stats::Stats, cairn_telemetry::stats::StatsRow, cairn_telemetry::stats::Percentiles,
        cairn_telemetry::stats::StatsBucket,
        cairn_core::trace::Feedback, cairn_core::trace::FeedbackTarget, cairn_core::trace::Score,
        cairn_core::trace::EvalRun, cairn_core::trace::EvalItem, cairn_telemetry::feedback::FeedbackRequest,
        cairn_telemetry::feedback::NewEval, feedback::FeedbackList, feedback::EvalList,
    )),
    modifiers(&BearerAuth, &StandardErrors),
    tags(
        (name = "gateway", description = "OpenAI-compatible model endpoints"),
        (name = "accounting", description = "Usage and cost"),
        (name = "admin", description = "Tenants and API keys"),
        (name = "jobs", description = "Durable jobs: enqueue, inspect, watch, cancel, replay"),
        (name = "knowledge", description = "Collections, documents and hybrid search"),
        (name = "agents", description = "Agent definitions and their versions"),
        (name = "observability", description = "Traces of every request, feedback and evaluations"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// The document as served: the generated one with the rules between fields, the filter
/// language and the event shapes added (`contract`).
pub(crate) fn document(job_types: &[JobType]) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    crate::contract::apply(&mut doc, job_types);
    doc
}

/// Documents, on every operation, the errors every route can return besides its own: 400 (a
/// malformed parameter or body), 401 and 403 (routes that take a key), 404 (routes naming a
/// resource), 413 (a body over the limit), 429 (a rate limit), 500 and 503. All carry the
/// OpenAI error body.
struct StandardErrors;

impl Modify for StandardErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let named = path.contains('{');
            for op in
                [&mut item.get, &mut item.post, &mut item.delete, &mut item.put, &mut item.patch].into_iter().flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let mut add = |code: &str, what: &str| {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(what).into());
                };
                if path.starts_with("/v1/") {
                    add("400", "Invalid parameter or body");
                    add("429", "Rate limit, budget or capacity reached (see retry-after)");
                    add("500", "A fault inside Cairn");
                    add("503", "Temporarily unavailable (see retry-after)");
                }
                if secured {
                    add("401", "Missing, invalid or revoked key");
                    add("403", "The key's role does not allow this");
                }
                if named || path.starts_with("/v1/") {
                    add("404", "No such resource (or model, or tenant), or not the caller's");
                }
                if has_body {
                    add("413", "Body too large");
                }
            }
        }
    }
}

/// Declares the `Authorization: Bearer <key>` scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = doc.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}
