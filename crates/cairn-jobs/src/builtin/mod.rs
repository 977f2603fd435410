//! The job types Cairn ships. Subsystems (ingestion, evaluations, agents) register their own.

mod noop;
mod webhook;

pub use noop::Noop;
pub use webhook::{new_secret, sign, Delivery, Webhook, SECRET_PURPOSE};

use std::sync::Arc;

use cairn_core::config::JobsConfig;
use cairn_core::store::TenantStore;

use crate::registry::Registry;

/// A registry with the built-in types: `noop`, and `webhook` (calls only allow-listed hosts,
/// signed with the tenants' secrets kept in `secrets`).
pub fn registry(config: &JobsConfig, secrets: Arc<dyn TenantStore>) -> Registry {
    let mut r = Registry::new();
    r.register("noop", Noop);
    r.register("webhook", Webhook::new(config, secrets));
    r
}
