//! A Model Context Protocol client, as agents use it: connect to a server, list its tools,
//! call them.
//!
//! The model is small on purpose. A [`Transport`] carries JSON-RPC messages: [`Stdio`] to a
//! child process the operator configured (one message per line), [`Http`] to a Streamable HTTP
//! endpoint (a POST per message, answered with JSON or a short SSE stream, with the server's
//! session id echoed back). A [`Client`] runs the `initialize` handshake over a transport and
//! then makes requests. A [`Pool`] keeps one live client per server, connecting on first use
//! and again after the server goes away, and caches tool lists for a short while.
//!
//! Servers are not trusted: every message is bounded in size, tool lists in length, and each
//! request in time; a server that breaks the protocol fails the request, never the caller.

#![warn(missing_docs)]

mod client;
mod http;
mod pool;
mod protocol;
mod stdio;

pub use client::Client;
pub use http::Http;
pub use pool::{Pool, ServerConfig};
pub use protocol::{CallOutcome, ToolInfo};
pub use stdio::Stdio;

use async_trait::async_trait;
use serde_json::Value;

/// Largest message read from a server, bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most tools read from one server.
pub const MAX_TOOLS: usize = 1000;

/// What went wrong talking to a server; the message is fit for the model and the operator.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The server could not be reached or started, or went away.
    #[error("the MCP server is unreachable: {0}")]
    Unreachable(String),
    /// The server answered something that is not the protocol.
    #[error("the MCP server broke the protocol: {0}")]
    Protocol(String),
    /// The server answered a request with a JSON-RPC error.
    #[error("the MCP server refused: {message} (code {code})")]
    Refused {
        /// JSON-RPC error code.
        code: i64,
        /// The server's message.
        message: String,
    },
    /// The server forgot our session (Streamable HTTP answered 404): connect again.
    #[error("the MCP server ended the session")]
    SessionEnded,
    /// No answer in time.
    #[error("the MCP server did not answer within {0} ms")]
    Timeout(u128),
}

impl McpError {
    /// Whether the connection is unusable after this error (the pool then drops it).
    pub fn breaks_connection(&self) -> bool {
        matches!(self, McpError::Unreachable(_) | McpError::SessionEnded | McpError::Protocol(_))
    }
}

/// Carries JSON-RPC messages to one server.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends request `message` (its `id` is `id`) and waits for the response with that id.
    async fn request(&self, id: u64, message: Value) -> Result<Value, McpError>;
    /// Sends a notification (no answer expected).
    async fn notify(&self, message: Value) -> Result<(), McpError>;
    /// Records the protocol version the handshake agreed on (HTTP sends it on later requests).
    fn set_protocol_version(&self, _version: &str) {}
    /// Whether the transport is gone for good (a new one is needed).
    fn is_closed(&self) -> bool;
}
