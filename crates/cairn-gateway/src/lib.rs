//! The model gateway: providers (each a module behind one trait), the router (retries with
//! backoff, fallbacks, per-target timeouts, circuit breakers, concurrency limits), accounting,
//! and the service the HTTP layer calls.

#![warn(missing_docs)]

mod accounting;
pub mod adapters;
mod backoff;
mod breaker;
mod cache;
mod pipeline;
pub mod provider;
mod router;
mod service;
mod sse;
mod stream;

pub use accounting::UsageRecorder;
pub use cache::{CachePurgeRequest, CachePurged};
pub use provider::{ChunkStream, Provider, ProviderError, TokenCount};
pub use router::{Routed, Router};
pub use service::{ChatStream, GatewayService, StreamEvent, UsageReport, UsageRequest};
