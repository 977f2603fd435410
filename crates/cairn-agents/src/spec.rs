//! What an agent is: the definition a caller sends to create or update it, and the checks it
//! must pass. Each update is a new version; a run pins the version it started with.
//!
//! Tools are keyed by the name the model calls them by (so names are unique by construction)
//! and follow OpenAI's shape for function tools: `{"type": T, T: {settings}}`, the settings
//! under a key named after the type, so every tool is one flat, closed object.

use std::collections::BTreeMap;

use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Most tools one agent may offer.
pub const MAX_TOOLS: usize = 64;
/// Most characters of instructions.
pub const MAX_INSTRUCTIONS: usize = 32_768;

/// An agent's definition (everything but its id): what create and update take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Unique among the tenant's agents: 1-64 of a-z, 0-9, `-`, `_`, starting with a letter
    /// or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub name: String,
    /// The gateway model alias that runs it; with tools, every target must support tools.
    #[schema(min_length = 1, max_length = 200)]
    pub model: String,
    /// System instructions.
    #[serde(default)]
    #[schema(max_length = 32768)]
    pub instructions: String,
    /// Tools the model may call, by the name it calls them (1-64 of a-z, A-Z, 0-9, `_`, `-`).
    #[serde(default)]
    pub tools: BTreeMap<String, ToolSpec>,
    /// Sampling temperature of the agent's model calls, 0-2 (default: the model's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Whether the model must call a tool (default `auto`: it chooses).
    #[serde(default, skip_serializing_if = "is_auto")]
    pub tool_choice: ToolChoice,
    /// Caps on every run.
    #[serde(default)]
    pub limits: RunLimits,
    /// A JSON Schema the final answer must match (an object schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// How a long thread history is fitted to the model's context.
    #[serde(default)]
    pub context: ContextSettings,
    /// Long-term memory (what `memory` tools write and read), per agent and end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySettings>,
}

/// Whether the model must call a tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model chooses.
    #[default]
    Auto,
    /// The model must call a tool until it has called one in the run; then it chooses (as
    /// the OpenAI Agents SDK resets `tool_choice`), so `required` cannot loop a run.
    Required,
}

fn is_auto(c: &ToolChoice) -> bool {
    *c == ToolChoice::Auto
}

/// Long-term memory: kept in a collection of the agent's tenant (`memory-<agent id>`), one
/// document per memory, searched by meaning and scoped to the run's end user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// The embedding model alias memories are searched with.
    #[schema(min_length = 1, max_length = 200)]
    pub embedding_model: String,
    /// Before each run, the memories most relevant to its input (at most this many, 0-20;
    /// default 0: none) are given to the model.
    #[serde(default)]
    #[schema(maximum = 20)]
    pub recall_before_run: u32,
    /// What happens to personal data in memories before they are stored (as for collections).
    #[serde(default)]
    pub pii: cairn_core::knowledge::PiiMode,
}

/// Short-term memory: a thread's history longer than `max_history_tokens` has its older
/// turns summarised (by `summary_model`) when a run starts; the summary is journaled, so a
/// resumed run reads the same one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextSettings {
    /// Most tokens (estimated) of thread history the model reads, 100-10,000,000 (none: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 100, maximum = 10_000_000)]
    pub max_history_tokens: Option<u32>,
    /// The chat model alias that writes summaries (default: the agent's model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub summary_model: Option<String>,
}

/// The kinds of tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Hybrid search over collections the tool lists (the caller's tenant only).
    KnowledgeSearch,
    /// HTTP to hosts on the tenant's allow-list.
    HttpRequest,
    /// A signed request to the caller's own system.
    Webhook,
    /// Run by the caller: the run waits for its output.
    Client,
    /// Tools of a tenant's MCP server.
    Mcp,
    /// Long-term memory: `remember` and `recall`.
    Memory,
}

impl ToolKind {
    /// The name in the API (and the key of the tool's settings).
    pub fn as_str(self) -> &'static str {
        match self {
            ToolKind::KnowledgeSearch => "knowledge_search",
            ToolKind::HttpRequest => "http_request",
            ToolKind::Webhook => "webhook",
            ToolKind::Client => "client",
            ToolKind::Mcp => "mcp",
            ToolKind::Memory => "memory",
        }
    }
}

/// When a person must approve a call of the tool before it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Never: the call runs at once.
    #[default]
    Never,
    /// Always.
    Always,
    /// When the call's arguments match this filter (the metadata filter language, over the
    /// arguments); arguments that do not parse ask too (fails closed).
    #[schema(value_type = Object)]
    When(Value),
}

/// One tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// Which kind; its settings go under the key of the same name.
    #[serde(rename = "type")]
    pub kind: ToolKind,
    /// What it does, for the model.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: String,
    /// When a person approves a call first.
    #[serde(default)]
    pub approval: Approval,
    /// Safe to call again with the same arguments (a call interrupted by a crash is retried
    /// only then; otherwise the run asks a person).
    #[serde(default)]
    pub idempotent: bool,
    /// Settings of a `knowledge_search` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_search: Option<KnowledgeSearchTool>,
    /// Settings of an `http_request` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request: Option<HttpRequestTool>,
    /// Settings of a `webhook` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTool>,
    /// Settings of a `client` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientTool>,
    /// Settings of an `mcp` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpTool>,
}

/// Search over collections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeSearchTool {
    /// Collection ids (1-10), of the agent's tenant.
    #[schema(min_items = 1, max_items = 10)]
    pub collections: Vec<String>,
    /// Results per search, 1-20 (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<u32>,
}

/// HTTP methods an `http_request` tool may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// HTTP to allowed hosts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestTool {
    /// Methods the model may use (default GET only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<HttpMethod>,
    /// Hosts, a subset of the tenant's allow-list (default: all of it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 64)]
    pub hosts: Vec<String>,
    /// Largest response body given to the model, bytes (default 64 KiB, at most 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_048_576)]
    pub max_body_bytes: Option<u32>,
    /// Time limit per request, ms (default 10 s, at most 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60_000)]
    pub timeout_ms: Option<u32>,
}

/// A signed call to the caller's system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTool {
    /// `http(s)://` URL on a host allowed for the tenant.
    #[schema(min_length = 1, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: String,
    /// JSON Schema of the arguments (an object schema).
    #[schema(value_type = Object)]
    pub parameters: Value,
}

/// A tool the caller runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientTool {
    /// JSON Schema of the arguments (an object schema).
    #[schema(value_type = Object)]
    pub parameters: Value,
}

/// One tool of an MCP server. The agent's `mcp` tools are its allow-list of the server's
/// tools: a tool of the server that no agent tool names is never offered to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpTool {
    /// The tenant's MCP server, by name (`/v1/mcp_servers`).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub server: String,
    /// The server's tool this agent tool calls.
    #[schema(min_length = 1, max_length = 256)]
    pub tool: String,
    /// Time limit per call, ms (default 30 s, at most 10 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 600_000)]
    pub timeout_ms: Option<u32>,
}

/// Caps on one run; when one is reached the run ends gracefully with a final message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunLimits {
    /// Model calls, 1-1000 (default 25).
    #[schema(minimum = 1, maximum = 1000)]
    pub max_steps: u32,
    /// Tool calls, 0-10000 (default 100).
    #[schema(maximum = 10000)]
    pub max_tool_calls: u32,
    /// Tool calls run at once, 1-32 (default 4).
    #[schema(minimum = 1, maximum = 32)]
    pub max_parallel_tools: u32,
    /// Input tokens over the run (none: no cap).
    #[schema(minimum = 1)]
    pub max_input_tokens: Option<u64>,
    /// Output tokens over the run (none: no cap).
    #[schema(minimum = 1)]
    pub max_output_tokens: Option<u64>,
    /// Cost in US dollars over the run (none: no cap beyond the key's budget).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub max_cost_usd: Option<f64>,
    /// Wall time, seconds, 1-86400 (default 600), from the run's start; time spent waiting
    /// for approvals or client outputs does not count (`max_wait_secs` bounds that).
    #[schema(minimum = 1, maximum = 86400)]
    pub max_wall_secs: u32,
    /// The same tool with the same arguments this many times in a row ends the run as a loop,
    /// 2-100 (default 3).
    #[schema(minimum = 2, maximum = 100)]
    pub max_repeats: u32,
    /// How long a run waits for approvals or client tool outputs, seconds, 1-2592000 (default
    /// 86400): then unanswered approvals count as rejected, and a run still waiting for client
    /// outputs ends `expired`.
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub max_wait_secs: u32,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            max_steps: 25,
            max_tool_calls: 100,
            max_parallel_tools: 4,
            max_input_tokens: None,
            max_output_tokens: None,
            max_cost_usd: None,
            max_wall_secs: 600,
            max_repeats: 3,
            max_wait_secs: 86_400,
        }
    }
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> Error {
    Error::invalid_param(param, message)
}

fn is_object_schema(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.get("type").is_none_or(|t| t == "object"))
}

impl AgentSpec {
    /// Checks everything that does not need other services: names, sizes, ranges, each tool's
    /// settings. `tool_filter` checks an approval filter (the metadata filter language).
    pub fn check(&self, tool_filter: &dyn Fn(&Value) -> std::result::Result<(), String>) -> Result<()> {
        let slug = |s: &str| {
            let b = s.as_bytes();
            (1..=64).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
        };
        if !slug(&self.name) {
            return Err(invalid("name", "use 1-64 characters of a-z, 0-9, '-' and '_', starting with a-z or 0-9"));
        }
        if self.model.trim().is_empty() || self.model.chars().count() > 200 {
            return Err(invalid("model", "model must be a model alias"));
        }
        if self.instructions.chars().count() > MAX_INSTRUCTIONS {
            return Err(invalid("instructions", format!("at most {MAX_INSTRUCTIONS} characters")));
        }
        if self.tools.len() > MAX_TOOLS {
            return Err(invalid("tools", format!("at most {MAX_TOOLS} tools")));
        }
        if self.output_schema.as_ref().is_some_and(|s| !is_object_schema(s)) {
            return Err(invalid("output_schema", "output_schema must be a JSON Schema of an object"));
        }
        self.limits.check()?;
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(invalid("temperature", "temperature must be between 0 and 2"));
        }
        if let Some(m) = &self.memory {
            if m.embedding_model.trim().is_empty() || m.embedding_model.chars().count() > 200 {
                return Err(invalid("memory.embedding_model", "embedding_model must be a model alias"));
            }
            if m.recall_before_run > 20 {
                return Err(invalid("memory.recall_before_run", "recall_before_run must be between 0 and 20"));
            }
        }
        if self.context.max_history_tokens.is_some_and(|n| !(100..=10_000_000).contains(&n)) {
            return Err(invalid("context.max_history_tokens", "max_history_tokens must be between 100 and 10000000"));
        }
        if self.context.summary_model.as_ref().is_some_and(|m| m.trim().is_empty() || m.chars().count() > 200) {
            return Err(invalid("context.summary_model", "summary_model must be a model alias"));
        }
        for (name, t) in &self.tools {
            let at = format!("tools.{name}");
            let name_ok = (1..=64).contains(&name.len())
                && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !name_ok {
                return Err(invalid(at, "tool names are 1-64 characters of a-z, A-Z, 0-9, '_' and '-'"));
            }
            t.check(&at, tool_filter)?;
        }
        Ok(())
    }
}

impl RunLimits {
    fn check(&self) -> Result<()> {
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!("limits.{name}"), format!("{name} must be between {lo} and {hi}")))
            }
        };
        range("max_steps", self.max_steps.into(), 1, 1000)?;
        range("max_tool_calls", self.max_tool_calls.into(), 0, 10_000)?;
        range("max_parallel_tools", self.max_parallel_tools.into(), 1, 32)?;
        range("max_wall_secs", self.max_wall_secs.into(), 1, 86_400)?;
        range("max_repeats", self.max_repeats.into(), 2, 100)?;
        range("max_wait_secs", self.max_wait_secs.into(), 1, 2_592_000)?;
        if self.max_input_tokens == Some(0) || self.max_output_tokens == Some(0) {
            return Err(invalid("limits", "token caps must be at least 1"));
        }
        if self.max_cost_usd.is_some_and(|c| !(0.0..=1_000_000.0).contains(&c)) {
            return Err(invalid("limits.max_cost_usd", "max_cost_usd must be between 0 and 1000000"));
        }
        Ok(())
    }
}

impl ToolSpec {
    fn check(&self, at: &str, tool_filter: &dyn Fn(&Value) -> std::result::Result<(), String>) -> Result<()> {
        if self.description.chars().count() > 4096 {
            return Err(invalid(format!("{at}.description"), "at most 4096 characters"));
        }
        if let Approval::When(rule) = &self.approval {
            tool_filter(rule).map_err(|e| invalid(format!("{at}.approval.when"), e))?;
        }
        // Exactly the settings of the tool's own kind.
        let given: Vec<ToolKind> = [
            (ToolKind::KnowledgeSearch, self.knowledge_search.is_some()),
            (ToolKind::HttpRequest, self.http_request.is_some()),
            (ToolKind::Webhook, self.webhook.is_some()),
            (ToolKind::Client, self.client.is_some()),
            (ToolKind::Mcp, self.mcp.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if let Some(other) = given.iter().find(|k| **k != self.kind) {
            return Err(invalid(
                format!("{at}.{}", other.as_str()),
                format!("a '{}' tool takes no '{}' settings", self.kind.as_str(), other.as_str()),
            ));
        }
        let needs_settings = !matches!(self.kind, ToolKind::Memory | ToolKind::HttpRequest);
        if needs_settings && given.is_empty() {
            return Err(invalid(
                format!("{at}.{}", self.kind.as_str()),
                format!("a '{0}' tool needs its settings under '{0}'", self.kind.as_str()),
            ));
        }
        let here = |field: &str| format!("{at}.{}.{field}", self.kind.as_str());
        if let Some(k) = &self.knowledge_search {
            if !(1..=10).contains(&k.collections.len()) {
                return Err(invalid(here("collections"), "name 1 to 10 collections"));
            }
            if k.top_k.is_some_and(|n| !(1..=20).contains(&n)) {
                return Err(invalid(here("top_k"), "top_k must be between 1 and 20"));
            }
        }
        if let Some(h) = &self.http_request {
            if h.hosts.len() > 64 || h.hosts.iter().any(|x| x.is_empty() || x.contains('/')) {
                return Err(invalid(here("hosts"), "hosts are up to 64 host names (host or host:port)"));
            }
            if h.max_body_bytes.is_some_and(|n| !(1..=1_048_576).contains(&n)) {
                return Err(invalid(here("max_body_bytes"), "max_body_bytes must be between 1 and 1048576"));
            }
            if h.timeout_ms.is_some_and(|n| !(1..=60_000).contains(&n)) {
                return Err(invalid(here("timeout_ms"), "timeout_ms must be between 1 and 60000"));
            }
        }
        if let Some(w) = &self.webhook {
            let url = w.url.to_ascii_lowercase();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(here("url"), "url must be http:// or https://"));
            }
            if !is_object_schema(&w.parameters) {
                return Err(invalid(here("parameters"), "parameters must be a JSON Schema of an object"));
            }
        }
        if let Some(c) = &self.client {
            if !is_object_schema(&c.parameters) {
                return Err(invalid(here("parameters"), "parameters must be a JSON Schema of an object"));
            }
        }
        if let Some(m) = &self.mcp {
            if !cairn_core::agents::is_mcp_server_name(&m.server) {
                return Err(invalid(here("server"), "name the tenant's MCP server (1-64 letters, digits, '-' or '_')"));
            }
            if m.tool.is_empty() || m.tool.chars().count() > 256 {
                return Err(invalid(here("tool"), "name one of the server's tools (1-256 characters)"));
            }
            if m.timeout_ms.is_some_and(|t| t == 0 || t > 600_000) {
                return Err(invalid(here("timeout_ms"), "timeout_ms is 1-600000"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
