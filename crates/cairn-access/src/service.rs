//! The access service: authenticates bearer keys and manages tenants and keys. Every operation
//! takes the caller's `Principal` and checks its role here, in the service, so no entry point
//! (HTTP, CLI, later the agent runtime) can skip the check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::audit::{self, AuditAction};
use cairn_core::store::Store;
use cairn_core::tenancy::{
    validate_tenant_id, ApiKey, KeyLimits, Principal, Role, Tenant, MAX_MONTHLY_BUDGET_USD, MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_MINUTE,
};
use cairn_core::time::now_ms;
use cairn_core::{Error, Result};
use parking_lot::Mutex;

use crate::keys::{display_prefix, generate_secret, hash_secret, KEY_PREFIX};

/// Tenant created on first start to own the bootstrap admin key.
const DEFAULT_TENANT: &str = "default";
/// Bound on cached keys, so a flood of distinct keys cannot grow memory without limit.
const CACHE_MAX: usize = 100_000;

/// What to create a key with.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Owning tenant (must exist).
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Limits.
    pub limits: KeyLimits,
}

/// Authenticates keys and manages tenants and keys.
pub struct AccessService {
    pub(crate) store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, (Instant, ApiKey)>>,
    ttl: Duration,
}

impl AccessService {
    /// A service over `store`, caching authenticated keys for `ttl`.
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Self { store, cache: Mutex::new(HashMap::new()), ttl }
    }

    /// The principal for operator commands run on the server machine (`cairn keys ...`).
    pub fn operator() -> Principal {
        Principal {
            key_id: "operator".into(),
            tenant_id: DEFAULT_TENANT.into(),
            role: Role::Owner,
            limits: KeyLimits::default(),
        }
    }

    /// Resolves a bearer secret to its principal; revoked and unknown keys are rejected alike.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        if !secret.starts_with(KEY_PREFIX) {
            return Err(Error::Unauthenticated("invalid API key: Cairn keys start with 'sk-cairn-'".into()));
        }
        let hash = hash_secret(secret);
        let cached = self.cache.lock().get(&hash).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, k)| k.clone());
        let key = match cached {
            Some(k) => k,
            None => {
                let k = self
                    .store
                    .find_key_by_hash(&hash)
                    .await?
                    .ok_or_else(|| Error::Unauthenticated("invalid API key".into()))?;
                let mut cache = self.cache.lock();
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(hash, (Instant::now(), k.clone()));
                k
            }
        };
        if key.revoked_at_ms.is_some() {
            return Err(Error::Unauthenticated("this API key has been revoked".into()));
        }
        Ok(Principal { key_id: key.id, tenant_id: key.tenant_id, role: key.role, limits: key.limits })
    }

    /// On first start (no active owner key), creates the `default` tenant and an owner key.
    /// Uses `preset` as the secret when given (e.g. from `CAIRN_ADMIN_KEY`); returns the secret
    /// only when it generated one, so the caller can show it exactly once.
    pub async fn bootstrap(&self, preset: Option<&str>) -> Result<Option<String>> {
        if let Some(p) = preset {
            let known = self.store.find_key_by_hash(&hash_secret(p)).await?;
            if known.as_ref().is_some_and(|k| k.role == Role::Owner && k.revoked_at_ms.is_none()) {
                return Ok(None);
            }
            if !p.starts_with(KEY_PREFIX) || p.len() < KEY_PREFIX.len() + 32 {
                return Err(Error::invalid(format!(
                    "CAIRN_ADMIN_KEY must start with '{KEY_PREFIX}' and have at least 32 more characters"
                )));
            }
        } else if self.store.count_active_owner_keys().await? > 0 {
            return Ok(None);
        }
        if self.store.get_tenant(DEFAULT_TENANT).await?.is_none() {
            let t = Tenant { id: DEFAULT_TENANT.into(), name: "Default".into(), created_at_ms: now_ms() };
            match self.store.create_tenant(&t).await {
                // Another node bootstrapping at the same time created it first: fine.
                Ok(()) | Err(cairn_core::store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let new = NewKey {
            tenant_id: DEFAULT_TENANT.into(),
            name: "bootstrap owner".into(),
            role: Role::Owner,
            limits: KeyLimits::default(),
        };
        let secret = preset.map(str::to_owned).unwrap_or_else(generate_secret);
        self.insert_key(new, &secret).await?;
        Ok(preset.is_none().then_some(secret))
    }

    /// Creates a tenant (owners only).
    pub async fn create_tenant(&self, caller: &Principal, id: &str, name: Option<&str>) -> Result<Tenant> {
        caller.require(Role::Owner)?;
        validate_tenant_id(id)?;
        let t = Tenant { id: id.into(), name: name.unwrap_or(id).into(), created_at_ms: now_ms() };
        self.store.create_tenant(&t).await?;
        tracing::info!(tenant = %t.id, by = %caller.key_id, "tenant created");
        let details = serde_json::json!({"name": t.name});
        audit::record(&*self.store, caller, &t.id, AuditAction::TenantCreate, &t.id, details).await;
        Ok(t)
    }

    /// Lists tenants: all for owners, only their own for others.
    pub async fn list_tenants(&self, caller: &Principal) -> Result<Vec<Tenant>> {
        let all = self.store.list_tenants().await?;
        Ok(all.into_iter().filter(|t| caller.sees(&t.id)).collect())
    }

    /// Creates a key and returns it with its secret, which is never shown again. Admins create
    /// keys for their own tenant, up to their own role; owners for any tenant.
    pub async fn create_key(&self, caller: &Principal, new: NewKey) -> Result<(ApiKey, String)> {
        caller.administers(&new.tenant_id)?;
        if new.role > caller.role {
            return Err(Error::Forbidden(format!(
                "a '{}' key cannot create a '{}' key",
                caller.role.as_str(),
                new.role.as_str()
            )));
        }
        if new.name.chars().count() > 200 {
            return Err(Error::invalid_param("name", "name must be at most 200 characters"));
        }
        if new.limits.monthly_budget_usd.is_some_and(|b| !(0.0..=MAX_MONTHLY_BUDGET_USD).contains(&b)) {
            return Err(Error::invalid_param(
                "limits.monthly_budget_usd",
                format!("budget must be a number from 0 to {MAX_MONTHLY_BUDGET_USD}"),
            ));
        }
        if new.limits.requests_per_minute.is_some_and(|r| r > MAX_REQUESTS_PER_MINUTE) {
            return Err(Error::invalid_param(
                "limits.requests_per_minute",
                format!("requests_per_minute must be at most {MAX_REQUESTS_PER_MINUTE}"),
            ));
        }
        if new.limits.tokens_per_minute.is_some_and(|t| t > MAX_TOKENS_PER_MINUTE) {
            return Err(Error::invalid_param(
                "limits.tokens_per_minute",
                format!("tokens_per_minute must be at most {MAX_TOKENS_PER_MINUTE}"),
            ));
        }
        new.limits.guards.check("limits.guards").map_err(|e| Error::invalid_param("limits.guards", e))?;
        if self.store.get_tenant(&new.tenant_id).await?.is_none() {
            return Err(Error::NotFound(format!("tenant '{}' does not exist", new.tenant_id)));
        }
        let secret = generate_secret();
        let key = self.insert_key(new, &secret).await?;
        tracing::info!(key = %key.id, tenant = %key.tenant_id, role = key.role.as_str(), by = %caller.key_id, "key created");
        // Who got which powers and budget: never the secret or its hash.
        let details = serde_json::json!({"name": key.name, "role": key.role.as_str(), "limits": key.limits});
        audit::record(&*self.store, caller, &key.tenant_id, AuditAction::KeyCreate, &key.id, details).await;
        Ok((key, secret))
    }

    async fn insert_key(&self, new: NewKey, secret: &str) -> Result<ApiKey> {
        let key = ApiKey {
            id: format!("key_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: new.tenant_id,
            name: new.name,
            role: new.role,
            prefix: display_prefix(secret),
            hash: hash_secret(secret),
            limits: new.limits,
            created_at_ms: now_ms(),
            revoked_at_ms: None,
        };
        self.store.insert_key(&key).await?;
        Ok(key)
    }

    /// Lists keys: of the admin's own tenant, or of one tenant or all for owners.
    pub async fn list_keys(&self, caller: &Principal, tenant_id: Option<&str>) -> Result<Vec<ApiKey>> {
        caller.require(Role::Admin)?;
        let tenant = caller.readable_tenant(tenant_id)?;
        Ok(self.store.list_keys(tenant.as_deref()).await?)
    }

    /// Revokes a key (admins only); it stops working on this node at once, and on other nodes
    /// within the key cache TTL.
    pub async fn revoke_key(&self, caller: &Principal, id: &str) -> Result<ApiKey> {
        caller.require(Role::Admin)?;
        // Another tenant's key is as good as missing to a tenant admin.
        let not_found = || Error::NotFound(format!("key '{id}' does not exist"));
        let existing = self.store.get_key(id).await?.ok_or_else(not_found)?;
        if !caller.sees(&existing.tenant_id) {
            return Err(not_found());
        }
        if existing.role > caller.role {
            return Err(Error::Forbidden("an admin key cannot revoke an owner key".into()));
        }
        let key = self.store.revoke_key(id, now_ms()).await?;
        self.cache.lock().remove(&key.hash);
        tracing::info!(key = %key.id, by = %caller.key_id, "key revoked");
        let details = serde_json::json!({"name": key.name, "role": key.role.as_str()});
        audit::record(&*self.store, caller, &key.tenant_id, AuditAction::KeyRevoke, &key.id, details).await;
        Ok(key)
    }
}
