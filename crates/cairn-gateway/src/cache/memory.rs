//! The response cache's in-process tier: recently used entries kept in memory, least recently
//! used dropped first past a byte budget, so a hit on a hot entry never waits on storage.
//! Storage stays the truth: an entry is served from memory for at most `fresh_for` after it
//! was read or written here, then read again, so a purge or refresh made on another node
//! reaches this one within that time (on this node, at once).

use std::time::Duration;

use cairn_core::cache::{CacheEntry, CacheKey, CachePurge};
use hashlink::LinkedHashMap;
use parking_lot::Mutex;

/// Bytes an entry is reckoned to take besides its body and names.
const ENTRY_OVERHEAD: usize = 256;

/// Recently used entries of every tenant, bounded in bytes.
pub(crate) struct MemoryTier {
    inner: Mutex<Inner>,
    budget: usize,
    fresh_for_ms: i64,
}

#[derive(Default)]
struct Inner {
    /// By tenant and key, least recently used first.
    map: LinkedHashMap<(String, String), Slot>,
    bytes: usize,
}

struct Slot {
    entry: CacheEntry,
    /// When this node read or wrote it (Unix ms).
    seen_ms: i64,
}

fn size(e: &CacheEntry) -> usize {
    e.body.len() + e.key.0.len() + e.tenant_id.len() + e.namespace.len() + e.model.len() + ENTRY_OVERHEAD
}

impl MemoryTier {
    /// A tier of at most `budget` bytes, serving an entry for `fresh_for` after it was seen.
    pub(crate) fn new(budget: usize, fresh_for: Duration) -> Self {
        Self { inner: Mutex::default(), budget, fresh_for_ms: fresh_for.as_millis() as i64 }
    }

    /// The entry for `tenant` and `key`, if held, unexpired and seen within `fresh_for`.
    pub(crate) fn get(&self, tenant: &str, key: &CacheKey, now_ms: i64) -> Option<CacheEntry> {
        let mut inner = self.inner.lock();
        let id = (tenant.to_owned(), key.0.clone());
        let usable = match inner.map.get(&id) {
            None => return None,
            Some(slot) => slot.entry.expires_ms > now_ms && now_ms - slot.seen_ms < self.fresh_for_ms,
        };
        if !usable {
            if let Some(slot) = inner.map.remove(&id) {
                inner.bytes -= size(&slot.entry);
            }
            return None;
        }
        inner.map.to_back(&id).map(|slot| slot.entry.clone())
    }

    /// Holds `entry`, seen now, dropping the least recently used past the budget.
    pub(crate) fn put(&self, entry: CacheEntry, now_ms: i64) {
        let bytes = size(&entry);
        if bytes > self.budget {
            return;
        }
        let mut inner = self.inner.lock();
        let id = (entry.tenant_id.clone(), entry.key.0.clone());
        if let Some(old) = inner.map.insert(id, Slot { entry, seen_ms: now_ms }) {
            inner.bytes -= size(&old.entry);
        }
        inner.bytes += bytes;
        while inner.bytes > self.budget {
            match inner.map.pop_front() {
                Some((_, slot)) => inner.bytes -= size(&slot.entry),
                None => break,
            }
        }
    }

    /// Forgets `tenant`'s entries that `what` selects.
    pub(crate) fn purge(&self, tenant: &str, what: &CachePurge) {
        let mut inner = self.inner.lock();
        let mut freed = 0;
        inner.map.retain(|(t, _), slot| {
            let e = &slot.entry;
            let hit = t == tenant
                && what.namespace.as_ref().is_none_or(|ns| *ns == e.namespace)
                && what.model.as_ref().is_none_or(|m| *m == e.model);
            if hit {
                freed += size(e);
            }
            !hit
        });
        inner.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: &str, key: &str, body_len: usize, expires_ms: i64) -> CacheEntry {
        CacheEntry {
            tenant_id: tenant.into(),
            key: CacheKey(key.into()),
            namespace: String::new(),
            model: "m".into(),
            provider: "p".into(),
            upstream_model: "u".into(),
            body: "x".repeat(body_len),
            cost_usd: 0.0,
            created_ms: 0,
            expires_ms,
        }
    }

    #[test]
    fn entries_are_served_until_expiry_or_staleness_and_tenants_stay_apart() {
        let tier = MemoryTier::new(1 << 20, Duration::from_millis(100));
        tier.put(entry("acme", "k", 10, 1_000), 0);
        assert!(tier.get("acme", &CacheKey("k".into()), 50).is_some());
        assert!(tier.get("globex", &CacheKey("k".into()), 50).is_none());
        assert!(tier.get("acme", &CacheKey("k".into()), 100).is_none(), "read again from storage after fresh_for");
        tier.put(entry("acme", "k", 10, 1_000), 990);
        assert!(tier.get("acme", &CacheKey("k".into()), 1_000).is_none(), "expired");
        assert_eq!(tier.inner.lock().bytes, 0, "dropped entries give their bytes back");
    }

    #[test]
    fn the_least_recently_used_go_first_past_the_budget() {
        let one = size(&entry("acme", "a", 100, 9));
        let tier = MemoryTier::new(2 * one, Duration::from_secs(60));
        tier.put(entry("acme", "a", 100, 9_999), 0);
        tier.put(entry("acme", "b", 100, 9_999), 0);
        assert!(tier.get("acme", &CacheKey("a".into()), 1).is_some()); // a is now the most recent
        tier.put(entry("acme", "c", 100, 9_999), 0);
        assert!(tier.get("acme", &CacheKey("b".into()), 1).is_none(), "b was least recently used");
        assert!(tier.get("acme", &CacheKey("a".into()), 1).is_some());
        tier.put(entry("acme", "huge", 10 * one, 9_999), 0);
        assert!(tier.get("acme", &CacheKey("huge".into()), 1).is_none(), "bigger than the budget: never held");
        tier.purge("acme", &CachePurge::default());
        assert_eq!(tier.inner.lock().bytes, 0);
    }
}
