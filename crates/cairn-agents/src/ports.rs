//! What the agent runtime needs from the rest of Cairn, as narrow ports: the composition root
//! plugs the knowledge service and the metadata filter language in, so this crate depends on
//! neither.

use async_trait::async_trait;
use cairn_core::tenancy::Principal;
use cairn_core::{CallContext, Result};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::spec::MemorySettings;

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

/// Whose memories: an agent's, for one end user (empty: runs started without one).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryScope {
    /// The agent's tenant.
    pub tenant_id: String,
    /// The agent.
    pub agent_id: String,
    /// The end user.
    pub end_user: String,
    /// The agent's memory settings.
    pub settings: MemorySettings,
}

/// One memory.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MemoryItem {
    /// `mem_...`.
    pub id: String,
    /// What was remembered (after the PII policy).
    pub text: String,
    /// The end user it belongs to.
    pub end_user: String,
    /// `pending` until it can be recalled, then `ready` (or `failed`).
    pub state: String,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// A tenant's long-term memory store.
#[async_trait]
pub trait Memories: Send + Sync {
    /// Stores `text` in `scope` as the run's caller; recallable once indexed (moments later).
    async fn remember(&self, ctx: &CallContext, scope: &MemoryScope, text: &str) -> Result<MemoryItem>;
    /// The memories of `scope` most relevant to `query`, at most `top_k`.
    async fn recall(&self, ctx: &CallContext, scope: &MemoryScope, query: &str, top_k: u32) -> Result<Vec<MemoryItem>>;
    /// Agent `agent_id`'s memories (of one end user, when given), newest first, as `caller`.
    async fn list(
        &self,
        caller: &Principal,
        tenant_id: &str,
        agent_id: &str,
        end_user: Option<&str>,
    ) -> Result<Vec<MemoryItem>>;
    /// Deletes memory `id` of agent `agent_id`, as `caller`.
    async fn forget(&self, caller: &Principal, tenant_id: &str, agent_id: &str, id: &str) -> Result<()>;
}
