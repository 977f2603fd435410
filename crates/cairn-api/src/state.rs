//! Shared state handed to every handler.

use std::sync::Arc;
use std::time::Duration;

use cairn_access::AccessService;
use cairn_gateway::GatewayService;
use cairn_jobs::JobService;
use cairn_knowledge::answer::AnswerService;
use cairn_knowledge::service::KnowledgeService;
use cairn_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

/// Services and process-wide handles; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Model gateway.
    pub gateway: Arc<GatewayService>,
    /// Keys and tenants.
    pub access: Arc<AccessService>,
    /// Durable jobs.
    pub jobs: Arc<JobService>,
    /// Collections, documents and search.
    pub knowledge: Arc<KnowledgeService>,
    /// RAG answers over the collections.
    pub answers: Arc<AnswerService>,
    /// Agent definitions.
    pub agents: Arc<cairn_agents::AgentService>,
    /// Threads and their messages.
    pub threads: Arc<cairn_agents::ThreadService>,
    /// Agent runs.
    pub runs: Arc<cairn_agents::runs::RunService>,
    /// Tenants' MCP servers.
    pub mcp: Arc<cairn_agents::mcp::McpServers>,
    /// Knowledge settings (upload limits).
    pub knowledge_config: cairn_core::config::KnowledgeConfig,
    /// Traces: the tracer, the span writer, reads.
    pub traces: Arc<cairn_telemetry::TraceService>,
    /// Feedback on traces, answers and runs; answer evaluations.
    pub feedback: Arc<cairn_telemetry::FeedbackService>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Who may read `/metrics`.
    pub metrics_gate: Arc<cairn_access::MetricsGate>,
    /// Cancelled when shutdown's grace period is over: open streams end cleanly.
    pub streams_cut: CancellationToken,
    /// Deadline for producing a response (`server.request_timeout_secs`).
    pub request_timeout: Duration,
    /// What this node depends on and where its state lives (`/readyz`).
    pub topology: cairn_core::topology::Topology,
}
