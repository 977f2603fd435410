//! Tenants, API keys, roles and the authenticated principal that every service call carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A tenant: the unit of data isolation. Keys, usage and (later) collections belong to one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Stable slug chosen at creation (`[a-z0-9_-]`, 1-64 chars).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
}

/// What a key may do. Ordered: each role can do everything the one before it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: list models, read its tenant's usage.
    Reader,
    /// Calls models (chat, embeddings) and reads its tenant's usage.
    Member,
    /// Manages its own tenant: its keys, collections and jobs. Sees nothing of other tenants.
    Admin,
    /// Manages the instance: creates tenants, and administers every tenant.
    Owner,
}

impl Role {
    /// The lowercase name used in config, storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reader" => Ok(Role::Reader),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(format!("unknown role '{other}' (expected owner, admin, member or reader)")),
        }
    }
}

/// Largest requests-per-minute limit.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 1_000_000_000;
/// Largest tokens-per-minute limit (stored as a signed 64-bit integer).
pub const MAX_TOKENS_PER_MINUTE: u64 = 1_000_000_000_000;
/// Largest monthly budget in US dollars (budgets are summed in billionths in 64 bits).
pub const MAX_MONTHLY_BUDGET_USD: f64 = 1e9;

/// Per-key limits; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyLimits {
    /// Requests per minute, at most 10^9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 1_000_000_000)]
    pub requests_per_minute: Option<u32>,
    /// Model tokens (input + output) per minute, at most 10^12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub tokens_per_minute: Option<u64>,
    /// Spend per calendar month (UTC), in US dollars, at most 10^9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub monthly_budget_usd: Option<f64>,
    /// Guards for calls made with this key: each tightens its model alias's own (the stricter
    /// mode applies), so a key can add screening but never remove what an alias requires.
    #[serde(default, skip_serializing_if = "crate::guard::GuardSettings::is_default")]
    pub guards: crate::guard::GuardSettings,
}

/// A stored API key. The secret itself is never stored, only its SHA-256 hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// Key id (`key_...`), safe to show and log.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Free-form label.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// The first characters of the secret, to recognise a key in listings.
    pub prefix: String,
    /// Hex SHA-256 of the secret.
    #[serde(skip_serializing)]
    #[schema(ignore)]
    pub hash: String,
    /// Limits applied to calls made with this key.
    pub limits: KeyLimits,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Revocation time, if revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

/// The authenticated caller of a request: which key, which tenant, which role.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The key used.
    pub key_id: String,
    /// The key's tenant.
    pub tenant_id: String,
    /// The key's role.
    pub role: Role,
    /// The key's limits.
    pub limits: KeyLimits,
}

impl Principal {
    /// Fails with `Forbidden` unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> crate::Result<()> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(crate::Error::Forbidden(format!(
                "this action needs the '{}' role; the key has '{}'",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// The tenant whose data the caller may read: its own, or any (`None`: all) for owners.
    pub fn readable_tenant(&self, requested: Option<&str>) -> crate::Result<Option<String>> {
        match (self.role, requested) {
            (Role::Owner, requested) => Ok(requested.map(str::to_owned)),
            (_, None) => Ok(Some(self.tenant_id.clone())),
            (_, Some(t)) if t == self.tenant_id => Ok(Some(t.to_owned())),
            (_, Some(_)) => Err(crate::Error::Forbidden("only owner keys may read another tenant's data".into())),
        }
    }

    /// True when the caller may see data of `tenant_id`: its own tenant's, or any for owners.
    /// Services answer "not found" otherwise, so no response reveals another tenant's ids.
    pub fn sees(&self, tenant_id: &str) -> bool {
        self.role == Role::Owner || self.tenant_id == tenant_id
    }

    /// The tenant an action is for: the caller's own unless `requested` names another, which
    /// only owners may act for.
    pub fn acting_tenant(&self, requested: Option<String>) -> crate::Result<String> {
        match requested {
            Some(t) if t != self.tenant_id => {
                self.require(Role::Owner)
                    .map_err(|_| crate::Error::Forbidden("only owner keys may act for another tenant".into()))?;
                Ok(t)
            }
            _ => Ok(self.tenant_id.clone()),
        }
    }

    /// `acting_tenant`, checked to exist when it is not the caller's own: an owner's typo must
    /// not create data for a tenant nobody has.
    pub async fn acting_tenant_in(
        &self,
        requested: Option<String>,
        tenants: &dyn crate::store::TenantStore,
    ) -> crate::Result<String> {
        let tenant = self.acting_tenant(requested)?;
        if tenant != self.tenant_id && tenants.get_tenant(&tenant).await?.is_none() {
            return Err(crate::Error::NotFound(format!("tenant '{tenant}' does not exist")));
        }
        Ok(tenant)
    }

    /// Fails unless the caller administers `tenant_id`: an admin of that tenant, or an owner.
    pub fn administers(&self, tenant_id: &str) -> crate::Result<()> {
        self.require(Role::Admin)?;
        if self.sees(tenant_id) {
            Ok(())
        } else {
            Err(crate::Error::Forbidden("admin keys manage their own tenant only".into()))
        }
    }
}

/// Checks a tenant slug: 1-64 chars of `[a-z0-9_-]`, starting with a letter or digit.
pub fn validate_tenant_id(id: &str) -> crate::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid_param(
            "id",
            format!("invalid tenant id '{id}': use 1-64 characters of a-z, 0-9, '-' and '_'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal { key_id: "k".into(), tenant_id: "a".into(), role, limits: KeyLimits::default() }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(principal(Role::Admin).require(Role::Member).is_ok());
        assert!(principal(Role::Reader).require(Role::Member).is_err());
    }

    #[test]
    fn tenant_reads_are_scoped() {
        let m = principal(Role::Member);
        assert_eq!(m.readable_tenant(None).unwrap().as_deref(), Some("a"));
        assert!(m.readable_tenant(Some("b")).is_err());
        // A tenant admin is as confined to its tenant as a member.
        assert!(principal(Role::Admin).readable_tenant(Some("b")).is_err());
        assert_eq!(principal(Role::Admin).readable_tenant(None).unwrap().as_deref(), Some("a"));
        assert_eq!(principal(Role::Owner).readable_tenant(Some("b")).unwrap().as_deref(), Some("b"));
        assert_eq!(principal(Role::Owner).readable_tenant(None).unwrap(), None);
    }

    #[test]
    fn only_owners_act_across_tenants() {
        let admin = principal(Role::Admin);
        assert!(admin.administers("a").is_ok());
        assert!(admin.administers("b").is_err());
        assert!(principal(Role::Member).administers("a").is_err());
        assert!(principal(Role::Owner).administers("b").is_ok());
        assert!(admin.acting_tenant(Some("b".into())).is_err());
        assert_eq!(principal(Role::Owner).acting_tenant(Some("b".into())).unwrap(), "b");
        assert!(!admin.sees("b") && admin.sees("a") && principal(Role::Owner).sees("b"));
    }

    #[test]
    fn tenant_ids() {
        assert!(validate_tenant_id("acme-01").is_ok());
        for bad in ["", "Acme", "-x", "a b", &"x".repeat(65)] {
            assert!(validate_tenant_id(bad).is_err(), "{bad}");
        }
    }
}
