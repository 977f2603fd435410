//! MCP servers as tenants see them, and the connections agents' `mcp` tools use.
//!
//! Two kinds of server: a tenant adds Streamable HTTP endpoints through the API (on hosts its
//! allow-list admits, the one webhooks use; credential headers are stored and never shown),
//! and the operator configures stdio servers (`agents.mcp_servers`: a command Cairn starts)
//! for the tenants it names. Names are one namespace per tenant. Each tenant gets its own
//! connection (its own process, for stdio), so no server state is shared across tenants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::agents::{is_mcp_server_name, AgentStore, McpServerRecord};
use cairn_core::config::StdioServerConfig;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::{Error, Result};
use cairn_jobs::builtin::Webhook;
use cairn_jobs::Refusal;
use cairn_mcp::{CallOutcome, McpError, Pool, ServerConfig, ToolInfo};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Most headers one server sends.
const MAX_HEADERS: usize = 16;
/// Longest header value, bytes.
const MAX_HEADER_VALUE: usize = 8192;
/// Headers the transport sets itself (a tenant cannot).
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept",
    "transfer-encoding",
    "connection",
    "mcp-session-id",
    "mcp-protocol-version",
];

/// How a server is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    /// Streamable HTTP, added by the tenant.
    Http,
    /// A process the operator configured.
    Stdio,
}

/// An MCP server as the API shows it (never its header values or command).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct McpServerView {
    /// Always `mcp_server`.
    pub object: &'static str,
    /// The name agents' `mcp` tools use.
    pub name: String,
    /// How it is reached.
    pub transport: McpTransport,
    /// The endpoint (HTTP servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Names of the headers sent with each message (their values are not shown).
    pub header_names: Vec<String>,
    /// When it was added, Unix ms (HTTP servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
}

/// Adds an HTTP MCP server.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMcpServer {
    /// 1-64 letters, digits, `-` or `_`; unique in the tenant.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// The Streamable HTTP endpoint, on a host the tenant's allow-list admits.
    #[schema(min_length = 1, max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: String,
    /// Headers to send with each message (credentials, say); at most 16.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One tool a server offers.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct McpToolView {
    /// Its name on the server (an agent's `mcp` tool names it).
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

/// A tenant's MCP servers and the live connections to them.
pub struct McpServers {
    store: Arc<dyn AgentStore>,
    operator: BTreeMap<String, StdioServerConfig>,
    allow: Arc<Webhook>,
    pool: Pool,
}

impl McpServers {
    /// Servers kept in `store`, the operator's stdio `operator` servers, HTTP endpoints
    /// checked with `allow`.
    pub fn new(store: Arc<dyn AgentStore>, operator: BTreeMap<String, StdioServerConfig>, allow: Arc<Webhook>) -> Self {
        Self { store, operator, allow, pool: Pool::new() }
    }

    fn operator(&self, tenant_id: &str, name: &str) -> Option<&StdioServerConfig> {
        self.operator.get(name).filter(|s| s.serves(tenant_id))
    }

    /// Adds an HTTP server to the caller's tenant (admins).
    pub async fn create(&self, caller: &Principal, req: CreateMcpServer) -> Result<McpServerView> {
        caller.require(Role::Admin)?;
        let tenant = &caller.tenant_id;
        if !is_mcp_server_name(&req.name) {
            return Err(Error::invalid_param("name", "a name is 1-64 letters, digits, '-' or '_'"));
        }
        if self.operator(tenant, &req.name).is_some() {
            return Err(Error::Conflict(format!("an MCP server named '{}' exists", req.name)));
        }
        let url = self.check_url(tenant, &req.url).map_err(|r| match r {
            Refusal::Invalid(m) => Error::invalid_param("url", m),
            Refusal::Forbidden(m) => Error::Forbidden(m),
        })?;
        headers(&req.headers)?;
        let record = McpServerRecord {
            tenant_id: tenant.clone(),
            name: req.name,
            url: url.to_string(),
            headers: req.headers,
            created_at_ms: now_ms(),
        };
        self.store.create_mcp_server(&record).await?;
        Ok(view(record))
    }

    /// The caller's tenant's servers, operator ones first.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<McpServerView>> {
        let tenant = &caller.tenant_id;
        let mut out: Vec<McpServerView> =
            self.operator.iter().filter(|(_, s)| s.serves(tenant)).map(|(n, s)| stdio_view(n, s)).collect();
        out.extend(self.store.list_mcp_servers(tenant).await?.into_iter().map(view));
        Ok(out)
    }

    /// One server of the caller's tenant.
    pub async fn get(&self, caller: &Principal, name: &str) -> Result<McpServerView> {
        if let Some(s) = self.operator(&caller.tenant_id, name) {
            return Ok(stdio_view(name, s));
        }
        self.record(&caller.tenant_id, name).await.map(view)
    }

    /// Removes one of the caller's tenant's HTTP servers (admins).
    pub async fn delete(&self, caller: &Principal, name: &str) -> Result<()> {
        caller.require(Role::Admin)?;
        if self.operator(&caller.tenant_id, name).is_some() {
            return Err(Error::Forbidden("the operator configured this server; it cannot be removed here".into()));
        }
        if !self.store.delete_mcp_server(&caller.tenant_id, name).await? {
            return Err(not_found(name));
        }
        self.pool.forget(&key(&caller.tenant_id, name));
        Ok(())
    }

    /// The tools a server of the caller's tenant offers, asked of the server (members).
    pub async fn tools(&self, caller: &Principal, name: &str) -> Result<Vec<McpToolView>> {
        caller.require(Role::Member)?;
        let config = match self.config(&caller.tenant_id, name).await {
            Ok(c) => c,
            Err(Lookup::Missing) => return Err(not_found(name)),
            Err(Lookup::Refused(m)) => return Err(Error::Forbidden(m)),
        };
        let tools = self.pool.tools(&key(&caller.tenant_id, name), &config).await.map_err(upstream)?;
        Ok(tools
            .iter()
            .map(|t| McpToolView {
                name: t.name.clone(),
                description: t.description.clone(),
                input_schema: t.input_schema.clone(),
            })
            .collect())
    }

    /// Tool `tool` of tenant `tenant_id`'s server `server`, as the model is offered it.
    pub(crate) async fn describe(&self, tenant_id: &str, server: &str, tool: &str) -> Result<ToolInfo, String> {
        let config = self.config(tenant_id, server).await.map_err(|l| l.message(server))?;
        let tools = self.pool.tools(&key(tenant_id, server), &config).await.map_err(|e| e.to_string())?;
        tools
            .iter()
            .find(|t| t.name == tool)
            .cloned()
            .ok_or_else(|| format!("MCP server '{server}' has no tool '{tool}'"))
    }

    /// Calls tool `tool` of tenant `tenant_id`'s server `server`.
    pub(crate) async fn call(
        &self,
        tenant_id: &str,
        server: &str,
        tool: &str,
        arguments: Value,
        meta: Value,
        timeout: Duration,
    ) -> Result<CallOutcome, String> {
        let config = self.config(tenant_id, server).await.map_err(|l| l.message(server))?;
        self.pool
            .call(&key(tenant_id, server), &config, tool, arguments, meta, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    async fn record(&self, tenant_id: &str, name: &str) -> Result<McpServerRecord> {
        if !is_mcp_server_name(name) {
            return Err(not_found(name));
        }
        self.store.get_mcp_server(tenant_id, name).await?.ok_or_else(|| not_found(name))
    }

    /// How to reach server `name` of tenant `tenant_id`, its URL checked against today's
    /// allow-list (it may have changed since the server was added).
    async fn config(&self, tenant_id: &str, name: &str) -> std::result::Result<ServerConfig, Lookup> {
        if let Some(s) = self.operator(tenant_id, name) {
            return Ok(ServerConfig::Stdio { command: s.command.clone(), args: s.args.clone(), env: s.env.clone() });
        }
        let record = match self.record(tenant_id, name).await {
            Ok(r) => r,
            Err(Error::NotFound(_)) => return Err(Lookup::Missing),
            Err(e) => return Err(Lookup::Refused(e.to_string())),
        };
        let url = self.check_url(tenant_id, &record.url).map_err(|r| match r {
            Refusal::Invalid(m) | Refusal::Forbidden(m) => Lookup::Refused(m),
        })?;
        let headers = headers(&record.headers).map_err(|e| Lookup::Refused(e.to_string()))?;
        Ok(ServerConfig::Http { url, headers })
    }

    /// `raw` as an endpoint: `Invalid` when it is not one, `Forbidden` off the allow-list.
    fn check_url(&self, tenant_id: &str, raw: &str) -> std::result::Result<Url, Refusal> {
        let url = Url::parse(raw).map_err(|e| Refusal::Invalid(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Invalid("url must be http:// or https://".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Invalid("put credentials in headers, not in the url".into()));
        }
        self.allow.allow(tenant_id, &url)?;
        Ok(url)
    }
}

/// Why a server cannot be used.
enum Lookup {
    /// The tenant has no server of that name.
    Missing,
    /// It exists but may not be reached.
    Refused(String),
}

impl Lookup {
    fn message(self, name: &str) -> String {
        match self {
            Lookup::Missing => format!("there is no MCP server '{name}'"),
            Lookup::Refused(m) => format!("MCP server '{name}' cannot be used: {m}"),
        }
    }
}

/// The pool key: servers are per tenant.
fn key(tenant_id: &str, name: &str) -> String {
    format!("{tenant_id}\u{0}{name}")
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("MCP server '{name}' does not exist"))
}

fn upstream(e: McpError) -> Error {
    Error::Upstream { timeout: matches!(e, McpError::Timeout(_)), message: e.to_string() }
}

/// `given` as a header map, or why not.
fn headers(given: &BTreeMap<String, String>) -> Result<HeaderMap> {
    if given.len() > MAX_HEADERS {
        return Err(Error::invalid_param("headers", format!("at most {MAX_HEADERS} headers")));
    }
    let mut map = HeaderMap::new();
    for (name, value) in given {
        let at = format!("headers.{name}");
        let parsed = HeaderName::try_from(name.as_str()).map_err(|_| Error::invalid_param(&at, "not a header name"))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(Error::invalid_param(&at, "this header is set by Cairn"));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err(Error::invalid_param(&at, format!("at most {MAX_HEADER_VALUE} bytes")));
        }
        let value =
            HeaderValue::try_from(value.as_str()).map_err(|_| Error::invalid_param(&at, "not a header value"))?;
        map.insert(parsed, value);
    }
    Ok(map)
}

fn view(r: McpServerRecord) -> McpServerView {
    McpServerView {
        object: "mcp_server",
        name: r.name,
        transport: McpTransport::Http,
        url: Some(r.url),
        header_names: r.headers.into_keys().collect(),
        created_at_ms: Some(r.created_at_ms),
    }
}

fn stdio_view(name: &str, _s: &StdioServerConfig) -> McpServerView {
    McpServerView {
        object: "mcp_server",
        name: name.to_owned(),
        transport: McpTransport::Stdio,
        url: None,
        header_names: Vec::new(),
        created_at_ms: None,
    }
}
