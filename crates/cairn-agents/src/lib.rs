//! Cairn's agent runtime. Today: agent definitions (`spec`) and their versions (`service`),
//! and threads (`threads`); the storage of threads, runs and run journals is in
//! `cairn_core::runs`. The run loop, tools,
//! memory and approvals grow here (issue 11).

#![warn(missing_docs)]

mod act;
pub mod actions;
pub mod events;
pub mod feed;
mod fold;
pub mod journal;
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
