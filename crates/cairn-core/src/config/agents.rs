//! The agents section: MCP servers the operator runs for tenants.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Agent runtime settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// MCP servers started as child processes (stdio), by name. Only the operator configures
    /// these: a tenant can add HTTP servers through the API, never a command to run.
    pub mcp_servers: BTreeMap<String, StdioServerConfig>,
}

/// An MCP server Cairn starts as a child process and talks to over stdio.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StdioServerConfig {
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables for it; it gets no other (bar `PATH`, `HOME`, `LANG`).
    pub env: BTreeMap<String, String>,
    /// Tenants whose agents may use it; `["*"]` for every tenant; empty for none.
    pub tenants: Vec<String>,
}

impl StdioServerConfig {
    /// Whether tenant `tenant_id`'s agents may use this server.
    pub fn serves(&self, tenant_id: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant_id)
    }
}

impl AgentsConfig {
    /// What is wrong with these settings.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, server) in &self.mcp_servers {
            if !crate::agents::is_mcp_server_name(name) {
                problems.push(format!("agents.mcp_servers.{name}: a name is 1-64 letters, digits, '-' or '_'"));
            }
            if server.command.trim().is_empty() {
                problems.push(format!("agents.mcp_servers.{name}.command is empty"));
            }
        }
        problems
    }
}
