//! `[models.NAME.cache]`: the exact response cache of one model alias.

use serde::{Deserialize, Serialize};

/// The response cache of one model alias; absent means the alias is never cached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// Seconds an entry is served, unless the request asks for less (`ttl`).
    pub ttl_s: u32,
    /// Longest `ttl` a request may ask for.
    pub max_ttl_s: u32,
    /// Also cache chat requests that sample (`temperature` above 0, or unset, which samples at
    /// the provider's default of 1): their answers would differ between calls, so a hit
    /// replays one of many possible answers. Embeddings are always cacheable.
    pub sampled: bool,
    /// Largest response stored, in bytes of JSON; bigger ones are served but not kept.
    pub max_entry_bytes: usize,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        Self { ttl_s: 3_600, max_ttl_s: 7 * 86_400, sampled: false, max_entry_bytes: 1 << 20 }
    }
}

impl ModelCacheConfig {
    /// Checks the settings of model `alias`.
    pub fn check(&self, alias: &str) -> Result<(), String> {
        if self.ttl_s == 0 || self.max_ttl_s == 0 {
            return Err(format!("models.{alias}.cache: ttl_s and max_ttl_s must be at least 1"));
        }
        if self.ttl_s > self.max_ttl_s {
            return Err(format!("models.{alias}.cache: ttl_s ({}) exceeds max_ttl_s ({})", self.ttl_s, self.max_ttl_s));
        }
        if self.max_entry_bytes == 0 {
            return Err(format!("models.{alias}.cache: max_entry_bytes must be at least 1"));
        }
        Ok(())
    }
}
