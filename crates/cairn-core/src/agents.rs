//! Agents as storage sees them: a tenant's named agent and the versions of its definition.
//!
//! Every update of an agent makes a new version; versions are never changed or removed, so a
//! run pins the version it started with and replays it whatever happens to the agent later
//! (deleting an agent hides it; its versions stay for the runs that used them). The definition
//! itself (`spec`) is opaque JSON here: the agents service owns its typed form and checks it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::store::StoreResult;

/// An agent: its identity and latest version.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// `agt_...`.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Unique among the tenant's agents that are not deleted.
    pub name: String,
    /// The latest version, from 1.
    pub version: u32,
    /// The latest version's definition.
    pub spec: Value,
    /// When the agent was created, Unix ms.
    pub created_at_ms: i64,
    /// When its latest version was made, Unix ms.
    pub updated_at_ms: i64,
}

/// One version of an agent's definition, as a run pins it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentVersion {
    /// The agent.
    pub agent_id: String,
    /// From 1.
    pub version: u32,
    /// The definition.
    pub spec: Value,
    /// When this version was made, Unix ms.
    pub created_at_ms: i64,
}

/// Whether `name` can name an MCP server: 1-64 ASCII letters, digits, `-` or `_`.
pub fn is_mcp_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A tenant's MCP server, reached over Streamable HTTP.
#[derive(Clone, Debug, PartialEq)]
pub struct McpServerRecord {
    /// Owner.
    pub tenant_id: String,
    /// Unique in the tenant; agents' `mcp` tools name it.
    pub name: String,
    /// The endpoint.
    pub url: String,
    /// Headers sent with every message (credentials): stored as they are, never shown.
    pub headers: BTreeMap<String, String>,
    /// When it was added, Unix ms.
    pub created_at_ms: i64,
}

/// Agents and their versions.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Inserts `agent` (its `version` must be 1) and its first version, in one transaction;
    /// `Conflict` if the tenant has a live agent of that name.
    async fn create_agent(&self, agent: &Agent) -> StoreResult<()>;
    /// Makes version `expected + 1` of agent `id` with `name` and `spec`, if its latest version
    /// is still `expected` (compare-and-set: of two concurrent updates one wins, the other gets
    /// `None` and can re-read); `None` too when the agent is missing or deleted; `Conflict`
    /// when another live agent of the tenant has `name`.
    async fn update_agent(
        &self,
        id: &str,
        expected: u32,
        name: &str,
        spec: &Value,
        now_ms: i64,
    ) -> StoreResult<Option<Agent>>;
    /// One live agent.
    async fn get_agent(&self, id: &str) -> StoreResult<Option<Agent>>;
    /// One version of an agent, deleted or not (runs replay the version they pinned).
    async fn get_agent_version(&self, id: &str, version: u32) -> StoreResult<Option<AgentVersion>>;
    /// A tenant's live agents by id, after `after`, at most `limit`.
    async fn list_agents(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Agent>>;
    /// Hides agent `id` (its name becomes free); false when it was missing or deleted already.
    async fn delete_agent(&self, id: &str, now_ms: i64) -> StoreResult<bool>;
    /// Adds a tenant's MCP server; `Conflict` if the tenant has one of that name.
    async fn create_mcp_server(&self, server: &McpServerRecord) -> StoreResult<()>;
    /// One of a tenant's MCP servers.
    async fn get_mcp_server(&self, tenant_id: &str, name: &str) -> StoreResult<Option<McpServerRecord>>;
    /// A tenant's MCP servers by name (a tenant has few: at most a few hundred).
    async fn list_mcp_servers(&self, tenant_id: &str) -> StoreResult<Vec<McpServerRecord>>;
    /// Removes one; false when it did not exist.
    async fn delete_mcp_server(&self, tenant_id: &str, name: &str) -> StoreResult<bool>;
}
