//! Who may read the instance's metrics on the API listener.
//!
//! `/metrics` shows every tenant's spend (`cairn_tenant_cost_usd_total` by tenant), the model
//! aliases and job types: what one tenant must not learn of another. So by default it answers
//! only an instance owner's key or the scrape token from `CAIRN_METRICS_TOKEN`, a credential for
//! Prometheus that opens nothing else. `server.public_metrics = true` opens it to anyone who
//! reaches the port, for listeners that only operators can reach.

use cairn_core::tenancy::Role;
use cairn_core::{Error, Result};

use crate::keys::hash_secret;
use crate::service::AccessService;

/// The rule for `/metrics` (see the module docs).
pub struct MetricsGate {
    public: bool,
    /// SHA-256 (hex) of the scrape token, when one is set.
    token_hash: Option<String>,
}

impl MetricsGate {
    /// Metrics open to all when `public`; otherwise to owners and to `token` when given (its
    /// length is checked with the configuration: `ServerConfig::metrics_token`).
    pub fn new(public: bool, token: Option<&str>) -> Self {
        Self { public, token_hash: token.map(hash_secret) }
    }

    /// Admits a reader of `/metrics` who sent the bearer `secret` (None: no credentials).
    pub async fn admit(&self, access: &AccessService, secret: Option<&str>) -> Result<()> {
        if self.public {
            return Ok(());
        }
        let secret = secret.ok_or_else(|| {
            Error::Unauthenticated("metrics need 'Authorization: Bearer <owner key or metrics token>'".into())
        })?;
        if self.token_hash.as_deref() == Some(hash_secret(secret).as_str()) {
            return Ok(());
        }
        access.authenticate(secret).await?.require(Role::Owner)
    }
}
