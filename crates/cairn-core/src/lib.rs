//! Cairn's core: domain types, configuration, errors and the storage ports (traits) that the
//! adapters in `cairn-store` implement. Nothing here does I/O beyond reading the config file.

#![warn(missing_docs)]

pub mod agents;
pub mod audit;
pub mod body;
pub mod cache;
pub mod config;
pub mod context;
pub mod error;
pub mod filter;
pub mod guard;
pub mod jobs;
pub mod knowledge;
pub mod models;
pub mod openai;
pub mod priority;
pub mod runs;
pub mod search;
pub mod store;
pub mod tenancy;
pub mod time;
pub mod topology;
pub mod trace;
pub mod usage;

pub use context::CallContext;
pub use error::{Error, Result};
