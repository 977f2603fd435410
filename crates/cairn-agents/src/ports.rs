//! What the agent runtime needs from the rest of Cairn, as narrow ports: the composition root
//! plugs the knowledge service and the metadata filter language in, so this crate depends on
//! neither.

use async_trait::async_trait;
use cairn_core::{CallContext, Result};
use serde_json::Value;

/// Approval rules: the metadata filter language, over a tool call's arguments.
pub trait ApprovalRules: Send + Sync {
    /// Checks that `rule` is a valid filter.
    fn check(&self, rule: &Value) -> std::result::Result<(), String>;
    /// Whether `arguments` match `rule` (a rule that does not parse matches: fails closed).
    fn matches(&self, rule: &Value, arguments: &Value) -> bool;
}

/// Hybrid search over collections, as the run's caller.
#[async_trait]
pub trait KnowledgeSearch: Send + Sync {
    /// The best `top_k` hits for `query` over `collections` (tenant and role checks apply as
    /// for the caller's own search), as JSON the model reads.
    async fn search(&self, ctx: &CallContext, collections: &[String], query: &str, top_k: u32) -> Result<Value>;
}
