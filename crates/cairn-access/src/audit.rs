//! Reading the audit log: a tenant's admins read their tenant's entries; owners any tenant's or
//! all. Entries come in chain order, a page at a time (`after` the last one seen).

use cairn_core::audit::{AuditAction, AuditEntry, AuditQuery, EVERY_TENANT};
use cairn_core::tenancy::{Principal, Role};
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::AccessService;

/// Most entries in one page.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

/// Which entries to read.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditRequest {
    /// Tenant (owners: any, `*` for their actions over every tenant, or all when absent;
    /// others: their own).
    #[param(pattern = "^([a-z0-9][a-z0-9_-]{0,63}|[*])$")]
    pub tenant: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Appended at or after this time, Unix ms.
    #[param(minimum = 0)]
    pub from_ms: Option<i64>,
    /// Appended before this time, Unix ms.
    #[param(minimum = 0)]
    pub to_ms: Option<i64>,
    /// Entries after this `seq` (the last of the previous page).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Entries per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A page of entries.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Always `list`.
    pub object: String,
    /// The entries, in chain order.
    pub data: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

impl AccessService {
    /// A page of the audit log for `caller` (admins only).
    pub async fn audit(&self, caller: &Principal, q: AuditRequest) -> Result<AuditPage> {
        caller.require(Role::Admin)?;
        if let Some(t) = q.tenant.as_deref().filter(|t| *t != EVERY_TENANT) {
            cairn_core::tenancy::validate_tenant_id(t)?;
        }
        let limit = q.limit.unwrap_or(100);
        if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(Error::invalid_param("limit", format!("limit must be 1 to {MAX_AUDIT_PAGE}")));
        }
        for (name, v) in [("from_ms", q.from_ms), ("to_ms", q.to_ms), ("after", q.after)] {
            if v.is_some_and(|v| v < 0) {
                return Err(Error::invalid_param(name, format!("{name} must not be negative")));
            }
        }
        let query = AuditQuery {
            tenant: caller.readable_tenant(q.tenant.as_deref())?,
            action: q.action,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            after_seq: q.after.unwrap_or(0),
            limit,
        };
        let data = self.store.audit_list(&query).await?;
        let next_after = (data.len() == limit as usize).then(|| data.last().map(|e| e.seq)).flatten();
        Ok(AuditPage { object: "list".into(), data, next_after })
    }
}
