//! The response cache's part of the conformance suite.

use std::sync::Arc;

use cairn_core::cache::{CacheEntry, CacheKey, CachePurge, EntryIndex, SemanticIndex};
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
    s.cache_put(&entry("acme", "k1", "", "fast", now + 1), &EntryIndex::default()).await.unwrap();
    s.cache_put(&entry("acme", "k2", "v2", "fast", now + 1_000), &EntryIndex::default()).await.unwrap();
    s.cache_put(&entry("acme", "k3", "", "smart", now + 1_000), &EntryIndex::default()).await.unwrap();
    s.cache_put(&entry("globex", "k1", "", "fast", now + 1_000), &EntryIndex::default()).await.unwrap();
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
    s.cache_put(&fresh, &EntryIndex::default()).await.unwrap();
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
        s.cache_put(&entry("acme", &format!("old{i}"), "", "fast", now - 1), &EntryIndex::default()).await.unwrap();
    }
    assert_eq!(s.cache_sweep(now, 3).await.unwrap(), 3);
    assert_eq!(s.cache_sweep(now, 3).await.unwrap(), 2);
    assert_eq!(s.cache_sweep(now, 3).await.unwrap(), 0);
    assert!(s.cache_get("globex", &CacheKey("k1".into()), now).await.unwrap().is_some());
}

fn semantic(key: &str, question: &str, vector: Vec<f32>) -> EntryIndex {
    EntryIndex {
        semantic: Some(SemanticIndex { key: CacheKey(key.into()), question: question.into(), vector }),
        collections: vec![],
    }
}

/// Entries found by semantic key (newest first, unexpired, per tenant), and entries built on
/// a knowledge collection deleted when it changes.
pub(crate) async fn semantic_cache(s: Arc<dyn Store>) {
    let now = 10_000;
    let put = |key: &str, created_ms: i64, expires_ms: i64| CacheEntry {
        created_ms,
        ..entry("acme", key, "", "fast", expires_ms)
    };
    s.cache_put(&put("q1", 1, now + 1_000), &semantic("s", "capital of France?", vec![1.0, 0.0])).await.unwrap();
    s.cache_put(&put("q2", 2, now + 1_000), &semantic("s", "France's capital?", vec![0.9, 0.1])).await.unwrap();
    s.cache_put(&put("q3", 3, now - 1), &semantic("s", "expired", vec![0.0, 1.0])).await.unwrap();
    s.cache_put(&put("q4", 4, now + 1_000), &semantic("other", "other prompt", vec![1.0, 0.0])).await.unwrap();
    let theirs = CacheEntry { tenant_id: "globex".into(), ..put("q5", 5, now + 1_000) };
    s.cache_put(&theirs, &semantic("s", "theirs", vec![1.0, 0.0])).await.unwrap();
    let found = s.cache_similar("acme", &CacheKey("s".into()), now, 10).await.unwrap();
    assert_eq!(found.iter().map(|c| c.key.0.as_str()).collect::<Vec<_>>(), ["q2", "q1"], "newest first, own tenant");
    assert_eq!((found[0].question.as_str(), found[0].vector.clone()), ("France's capital?", vec![0.9, 0.1]));
    assert_eq!(s.cache_similar("acme", &CacheKey("s".into()), now, 1).await.unwrap().len(), 1, "limited");

    // Built on a collection: deleted in the same transaction as the collection's change.
    s.create_collection(&super::collection("col_cache", "acme", "cached")).await.unwrap();
    let grounded = EntryIndex { collections: vec!["col_cache".into()], ..semantic("s", "grounded", vec![1.0, 0.0]) };
    s.cache_put(&put("g1", 6, now + 1_000), &grounded).await.unwrap();
    assert!(s.cache_get("acme", &CacheKey("g1".into()), now).await.unwrap().is_some());
    s.put_document(&super::document("dc", "col_cache", "Doc")).await.unwrap();
    s.replace_chunks(&super::doc_key("col_cache", "dc", 1), "fp", &[], 7).await.unwrap();
    assert!(s.cache_get("acme", &CacheKey("g1".into()), now).await.unwrap().is_none(), "invalidated by the change");
    assert!(s.cache_get("acme", &CacheKey("q1".into()), now).await.unwrap().is_some(), "others stay");
    s.cache_put(&put("g2", 8, now + 1_000), &grounded).await.unwrap();
    assert!(s.delete_collection("col_cache", 9).await.unwrap());
    assert!(s.cache_get("acme", &CacheKey("g2".into()), now).await.unwrap().is_none(), "and by deleting it");
    assert_eq!(s.cache_purge("acme", &CachePurge::default()).await.unwrap(), 4);
}
