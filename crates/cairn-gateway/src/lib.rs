//! The model gateway: providers (each a module behind one trait), the router (retries with
//! backoff, fallbacks, per-target timeouts, circuit breakers, concurrency limits), accounting,
//! and the service the HTTP layer calls.

#![warn(missing_docs)]

mod accounting;
pub mod adapters;
mod backoff;
mod breaker;
mod cache;
mod chat;
pub mod guard;
pub mod journal;
mod pipeline;
pub mod provider;
mod router;
pub mod routing;
mod service;
mod sse;
mod stream;
mod usage_writer;

pub use accounting::UsageRecorder;
pub use cache::semantic::{agree, Disagreement};
pub use cache::{CachePurgeRequest, CachePurged};
pub use provider::{ChunkStream, Provider, ProviderError, TokenCount};
pub use router::{Routed, Router};
pub use service::{ChatStream, GatewayService, StreamEvent, UsageReport, UsageRequest};

/// The folder in-process models are read from: `local.models_dir`, else the default cache.
pub fn models_dir(cfg: &cairn_core::config::LocalConfig) -> std::path::PathBuf {
    if cfg.models_dir.as_os_str().is_empty() {
        cairn_models::catalog::default_models_dir()
    } else {
        cfg.models_dir.clone()
    }
}
