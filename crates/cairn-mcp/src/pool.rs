//! One live client per server, shared by every run that uses it. A client is made on first
//! use (one connection attempt at a time per server), reused while it works, and dropped
//! when its transport breaks or its configuration changes, so the next use connects again.
//! Tool lists are cached for [`TOOLS_TTL`]: runs read them at every step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Url;
use serde_json::Value;

use crate::{CallOutcome, Client, Http, McpError, Stdio, ToolInfo};

/// How long a server's tool list is reused.
pub const TOOLS_TTL: Duration = Duration::from_secs(60);
/// How long a connection may sit unused before it is closed (a stdio server's process ends):
/// a process per tenant and server must not outlive its use.
pub const IDLE: Duration = Duration::from_secs(600);
/// How long a server that could not be reached is not tried again: every run of every agent
/// using a dead (or black-holed) server would otherwise wait out its own connection attempt.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How to reach a server.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerConfig {
    /// A child process speaking MCP on stdin and stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Environment variables set for it (on top of a clean environment).
        env: BTreeMap<String, String>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        /// The endpoint.
        url: Url,
        /// Headers sent with every message.
        headers: HeaderMap,
    },
}

/// A server's slot: its configuration, client and cached tools.
#[derive(Default)]
struct Slot {
    config: Option<ServerConfig>,
    client: Option<Arc<Client>>,
    tools: Option<(Instant, Arc<Vec<ToolInfo>>)>,
    /// The last failed connection attempt, and why.
    failed: Option<(Instant, String)>,
    /// When the client was last handed out.
    used: Option<Instant>,
}

/// What `e` says, without the variant's own prefix (it is added again when reported).
fn strip(e: &McpError) -> String {
    match e {
        McpError::Unreachable(m) | McpError::Protocol(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Clients by server key (the caller's choice: tenant and name, say).
pub struct Pool {
    slots: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// How long an unused connection stays open.
    idle: Duration,
    /// When idle connections were last looked for.
    swept: parking_lot::Mutex<Option<Instant>>,
}

impl Default for Pool {
    fn default() -> Self {
        Self::with_idle(IDLE)
    }
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pool closing connections unused for `idle`.
    pub fn with_idle(idle: Duration) -> Self {
        Self { slots: Default::default(), idle, swept: Default::default() }
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        self.sweep();
        self.slots.lock().entry(key.to_owned()).or_default().clone()
    }

    /// Closes connections unused for `idle` (at most once per tenth of it): dropping a client
    /// ends its process or session. Slots in use are skipped.
    fn sweep(&self) {
        {
            let mut swept = self.swept.lock();
            if swept.is_some_and(|at| at.elapsed() < self.idle / 10) {
                return;
            }
            *swept = Some(Instant::now());
        }
        let mut slots = self.slots.lock();
        slots.retain(|_, slot| {
            let Ok(mut s) = slot.try_lock() else { return true };
            if s.used.is_some_and(|at| at.elapsed() >= self.idle) {
                s.client = None;
                s.used = None;
            }
            s.client.is_some() || s.failed.as_ref().is_some_and(|(at, _)| at.elapsed() < RETRY_AFTER)
        });
    }

    /// Live connections (for tests and metrics).
    pub fn open_connections(&self) -> usize {
        self.slots.lock().values().filter(|s| s.try_lock().map_or(true, |s| s.client.is_some())).count()
    }

    /// The live client of server `key`, connecting with `config` if there is none (or it was
    /// configured otherwise).
    async fn client(&self, key: &str, config: &ServerConfig) -> Result<Arc<Client>, McpError> {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if slot.config.as_ref() != Some(config) {
            *slot = Slot { config: Some(config.clone()), ..Slot::default() };
        }
        if let Some(client) = slot.client.clone().filter(|c| !c.is_closed()) {
            slot.used = Some(Instant::now());
            return Ok(client);
        }
        if let Some((at, why)) = slot.failed.as_ref().filter(|(at, _)| at.elapsed() < RETRY_AFTER) {
            let wait = RETRY_AFTER.saturating_sub(at.elapsed()).as_secs_f32();
            return Err(McpError::Unreachable(format!("{why} (not tried again for {wait:.1} s)")));
        }
        let connected = async {
            let transport: Box<dyn crate::Transport> = match config {
                ServerConfig::Stdio { command, args, env } => Box::new(Stdio::spawn(command, args, env)?),
                ServerConfig::Http { url, headers } => Box::new(Http::new(url.clone(), headers.clone())),
            };
            Client::connect(transport).await
        };
        match connected.await {
            Ok(client) => {
                let client = Arc::new(client);
                slot.client = Some(client.clone());
                slot.failed = None;
                slot.used = Some(Instant::now());
                Ok(client)
            }
            Err(e) => {
                slot.failed = Some((Instant::now(), strip(&e)));
                Err(e)
            }
        }
    }

    /// Drops server `key`'s client after `err`, if the error broke it.
    async fn after(&self, key: &str, err: &McpError) {
        if err.breaks_connection() {
            let slot = self.slot(key);
            let mut slot = slot.lock().await;
            slot.client = None;
            slot.tools = None;
        }
    }

    /// Server `key`'s tools (cached for [`TOOLS_TTL`]).
    pub async fn tools(&self, key: &str, config: &ServerConfig) -> Result<Arc<Vec<ToolInfo>>, McpError> {
        {
            let slot = self.slot(key);
            let slot = slot.lock().await;
            if let (Some(c), Some((at, tools))) = (&slot.config, &slot.tools) {
                if c == config && at.elapsed() < TOOLS_TTL {
                    return Ok(tools.clone());
                }
            }
        }
        let listed = match self.client(key, config).await {
            Ok(client) => client.list_tools().await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(tools) => {
                let tools = Arc::new(tools);
                let slot = self.slot(key);
                slot.lock().await.tools = Some((Instant::now(), tools.clone()));
                Ok(tools)
            }
            Err(e) => {
                self.after(key, &e).await;
                Err(e)
            }
        }
    }

    /// Calls tool `name` of server `key` (`meta` goes as the request's `_meta`). A session the server ended is opened again once
    /// (the call never reached the tool).
    pub async fn call(
        &self,
        key: &str,
        config: &ServerConfig,
        name: &str,
        arguments: Value,
        meta: Value,
        timeout: Duration,
    ) -> Result<CallOutcome, McpError> {
        for attempt in 0..2 {
            let outcome = match self.client(key, config).await {
                Ok(client) => client.call_tool(name, arguments.clone(), meta.clone(), timeout).await,
                Err(e) => Err(e),
            };
            match outcome {
                Err(e @ McpError::SessionEnded) if attempt == 0 => self.after(key, &e).await,
                Err(e) => {
                    self.after(key, &e).await;
                    return Err(e);
                }
                ok => return ok,
            }
        }
        Err(McpError::SessionEnded)
    }

    /// Forgets server `key` (its configuration was deleted); its client closes when the last
    /// call using it ends.
    pub fn forget(&self, key: &str) {
        self.slots.lock().remove(key);
    }
}
