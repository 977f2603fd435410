//! The access service over a real SQLite store: bootstrap, authentication, roles, revocation.

use std::sync::Arc;
use std::time::Duration;

use cairn_access::{AccessService, NewKey};
use cairn_core::tenancy::{KeyLimits, Role};
use cairn_core::Error;

async fn service(ttl: Duration) -> (AccessService, Arc<dyn cairn_core::store::Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let store = cairn_store::open(&url, 2).await.unwrap();
    (AccessService::new(store.clone(), ttl), store, dir)
}

fn new_key(tenant: &str, role: Role) -> NewKey {
    NewKey { tenant_id: tenant.into(), name: "k".into(), role, limits: KeyLimits::default() }
}

#[tokio::test]
async fn bootstrap_creates_one_owner_key_once() {
    let (svc, store, _d) = service(Duration::from_secs(5)).await;
    let secret = svc.bootstrap(None).await.unwrap().expect("first start generates a key");
    let p = svc.authenticate(&secret).await.unwrap();
    assert_eq!((p.role, p.tenant_id.as_str()), (Role::Owner, "default"));
    assert_eq!(svc.bootstrap(None).await.unwrap(), None, "never a second bootstrap key");
    assert_eq!(store.count_active_owner_keys().await.unwrap(), 1);
    // Only the hash is stored.
    let stored = &store.list_keys(None).await.unwrap()[0];
    assert_ne!(stored.hash, secret);
    assert!(!stored.hash.contains(&secret[9..]));
}

#[tokio::test]
async fn bootstrap_takes_a_preset_key() {
    let (svc, _s, _d) = service(Duration::from_secs(5)).await;
    let preset = "sk-cairn-preset0000000000000000000000000000000000";
    assert_eq!(svc.bootstrap(Some(preset)).await.unwrap(), None, "a preset key is not printed");
    assert_eq!(svc.authenticate(preset).await.unwrap().role, Role::Owner);
    assert_eq!(svc.bootstrap(Some(preset)).await.unwrap(), None, "idempotent across restarts");
    assert!(matches!(svc.bootstrap(Some("short")).await, Err(Error::InvalidRequest { .. })));
}

#[tokio::test]
async fn roles_are_checked_in_the_service() {
    let (svc, _s, _d) = service(Duration::from_secs(5)).await;
    let admin = AccessService::operator();
    svc.create_tenant(&admin, "acme", None).await.unwrap();
    svc.create_tenant(&admin, "globex", None).await.unwrap();
    let (_, member_secret) = svc.create_key(&admin, new_key("acme", Role::Member)).await.unwrap();
    let member = svc.authenticate(&member_secret).await.unwrap();
    assert!(matches!(svc.create_key(&member, new_key("acme", Role::Admin)).await, Err(Error::Forbidden(_))));
    assert!(matches!(svc.create_tenant(&member, "x", None).await, Err(Error::Forbidden(_))));
    assert!(matches!(svc.list_keys(&member, None).await, Err(Error::Forbidden(_))));
    let visible: Vec<_> = svc.list_tenants(&member).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(visible, ["acme"], "members see only their own tenant");
    assert!(matches!(svc.create_key(&admin, new_key("ghost", Role::Member)).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn revocation_beats_the_cache() {
    let (svc, _s, _d) = service(Duration::from_secs(3600)).await;
    let admin = AccessService::operator();
    svc.create_tenant(&admin, "acme", None).await.unwrap();
    let (key, secret) = svc.create_key(&admin, new_key("acme", Role::Member)).await.unwrap();
    svc.authenticate(&secret).await.unwrap(); // now cached for an hour
    svc.revoke_key(&admin, &key.id).await.unwrap();
    assert!(matches!(svc.authenticate(&secret).await, Err(Error::Unauthenticated(_))));
    assert!(matches!(svc.authenticate("sk-cairn-unknown").await, Err(Error::Unauthenticated(_))));
    assert!(matches!(svc.authenticate("Bearer nope").await, Err(Error::Unauthenticated(_))));
}

#[tokio::test]
async fn a_tenant_admin_manages_its_own_tenant_only() {
    let (svc, _s, _d) = service(Duration::from_secs(5)).await;
    let owner = AccessService::operator();
    svc.create_tenant(&owner, "acme", None).await.unwrap();
    svc.create_tenant(&owner, "globex", None).await.unwrap();
    let (_, admin_secret) = svc.create_key(&owner, new_key("acme", Role::Admin)).await.unwrap();
    let (globex_key, _) = svc.create_key(&owner, new_key("globex", Role::Member)).await.unwrap();
    let admin = svc.authenticate(&admin_secret).await.unwrap();

    // Its own tenant: keys up to its own role.
    assert!(svc.create_key(&admin, new_key("acme", Role::Member)).await.is_ok());
    assert!(svc.create_key(&admin, new_key("acme", Role::Admin)).await.is_ok());
    assert!(matches!(svc.create_key(&admin, new_key("acme", Role::Owner)).await, Err(Error::Forbidden(_))));
    // Another tenant: nothing, and another tenant's key is as good as missing.
    assert!(matches!(svc.create_key(&admin, new_key("globex", Role::Admin)).await, Err(Error::Forbidden(_))));
    assert!(matches!(svc.create_tenant(&admin, "initech", None).await, Err(Error::Forbidden(_))));
    assert!(matches!(svc.list_keys(&admin, Some("globex")).await, Err(Error::Forbidden(_))));
    assert!(svc.list_keys(&admin, None).await.unwrap().iter().all(|k| k.tenant_id == "acme"));
    assert!(matches!(svc.revoke_key(&admin, &globex_key.id).await, Err(Error::NotFound(_))));
    let tenants: Vec<_> = svc.list_tenants(&admin).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(tenants, ["acme"]);
}
