//! The agents service: create, read, update (a new version each time) and delete agents, with
//! tenant and role checks. Runs pin a version, so an update never changes a running agent.

use std::sync::Arc;

use cairn_core::agents::{Agent, AgentStore};
use cairn_core::models::ChatModel;
use cairn_core::store::TenantStore;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::ports::ApprovalRules;
use crate::spec::AgentSpec;

/// Most agents one page lists.
pub const MAX_PAGE: u32 = 100;

/// An agent as the API shows it: its id and version, and its definition.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AgentView {
    /// `agt_...`.
    pub id: String,
    /// Always `agent`.
    pub object: &'static str,
    /// Owner.
    pub tenant_id: String,
    /// This definition's version, from 1.
    pub version: u32,
    /// When the agent was created, Unix ms.
    pub created_at_ms: i64,
    /// When this version was made, Unix ms.
    pub updated_at_ms: i64,
    /// The definition.
    #[serde(flatten)]
    pub spec: AgentSpec,
}

/// One page of agents, by id.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentPage {
    /// Always `list`.
    pub object: &'static str,
    /// The agents.
    pub data: Vec<AgentView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Agents for the API and the CLI.
pub struct AgentService {
    store: Arc<dyn AgentStore>,
    tenants: Arc<dyn TenantStore>,
    models: Arc<dyn ChatModel>,
    rules: Arc<dyn ApprovalRules>,
}

impl AgentService {
    /// A service over `store` (and `tenants`, for owners acting for another tenant), checking
    /// models with `models` and approval rules with `rules`.
    pub fn new(
        store: Arc<dyn AgentStore>,
        tenants: Arc<dyn TenantStore>,
        models: Arc<dyn ChatModel>,
        rules: Arc<dyn ApprovalRules>,
    ) -> Self {
        Self { store, tenants, models, rules }
    }

    /// Checks `spec` whole: its own rules, then that its model exists and, with tools, can
    /// call them.
    fn check(&self, spec: &AgentSpec) -> Result<()> {
        spec.check(&|rule| self.rules.check(rule))?;
        let tools = self.models.supports_tools(&spec.model)?;
        if !spec.tools.is_empty() && !tools {
            return Err(Error::invalid_param(
                "model",
                format!("model '{}' cannot call tools (every target of the alias must)", spec.model),
            ));
        }
        Ok(())
    }

    /// Creates an agent for the caller's tenant (owners: `tenant_id`'s), version 1.
    pub async fn create(&self, caller: &Principal, tenant_id: Option<String>, spec: AgentSpec) -> Result<AgentView> {
        caller.require(Role::Member)?;
        let tenant_id = caller.acting_tenant_in(tenant_id, &*self.tenants).await?;
        self.check(&spec)?;
        let now = now_ms();
        let agent = Agent {
            id: format!("agt_{}", uuid::Uuid::now_v7().simple()),
            tenant_id,
            name: spec.name.clone(),
            version: 1,
            spec: to_value(&spec)?,
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.store.create_agent(&agent).await?;
        view(agent)
    }

    /// Replaces agent `id`'s definition with `spec` as a new version. With `expected`, only if
    /// the latest version is still that one (else `Conflict`); without, on top of the latest.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        spec: AgentSpec,
        expected: Option<u32>,
    ) -> Result<AgentView> {
        caller.require(Role::Member)?;
        let current = self.visible(caller, id).await?;
        self.check(&spec)?;
        let value = to_value(&spec)?;
        let base = expected.unwrap_or(current.version);
        match self.store.update_agent(id, base, &spec.name, &value, now_ms()).await? {
            Some(agent) => view(agent),
            None => Err(Error::Conflict(format!(
                "agent '{id}' is at version {}, not {base}: read it again and retry",
                self.visible(caller, id).await?.version
            ))),
        }
    }

    /// Agent `id`'s latest version.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<AgentView> {
        view(self.visible(caller, id).await?)
    }

    /// Version `version` of agent `id`.
    pub async fn version(&self, caller: &Principal, id: &str, version: u32) -> Result<AgentView> {
        let agent = self.visible(caller, id).await?;
        let v = self
            .store
            .get_agent_version(id, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent '{id}' has no version {version}")))?;
        view(Agent { version: v.version, spec: v.spec, updated_at_ms: v.created_at_ms, ..agent })
    }

    /// The caller's tenant's agents by id, after `after`, `limit` (1-100, default 20) a page.
    pub async fn list(&self, caller: &Principal, after: Option<&str>, limit: Option<u32>) -> Result<AgentPage> {
        caller.require(Role::Reader)?;
        let limit = limit.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid_param("limit", format!("limit must be between 1 and {MAX_PAGE}")));
        }
        let mut agents = self.store.list_agents(&caller.tenant_id, after, limit + 1).await?;
        let more = agents.len() > limit as usize;
        agents.truncate(limit as usize);
        let next_after = more.then(|| agents.last().map(|a| a.id.clone())).flatten();
        let data = agents.into_iter().map(view).collect::<Result<_>>()?;
        Ok(AgentPage { object: "list", data, next_after })
    }

    /// Deletes agent `id` (its versions stay for the runs that pinned them).
    pub async fn delete(&self, caller: &Principal, id: &str) -> Result<()> {
        caller.require(Role::Member)?;
        self.visible(caller, id).await?;
        self.store.delete_agent(id, now_ms()).await?;
        Ok(())
    }

    /// Agent `id` if the caller may see it; another tenant's agent is as good as missing.
    async fn visible(&self, caller: &Principal, id: &str) -> Result<Agent> {
        caller.require(Role::Reader)?;
        match self.store.get_agent(id).await? {
            Some(a) if caller.sees(&a.tenant_id) => Ok(a),
            _ => Err(Error::NotFound(format!("agent '{id}' does not exist"))),
        }
    }
}

fn to_value(spec: &AgentSpec) -> Result<Value> {
    serde_json::to_value(spec).map_err(|e| Error::Internal(format!("agent definition: {e}")))
}

fn view(a: Agent) -> Result<AgentView> {
    let spec: AgentSpec = serde_json::from_value(a.spec)
        .map_err(|e| Error::Internal(format!("stored definition of agent '{}' does not read: {e}", a.id)))?;
    Ok(AgentView {
        id: a.id,
        object: "agent",
        tenant_id: a.tenant_id,
        version: a.version,
        created_at_ms: a.created_at_ms,
        updated_at_ms: a.updated_at_ms,
        spec,
    })
}
