//! A connected client: the handshake done, requests numbered, each bounded in time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::protocol::{self, CallOutcome, ToolInfo, VERSIONS};
use crate::{McpError, Transport, MAX_TOOLS};

/// How long the handshake and a tool list may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Most `tools/list` pages read.
const MAX_PAGES: usize = 50;

/// A client over one transport, after `initialize`.
pub struct Client {
    transport: Box<dyn Transport>,
    next_id: AtomicU64,
    /// The server's name, as it says in the handshake.
    pub server_name: String,
}

impl Client {
    /// Runs the handshake over `transport`: `initialize`, then `notifications/initialized`.
    pub async fn connect(transport: Box<dyn Transport>) -> Result<Self, McpError> {
        let mut client = Self { transport, next_id: AtomicU64::new(1), server_name: String::new() };
        let result = client.request("initialize", protocol::initialize_params(), SETUP_TIMEOUT).await?;
        let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
        if !VERSIONS.contains(&version) {
            return Err(McpError::Protocol(format!(
                "the server speaks protocol version '{}', which this client does not",
                version.chars().take(40).collect::<String>()
            )));
        }
        if result.pointer("/capabilities/tools").is_none() {
            return Err(McpError::Protocol("the server offers no tools".into()));
        }
        client.server_name =
            result.pointer("/serverInfo/name").and_then(Value::as_str).unwrap_or_default().chars().take(200).collect();
        client.transport.set_protocol_version(version);
        client.transport.notify(protocol::notification("notifications/initialized")).await?;
        Ok(client)
    }

    /// Whether the connection is gone for good.
    pub fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }

    /// Sends request `method` and waits at most `timeout` for its result.
    async fn request(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = protocol::request(id, method, params);
        match tokio::time::timeout(timeout, self.transport.request(id, message)).await {
            Ok(answer) => protocol::result_of(answer?),
            Err(_) => Err(McpError::Timeout(timeout.as_millis())),
        }
    }

    /// Every tool the server offers (following pages, at most [`MAX_TOOLS`]).
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.request("tools/list", protocol::list_params(cursor.as_deref()), SETUP_TIMEOUT).await?;
            let entries = page
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| McpError::Protocol("a tools/list result without a tools array".into()))?;
            for entry in entries {
                if tools.len() == MAX_TOOLS {
                    return Err(McpError::Protocol(format!("the server lists over {MAX_TOOLS} tools")));
                }
                tools.push(ToolInfo::read(entry)?);
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(tools),
            }
        }
        Err(McpError::Protocol(format!("the server's tool list runs past {MAX_PAGES} pages")))
    }

    /// Calls tool `name` with `arguments` (and `meta` as the request's `_meta`, when it is an
    /// object), waiting at most `timeout`.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
        meta: Value,
        timeout: Duration,
    ) -> Result<CallOutcome, McpError> {
        let mut params = json!({"name": name, "arguments": arguments});
        if meta.is_object() {
            params["_meta"] = meta;
        }
        let result = self.request("tools/call", params, timeout).await?;
        Ok(CallOutcome::read(&result))
    }
}
