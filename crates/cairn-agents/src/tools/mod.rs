//! Tools, one module per kind behind one trait. The `Toolbox` holds the kinds this process can
//! run, offers each agent tool to the model with its argument schema, checks the model's
//! arguments against that schema before anything runs, and dispatches a checked call.
//!
//! A tool's failure is the model's to read, never the run's: `Tool::call` answers `Err` with
//! a message that goes back as the call's result.

mod http;
mod knowledge;
mod mcp;
mod memory;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::openai::{FunctionDef, Tool as ToolDef};
use cairn_core::CallContext;
use serde_json::Value;

use crate::spec::{AgentSpec, ToolKind, ToolSpec};

pub use http::HttpRequest;
pub use knowledge::KnowledgeSearchTool;
pub use mcp::McpServerTool;
pub use memory::MemoryTool;
pub use webhook::WebhookTool;

/// Longest tool result the model reads, in bytes; longer ones are cut, saying so.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// What a tool call runs with.
pub struct ToolCallCtx<'a> {
    /// The run's caller (its key pays; its tenant bounds what the tool may reach), and the
    /// run's cancellation.
    pub call: &'a CallContext,
    /// The run.
    pub run_id: &'a str,
    /// The tool's name in the agent.
    pub tool: &'a str,
    /// `run:step:call`, sent to side-effecting targets.
    pub idempotency_key: &'a str,
    /// The run's memory (agent, end user, settings), when the agent has memory.
    pub memory: Option<&'a crate::ports::MemoryScope>,
}

/// How the model is offered a tool.
pub struct Offer {
    /// What it does, when the tool says (otherwise the agent's description stands).
    pub description: Option<String>,
    /// The JSON Schema of a call's arguments.
    pub parameters: Value,
}

/// One kind of tool.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The JSON Schema of a call's arguments for agent tool `spec`.
    fn parameters(&self, spec: &ToolSpec) -> Value;

    /// How tool `spec` of tenant `tenant_id`'s agent is offered; tools whose schema lives
    /// elsewhere (an MCP server) ask for it here.
    async fn offer(&self, _tenant_id: &str, spec: &ToolSpec) -> Result<Offer, String> {
        Ok(Offer { description: None, parameters: self.parameters(spec) })
    }

    /// Makes a call with arguments already checked against `parameters`: the text the model
    /// reads, or an error it reads instead.
    async fn call(&self, ctx: &ToolCallCtx<'_>, spec: &ToolSpec, arguments: Value) -> Result<String, String>;
}

/// Compiled argument schemas kept at most (then the cache starts over).
const MAX_VALIDATORS: usize = 1024;

/// The tool kinds this process runs.
#[derive(Clone, Default)]
pub struct Toolbox {
    kinds: HashMap<ToolKind, Arc<dyn Tool>>,
    /// Compiled argument schemas, by their JSON text: compiling costs more than checking.
    validators: Arc<parking_lot::Mutex<HashMap<String, Arc<jsonschema::Validator>>>>,
}

impl Toolbox {
    /// Adds (or replaces) the tool that runs `kind`.
    pub fn with(mut self, kind: ToolKind, tool: Arc<dyn Tool>) -> Self {
        self.kinds.insert(kind, tool);
        self
    }

    /// The first tool kind of `agent` this process cannot run, if any (client tools are run
    /// by the caller, so always available).
    pub fn missing(&self, agent: &AgentSpec) -> Option<ToolKind> {
        agent.tools.values().map(|t| t.kind).find(|k| *k != ToolKind::Client && !self.kinds.contains_key(k))
    }

    /// How tool `spec` of tenant `tenant_id`'s agent is offered.
    async fn offer(&self, tenant_id: &str, spec: &ToolSpec) -> Result<Offer, String> {
        match (&spec.client, self.kinds.get(&spec.kind)) {
            (Some(client), _) => Ok(Offer { description: None, parameters: client.parameters.clone() }),
            (None, Some(tool)) => tool.offer(tenant_id, spec).await,
            (None, None) => Err(format!("'{}' tools cannot run here", spec.kind.as_str())),
        }
    }

    /// The agent's tools as the model is offered them. A tool whose schema cannot be had
    /// (its MCP server is down) is offered with any object for arguments and says why: the
    /// call then tells the model what went wrong, and the run goes on.
    pub async fn definitions(&self, tenant_id: &str, agent: &AgentSpec) -> Vec<ToolDef> {
        let offers = futures::future::join_all(agent.tools.values().map(|spec| self.offer(tenant_id, spec))).await;
        agent
            .tools
            .iter()
            .zip(offers)
            .map(|((name, spec), offer)| {
                let own = (!spec.description.is_empty()).then(|| spec.description.clone());
                let (description, parameters) = match offer {
                    Ok(o) => (own.or(o.description), o.parameters),
                    Err(why) => (
                        Some(format!("{} (unavailable now: {why})", own.unwrap_or_default()).trim().to_owned()),
                        serde_json::json!({"type": "object"}),
                    ),
                };
                ToolDef {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: name.clone(),
                        description: description.filter(|d| !d.is_empty()),
                        parameters: Some(parameters),
                        strict: None,
                    },
                }
            })
            .collect()
    }

    /// Reads `raw` (the model's argument string, or a person's edit) as arguments of tool
    /// `spec` of tenant `tenant_id`'s agent: a JSON object that its schema admits, or why
    /// not, for the model to read.
    pub async fn check_arguments(&self, tenant_id: &str, spec: &ToolSpec, raw: &Value) -> Result<Value, String> {
        let args = match raw {
            Value::String(s) if s.trim().is_empty() => Value::Object(Default::default()),
            Value::String(s) => {
                serde_json::from_str::<Value>(s).map_err(|e| format!("the arguments are not valid JSON: {e}"))?
            }
            other => other.clone(),
        };
        if !args.is_object() {
            return Err("the arguments must be a JSON object".into());
        }
        let validator = self.validator(&self.offer(tenant_id, spec).await?.parameters)?;
        let errors: Vec<String> =
            validator.iter_errors(&args).take(5).map(|e| format!("{} at '{}'", e, e.instance_path)).collect();
        if errors.is_empty() {
            Ok(args)
        } else {
            Err(format!("the arguments do not match the tool's schema: {}", errors.join("; ")))
        }
    }

    /// Checks a final answer against an agent's output schema: JSON the schema admits, or why not.
    pub fn check_output(&self, schema: &Value, answer: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(answer)
            .map_err(|e| format!("the final answer is not the JSON output_schema asks for: {e}"))?;
        let validator = self.validator(schema).map_err(|_| "output_schema does not compile".to_owned())?;
        let errors: Vec<String> = validator.iter_errors(&value).take(5).map(|e| e.to_string()).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("the final answer does not match output_schema: {}", errors.join("; ")))
        }
    }

    /// `schema` compiled, from the cache when it was compiled before.
    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = schema.to_string();
        if let Some(v) = self.validators.lock().get(&key) {
            return Ok(v.clone());
        }
        let compiled = Arc::new(
            jsonschema::validator_for(schema)
                .map_err(|e| format!("the tool's parameter schema does not compile: {e}"))?,
        );
        let mut cache = self.validators.lock();
        if cache.len() >= MAX_VALIDATORS {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Makes a checked call of tool `spec`.
    pub async fn call(&self, ctx: &ToolCallCtx<'_>, spec: &ToolSpec, arguments: Value) -> Result<String, String> {
        let tool =
            self.kinds.get(&spec.kind).ok_or_else(|| format!("'{}' tools cannot run here", spec.kind.as_str()))?;
        tool.call(ctx, spec, arguments).await.map(|out| cut(out, MAX_RESULT_BYTES))
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), saying it was.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    text.push_str("\n[cut: the result was longer]");
    text
}
