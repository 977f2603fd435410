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
    /// Also answer questions asked in other words; absent: exact matches only.
    pub semantic: Option<SemanticCacheConfig>,
}

/// `[models.NAME.cache.semantic]`: answer a chat question from the cached answer to an earlier
/// one that is similar (embedding similarity at or above `threshold`) and agrees with it
/// (numbers, polarity, direction, every content word matched), with the same system prompt,
/// tools, parameters and earlier turns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemanticCacheConfig {
    /// The embedding model alias questions are embedded with.
    pub embedding: String,
    /// Least cosine similarity of a hit.
    pub threshold: f32,
    /// Most earlier messages (besides system and developer ones) a conversation may have and
    /// still be matched; they must equal the cached conversation's exactly, since an answer can
    /// hang on any of them. Longer conversations use the exact cache only.
    pub context_messages: usize,
    /// Most recent entries compared per lookup, per system prompt, tools and parameters.
    pub max_candidates: usize,
}

impl SemanticCacheConfig {
    /// The threshold `cairn eval semantic-cache` measured as keeping false hits under 1% of hits.
    pub const DEFAULT_THRESHOLD: f32 = 0.85;
}

impl Default for SemanticCacheConfig {
    fn default() -> Self {
        Self {
            embedding: "local/minilm".into(),
            threshold: Self::DEFAULT_THRESHOLD,
            context_messages: 4,
            max_candidates: 1_000,
        }
    }
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        Self { ttl_s: 3_600, max_ttl_s: 7 * 86_400, sampled: false, max_entry_bytes: 1 << 20, semantic: None }
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
        if let Some(s) = &self.semantic {
            if !(s.threshold > 0.0 && s.threshold <= 1.0) {
                return Err(format!("models.{alias}.cache.semantic: threshold must be in (0, 1]"));
            }
            if s.max_candidates == 0 || s.max_candidates > 100_000 {
                return Err(format!("models.{alias}.cache.semantic: max_candidates must be 1 to 100000"));
            }
            if s.context_messages > 64 {
                return Err(format!("models.{alias}.cache.semantic: context_messages must be at most 64"));
            }
        }
        Ok(())
    }
}
