//! Test support: a stand-in LLM provider (OpenAI-style and Anthropic-style) served over real
//! HTTP with injectable faults, a webhook receiver for job tests, a real MCP server (Python,
//! official SDK), a real OTLP receiver (Arize Phoenix), and a helper that runs a real Cairn server on loopback.

#![warn(missing_docs)]

pub mod mcp;
mod phoenix;
mod receiver;
mod server;
mod standin;

pub use phoenix::Phoenix;
pub use receiver::{Delivery, Receiver};
pub use server::TestServer;
pub use standin::{Fault, Scripted, StandIn};
