//! `mcp`: one tool of a tenant's MCP server. Its description and argument schema come from
//! the server (its tool list, cached briefly); the call goes to the server with the run's
//! idempotency key in `_meta`, bounded by the tool's time limit and the run's cancellation.
//! A result the server marks as an error reaches the model as an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Offer, Tool, ToolCallCtx};
use crate::mcp::McpServers;
use crate::spec::ToolSpec;

/// Default time limit of one call.
const DEFAULT_TIMEOUT_MS: u32 = 30_000;

/// Calls tools of MCP servers.
pub struct McpServerTool {
    servers: Arc<McpServers>,
}

impl McpServerTool {
    /// Calls through `servers`.
    pub fn new(servers: Arc<McpServers>) -> Self {
        Self { servers }
    }
}

#[async_trait]
impl Tool for McpServerTool {
    fn parameters(&self, _spec: &ToolSpec) -> Value {
        json!({"type": "object"})
    }

    async fn offer(&self, tenant_id: &str, spec: &ToolSpec) -> Result<Offer, String> {
        let settings = spec.mcp.as_ref().ok_or("the tool has no mcp settings")?;
        let info = self.servers.describe(tenant_id, &settings.server, &settings.tool).await?;
        Ok(Offer {
            description: (!info.description.is_empty()).then_some(info.description),
            parameters: info.input_schema,
        })
    }

    async fn call(&self, ctx: &ToolCallCtx<'_>, spec: &ToolSpec, arguments: Value) -> Result<String, String> {
        let settings = spec.mcp.as_ref().ok_or("the tool has no mcp settings")?;
        let timeout = Duration::from_millis(settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into());
        let meta = json!({"io.cairn/idempotency-key": ctx.idempotency_key, "io.cairn/run": ctx.run_id});
        let call = self.servers.call(
            &ctx.call.principal.tenant_id,
            &settings.server,
            &settings.tool,
            arguments,
            meta,
            timeout,
        );
        let outcome = tokio::select! {
            r = call => r?,
            () = ctx.call.cancel.cancelled() => return Err("the run was cancelled".into()),
        };
        if outcome.is_error {
            Err(format!("the tool reported an error: {}", outcome.text))
        } else {
            Ok(outcome.text)
        }
    }
}
