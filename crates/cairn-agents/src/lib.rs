//! Cairn's agent runtime.
//!
//! - `spec`, `service`: agent definitions and their versions; `threads`: conversations.
//! - `runs`: the API's side of runs (start, read, cancel, answer what a run waits on);
//!   `feed`: a run's event stream, resumable by journal entry number.
//! - `journal`: the typed journal entries and the replay that turns a journal back into where a
//!   run stands; `actions`: what a run waits on and the answers it gets.
//! - `runner`: the durable job that steps a run (`step` loads and steps one, `act` acts on a
//!   model output's tool calls, `fold` reads a streamed answer, `context` fits a long history); `writer`: group commit of
//!   journal appends; `events`: live news of runs stepped in this process.
//! - `tools`: one module per tool kind behind one trait; `ports`: what the runtime needs from
//!   the rest of Cairn (approval rules, knowledge search).
//!
//! Storage of threads, runs and journals is the `cairn_core::runs::RunStore` port.

#![warn(missing_docs)]

mod act;
pub mod actions;
mod context;
mod ending;
pub mod events;
pub mod feed;
mod fold;
pub mod journal;
pub mod mcp;
pub mod ports;
pub mod runner;
pub mod runs;
pub mod service;
pub mod spec;
mod step;
pub mod threads;
pub mod tools;
pub mod writer;

pub use service::{AgentPage, AgentService, AgentView};
pub use spec::AgentSpec;
pub use threads::ThreadService;
