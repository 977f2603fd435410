//! The tenants' webhook signing secrets, for their administrators: read one to verify
//! deliveries, rotate it when it leaked. Each is created on first use.

use cairn_core::tenancy::Principal;
use cairn_core::Result;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::builtin::{new_secret, SECRET_PURPOSE};
use crate::service::JobService;

/// A tenant's webhook signing secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookSecret {
    /// The tenant.
    pub tenant_id: String,
    /// `whsec_<base64 key>`: the HMAC-SHA256 key is the base64 part, decoded.
    pub secret: String,
}

/// Which tenant's secret (owners only; default the caller's own).
#[derive(Clone, Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SecretQuery {
    /// Tenant (owners only).
    pub tenant_id: Option<String>,
}

impl JobService {
    /// The tenant's secret, created if it has none.
    pub async fn webhook_secret(&self, caller: &Principal, q: SecretQuery) -> Result<WebhookSecret> {
        let tenant_id = self.administered(caller, q.tenant_id).await?;
        let secret = self.store.tenant_secret(&tenant_id, SECRET_PURPOSE, &new_secret()).await?;
        Ok(WebhookSecret { tenant_id, secret })
    }

    /// Replaces the tenant's secret; deliveries from now on are signed with the new one.
    pub async fn rotate_webhook_secret(&self, caller: &Principal, q: SecretQuery) -> Result<WebhookSecret> {
        let tenant_id = self.administered(caller, q.tenant_id).await?;
        let secret = new_secret();
        self.store.set_tenant_secret(&tenant_id, SECRET_PURPOSE, &secret).await?;
        tracing::info!(tenant = %tenant_id, by = %caller.key_id, "webhook secret rotated");
        Ok(WebhookSecret { tenant_id, secret })
    }

    /// The tenant an administrator acts on: its own, or (owners) an existing one it names.
    async fn administered(&self, caller: &Principal, requested: Option<String>) -> Result<String> {
        let tenant_id = caller.acting_tenant_in(requested, &*self.store).await?;
        caller.administers(&tenant_id)?;
        Ok(tenant_id)
    }
}
