//! The job types Cairn ships. Subsystems (ingestion, evaluations, agents) register their own.

mod noop;
mod webhook;

pub use noop::Noop;
pub use webhook::Webhook;

use cairn_core::config::JobsConfig;

use crate::registry::Registry;

/// A registry with the built-in types: `noop`, and `webhook` (calls only allow-listed hosts).
pub fn registry(config: &JobsConfig) -> Registry {
    let mut r = Registry::new();
    r.register("noop", Noop);
    r.register("webhook", Webhook::new(config.webhook_allowed_hosts.clone()));
    r
}
