//! Emptying the response cache: a tenant's admins purge its entries, all of them or one
//! namespace's or one model's (after a prompt template or upstream model changed).

use cairn_core::cache::CachePurge;
use cairn_core::tenancy::Principal;
use cairn_core::Result;
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
    #[param(max_length = 64)]
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
        let tenant = p.acting_tenant(q.tenant)?;
        p.administers(&tenant)?;
        if let Some(ns) = q.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            let control = cairn_core::cache::CacheControl { namespace: Some(ns.to_owned()), ..Default::default() };
            control.validate("namespace")?;
        }
        let deleted = self.cache.purge(&tenant, &CachePurge { namespace: q.namespace, model: q.model }).await?;
        Ok(CachePurged { object: "cache.purge".into(), tenant, deleted })
    }
}
