//! Access control: tenants, API keys (random, shown once, stored as SHA-256 hashes), roles,
//! and the per-key limits (requests and tokens per minute, monthly spend) checked on each call.

#![warn(missing_docs)]

pub mod audit;
mod credit;
mod keys;
mod limits;
mod metrics_gate;
mod reserve;
mod service;

pub use credit::BudgetHold;
pub use keys::{generate_secret, hash_secret, KEY_PREFIX};
pub use limits::{Admission, Limiter, StreamSlot, WorstCase};
pub use metrics_gate::MetricsGate;
pub use service::{AccessService, NewKey};
