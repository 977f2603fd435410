//! `memory`: the agent's long-term memory for the run's end user. One tool, two actions:
//! `remember` stores a fact (after the memory's PII policy), `recall` finds the ones most
//! relevant to a query. Memories of another agent, end user or tenant are out of reach: the
//! scope comes from the run, never from the model's arguments.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Tool, ToolCallCtx};
use crate::ports::Memories;
use crate::spec::ToolSpec;

/// Memories recalled per call.
const RECALL_TOP_K: u32 = 5;

/// Remembers and recalls through the memory port.
pub struct MemoryTool(pub Arc<dyn Memories>);

#[async_trait]
impl Tool for MemoryTool {
    fn parameters(&self, _spec: &ToolSpec) -> Value {
        json!({
            "type": "object",
            "required": ["action", "text"],
            "additionalProperties": false,
            "properties": {
                "action": {"type": "string", "enum": ["remember", "recall"],
                    "description": "remember: store a fact about the user for later runs; recall: find stored facts."},
                "text": {"type": "string", "minLength": 1, "maxLength": 2000,
                    "description": "The fact to remember, or what to recall."},
            },
        })
    }

    async fn call(&self, ctx: &ToolCallCtx<'_>, _spec: &ToolSpec, arguments: Value) -> Result<String, String> {
        let scope = ctx.memory.ok_or("this agent has no memory settings")?;
        let text = arguments["text"].as_str().unwrap_or_default();
        match arguments["action"].as_str() {
            Some("remember") => {
                let item = self.0.remember(ctx.call, scope, text).await.map_err(|e| e.to_string())?;
                Ok(json!({"remembered": item.text, "id": item.id}).to_string())
            }
            Some("recall") => {
                let found = self.0.recall(ctx.call, scope, text, RECALL_TOP_K).await.map_err(|e| e.to_string())?;
                let texts: Vec<&str> = found.iter().map(|m| m.text.as_str()).collect();
                Ok(json!({"memories": texts}).to_string())
            }
            _ => Err("action must be remember or recall".into()),
        }
    }
}
