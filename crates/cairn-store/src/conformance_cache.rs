//! The response cache's part of the conformance suite.

use std::sync::Arc;

use cairn_core::cache::{CacheEntry, CacheKey, CachePurge};
use cairn_core::store::Store;

fn entry(tenant: &str, key: &str, namespace: &str, model: &str, expires_ms: i64) -> CacheEntry {
    CacheEntry {
        tenant_id: tenant.into(),
        key: CacheKey(key.into()),
        namespace: namespace.into(),
        model: model.into(),
        provider: "up".into(),
        upstream_model: "up-model".into(),
        body: format!("{{\"answer\":\"{key}\"}}"),
        cost_usd: 0.19,
        created_ms: 1_000,
        expires_ms,
    }
}

/// Reads by tenant and key until expiry, replacement, purges by namespace and model, sweeps.
pub(crate) async fn response_cache(s: Arc<dyn Store>) {
    let now = 10_000;
    s.cache_put(&entry("acme", "k1", "", "fast", now + 1)).await.unwrap();
    s.cache_put(&entry("acme", "k2", "v2", "fast", now + 1_000)).await.unwrap();
    s.cache_put(&entry("acme", "k3", "", "smart", now + 1_000)).await.unwrap();
    s.cache_put(&entry("globex", "k1", "", "fast", now + 1_000)).await.unwrap();
    let got = s.cache_get("acme", &CacheKey("k1".into()), now).await.unwrap();
    assert_eq!(got, Some(entry("acme", "k1", "", "fast", now + 1)));
    assert_eq!(
        s.cache_get("acme", &CacheKey("k1".into()), now + 1).await.unwrap(),
        None,
        "expired entries never answer"
    );
    assert_eq!(s.cache_get("umbrella", &CacheKey("k2".into()), now).await.unwrap(), None, "tenants never share");
    // A put under the same key replaces the entry (a refresh after no-cache).
    let fresh = CacheEntry {
        body: "{\"answer\":\"fresh\"}".into(),
        created_ms: 5_000,
        ..entry("acme", "k1", "", "fast", now + 500)
    };
    s.cache_put(&fresh).await.unwrap();
    assert_eq!(s.cache_get("acme", &CacheKey("k1".into()), now).await.unwrap(), Some(fresh));

    let purge = |namespace: Option<&str>, model: Option<&str>| CachePurge {
        namespace: namespace.map(str::to_owned),
        model: model.map(str::to_owned),
    };
    assert_eq!(s.cache_purge("acme", &purge(Some("v2"), None)).await.unwrap(), 1);
    assert_eq!(s.cache_purge("acme", &purge(Some(""), Some("smart"))).await.unwrap(), 1);
    assert_eq!(s.cache_get("acme", &CacheKey("k1".into()), now).await.unwrap().map(|e| e.model), Some("fast".into()));
    assert_eq!(s.cache_purge("acme", &purge(None, None)).await.unwrap(), 1);
    assert!(s.cache_get("globex", &CacheKey("k1".into()), now).await.unwrap().is_some(), "a purge stays in its tenant");

    // Sweeps remove expired entries only, a batch at a time.
    for i in 0..5 {
        s.cache_put(&entry("acme", &format!("old{i}"), "", "fast", now - 1)).await.unwrap();
    }
    assert_eq!(s.cache_sweep(now, 3).await.unwrap(), 3);
    assert_eq!(s.cache_sweep(now, 3).await.unwrap(), 2);
    assert_eq!(s.cache_sweep(now, 3).await.unwrap(), 0);
    assert!(s.cache_get("globex", &CacheKey("k1".into()), now).await.unwrap().is_some());
}
