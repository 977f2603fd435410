//! Cairn's agent runtime. Today: agent definitions (`spec`) and their versions (`service`),
//! and threads (`threads`); the storage of threads, runs and run journals is in
//! `cairn_core::runs`. The run loop, tools,
//! memory and approvals grow here (issue 11).

#![warn(missing_docs)]

pub mod journal;
pub mod service;
pub mod spec;
pub mod threads;

pub use service::{AgentPage, AgentService, AgentView, RuleCheck};
pub use spec::AgentSpec;
pub use threads::ThreadService;
