//! Test support: a stand-in LLM provider (OpenAI-style and Anthropic-style) served over real
//! HTTP with injectable faults, and a helper that runs a real Cairn server on loopback.

#![warn(missing_docs)]

mod server;
mod standin;

pub use server::TestServer;
pub use standin::{Fault, StandIn};
