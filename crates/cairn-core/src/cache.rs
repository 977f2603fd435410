//! The response cache: what a request asks of it, what it did, and the storage port.
//!
//! Entries are keyed by tenant and a SHA-256 of the normalised request (see the gateway's
//! `cache` module), so two tenants never share one, and each holds one complete response as
//! the upstream gave it, with what it cost then (a hit costs nothing; the saving is counted).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::StoreResult;
use crate::{Error, Result};

/// Longest namespace name.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// What one request asks of the cache: the `cairn.cache` field of a chat request, merged with
/// the `Cache-Control` header (`no-cache`, `no-store`, `max-age=N`, and Cairn's `ttl=N` and
/// `namespace=NAME`). Kebab-case names are accepted too, as LiteLLM spells them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheControl {
    /// Do not answer from the cache; the fresh answer is still stored.
    #[serde(default, alias = "no-cache")]
    pub no_cache: bool,
    /// Neither answer from the cache nor store the answer.
    #[serde(default, alias = "no-store")]
    pub no_store: bool,
    /// Seconds to keep this answer (at most the model's `cache.max_ttl_s`); default the
    /// model's `cache.ttl_s`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31536000)]
    pub ttl: Option<u32>,
    /// Answer from an entry only if it is at most this many seconds old.
    #[serde(default, alias = "max-age", alias = "s-maxage")]
    #[schema(minimum = 0, maximum = 31536000)]
    pub max_age: Option<u32>,
    /// Entries live apart per namespace: a request sees only its namespace's entries.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:-]+$")]
    pub namespace: Option<String>,
}

impl CacheControl {
    /// Parses a `Cache-Control` header value. Unknown directives are ignored, as HTTP asks;
    /// a known one with a bad value is refused.
    pub fn from_header(value: &str) -> Result<Self> {
        let mut c = CacheControl::default();
        let bad = |what: &str| Error::invalid_param("Cache-Control", format!("bad {what} directive"));
        for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let seconds = |what: &str| arg.and_then(|a| a.parse::<u32>().ok()).ok_or_else(|| bad(what));
            match name.to_ascii_lowercase().as_str() {
                "no-cache" => c.no_cache = true,
                "no-store" => c.no_store = true,
                "max-age" | "s-maxage" => c.max_age = Some(seconds("max-age")?),
                "ttl" => c.ttl = Some(seconds("ttl")?),
                "namespace" => c.namespace = Some(arg.ok_or_else(|| bad("namespace"))?.to_owned()),
                _ => {}
            }
        }
        c.validate("Cache-Control")?;
        Ok(c)
    }

    /// This request's wishes with `more` (the other place they can be given) added: either
    /// one's `no-cache` or `no-store` holds, the stricter age wins, and `self`'s TTL and
    /// namespace win over `more`'s.
    pub fn merge(self, more: CacheControl) -> Self {
        CacheControl {
            no_cache: self.no_cache || more.no_cache,
            no_store: self.no_store || more.no_store,
            ttl: self.ttl.or(more.ttl),
            max_age: match (self.max_age, more.max_age) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            namespace: self.namespace.or(more.namespace),
        }
    }

    /// Checks the values; `param` names where they came from in the error.
    pub fn validate(&self, param: &str) -> Result<()> {
        if self.ttl == Some(0) {
            return Err(Error::invalid_param(param, "ttl must be at least 1 second (use no-store to keep nothing)"));
        }
        if let Some(ns) = &self.namespace {
            let fine = !ns.is_empty()
                && ns.len() <= MAX_NAMESPACE_LEN
                && ns.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
            if !fine {
                return Err(Error::invalid_param(
                    param,
                    format!("namespace must be 1-{MAX_NAMESPACE_LEN} characters of A-Z a-z 0-9 . _ : -"),
                ));
            }
        }
        Ok(())
    }
}

/// What the cache did for one response (the `x-cairn-cache` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    /// Answered from the cache.
    Hit,
    /// Looked up and not found (the answer is stored unless `no-store`).
    Miss,
    /// Not read: the model has no cache, the request is not cacheable (sampled), or it said
    /// `no-cache` or `no-store`.
    Bypass,
}

impl CacheStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// The SHA-256 of a normalised request, in hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub String);

/// One stored response.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntry {
    /// Whose entry it is.
    pub tenant_id: String,
    /// The request's key.
    pub key: CacheKey,
    /// Namespace (empty: the default one).
    pub namespace: String,
    /// Model alias asked for.
    pub model: String,
    /// Provider that answered.
    pub provider: String,
    /// Upstream model that answered.
    pub upstream_model: String,
    /// The response body as the gateway returns it (JSON).
    pub body: String,
    /// What the call that made it cost, in US dollars.
    pub cost_usd: f64,
    /// When it was stored, Unix ms.
    pub created_ms: i64,
    /// When it stops being served, Unix ms.
    pub expires_ms: i64,
}

/// How a stored entry can be found besides its exact key, and what it was built on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntryIndex {
    /// Found by meaning too (the semantic cache), when its alias has one.
    pub semantic: Option<SemanticIndex>,
    /// Knowledge collections the answer was built from: a change to any deletes the entry.
    pub collections: Vec<String>,
}

/// What the semantic cache finds an entry by.
#[derive(Clone, Debug, PartialEq)]
pub struct SemanticIndex {
    /// The hash of everything a semantic hit must share exactly: tenant, namespace, alias,
    /// system prompt, tools, parameters and earlier turns (all but the last user turn).
    pub key: CacheKey,
    /// The last user turn, as asked.
    pub question: String,
    /// Its embedding.
    pub vector: Vec<f32>,
}

/// An entry the semantic cache may answer from: one with the same semantic key.
#[derive(Clone, Debug, PartialEq)]
pub struct SemanticCandidate {
    /// The entry's exact key.
    pub key: CacheKey,
    /// The question it answered.
    pub question: String,
    /// That question's embedding.
    pub vector: Vec<f32>,
    /// When it was stored, Unix ms.
    pub created_ms: i64,
}

/// What to remove from a tenant's cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachePurge {
    /// Only this namespace (`Some("")` is the default one); every namespace when `None`.
    pub namespace: Option<String>,
    /// Only this model alias.
    pub model: Option<String>,
}

/// Storage of cached responses.
#[async_trait]
pub trait ResponseCacheStore: Send + Sync {
    /// The tenant's unexpired entry under `key`, if any.
    async fn cache_get(&self, tenant: &str, key: &CacheKey, now_ms: i64) -> StoreResult<Option<CacheEntry>>;
    /// Stores `entry`, replacing one under the same key, findable as `index` says.
    async fn cache_put(&self, entry: &CacheEntry, index: &EntryIndex) -> StoreResult<()>;
    /// The tenant's unexpired entries under semantic key `key`, newest first, at most `limit`.
    async fn cache_similar(
        &self,
        tenant: &str,
        key: &CacheKey,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<SemanticCandidate>>;
    /// Removes the tenant's entries that `what` selects; returns how many.
    async fn cache_purge(&self, tenant: &str, what: &CachePurge) -> StoreResult<u64>;
    /// Removes up to `limit` entries expired before `now_ms`; returns how many.
    async fn cache_sweep(&self, now_ms: i64, limit: u32) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_headers_parse_like_http() {
        let c = CacheControl::from_header("No-Cache, max-age=30, ttl=\"600\", namespace=v2, private").expect("parse");
        assert_eq!(
            c,
            CacheControl {
                no_cache: true,
                no_store: false,
                ttl: Some(600),
                max_age: Some(30),
                namespace: Some("v2".into())
            }
        );
        assert!(CacheControl::from_header("no-store").expect("parse").no_store);
        assert_eq!(CacheControl::from_header("").expect("empty"), CacheControl::default());
        for bad in ["max-age=soon", "ttl=0", "ttl=-1", "namespace=a b", "namespace", "ttl=99999999999"] {
            assert!(CacheControl::from_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merging_keeps_the_stricter_wish() {
        let body = CacheControl { ttl: Some(5), max_age: Some(100), namespace: Some("a".into()), ..Default::default() };
        let header =
            CacheControl { no_store: true, max_age: Some(10), namespace: Some("b".into()), ..Default::default() };
        let m = body.merge(header);
        assert!(m.no_store && !m.no_cache);
        assert_eq!((m.ttl, m.max_age, m.namespace.as_deref()), (Some(5), Some(10), Some("a")));
    }
}
