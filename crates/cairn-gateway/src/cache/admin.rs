//! Emptying the response cache: a tenant's admins purge its entries, all of them or one
//! namespace's or one model's (after a prompt template or upstream model changed).

use cairn_core::audit::{self, AuditAction};
use cairn_core::cache::CachePurge;
use cairn_core::tenancy::Principal;
use cairn_core::{Error, Result};

/// Longest model alias a purge may name.
const MAX_MODEL_LEN: usize = 256;
use serde::{Deserialize, Serialize};

use crate::GatewayService;

/// Which entries `DELETE /v1/cache` removes.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CachePurgeRequest {
    /// Only this namespace (empty: the default namespace); every namespace when absent.
    #[param(max_length = 64, pattern = "^[A-Za-z0-9._:-]*$")]
    pub namespace: Option<String>,
    /// Only entries of this model alias.
    #[param(max_length = 256)]
    pub model: Option<String>,
    /// Tenant (owners only; default the caller's own).
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub tenant: Option<String>,
}

/// What a purge removed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CachePurged {
    /// Always `cache.purge`.
    pub object: String,
    /// The tenant purged.
    pub tenant: String,
    /// Entries removed.
    pub deleted: u64,
}

impl GatewayService {
    /// Removes cached responses of the caller's tenant (owners: any tenant's); admins only.
    pub async fn purge_cache(&self, p: &Principal, q: CachePurgeRequest) -> Result<CachePurged> {
        if let Some(t) = &q.tenant {
            cairn_core::tenancy::validate_tenant_id(t)?;
        }
        if q.model.as_ref().is_some_and(|m| m.len() > MAX_MODEL_LEN) {
            return Err(Error::invalid_param("model", format!("model names are at most {MAX_MODEL_LEN} bytes")));
        }
        let tenant = p.acting_tenant(q.tenant)?;
        p.administers(&tenant)?;
        if let Some(ns) = q.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            let control = cairn_core::cache::CacheControl { namespace: Some(ns.to_owned()), ..Default::default() };
            control.validate("namespace")?;
        }
        let what = CachePurge { namespace: q.namespace, model: q.model };
        let deleted = self.cache.purge(&tenant, &what).await?;
        let details = serde_json::json!({"namespace": what.namespace, "model": what.model, "deleted": deleted});
        audit::record(&*self.store, p, &tenant, AuditAction::CachePurge, "response cache", details).await;
        Ok(CachePurged { object: "cache.purge".into(), tenant, deleted })
    }
}
