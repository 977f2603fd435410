//! Per-key rate buckets in Redis (`RateStore`).

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::config::RedisConfig;
use cairn_core::store::{RateKind, RateStore, RateTake, StoreError, StoreResult};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

/// Token buckets shared by every node on one Redis (see the crate docs); a cheap handle over
/// one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisRates {
    conn: ConnectionManager,
    prefix: String,
    bucket: Script,
    timeout: Duration,
}

impl std::fmt::Debug for RedisRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's URL may hold a password: never printed.
        f.debug_struct("RedisRates").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisRates {
    /// Connects to `cfg.url`; fails (naming the URL without its password) when Redis does
    /// not answer within `cfg.timeout_ms`.
    pub async fn connect(cfg: &RedisConfig) -> Result<Self, String> {
        let failed = |e: redis::RedisError| format!("connecting to Redis at {}: {e}", cfg.redacted_url());
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let client = match &cfg.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("reading redis.ca_file {}: {e}", path.display()))?;
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(cfg.url.as_str(), certs).map_err(failed)?
            }
            // `rediss://` without a CA file trusts the system's certificate store.
            None => redis::Client::open(cfg.url.as_str()).map_err(failed)?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(timeout);
        let conn = tokio::time::timeout(timeout * 2, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| format!("connecting to Redis at {}: no answer within {timeout:?}", cfg.redacted_url()))?
            .map_err(failed)?;
        let rates =
            Self { conn, prefix: cfg.key_prefix.clone(), bucket: Script::new(include_str!("bucket.lua")), timeout };
        rates.ping().await.map_err(|e| format!("connecting to Redis at {}: {e}", cfg.redacted_url()))?;
        Ok(rates)
    }

    /// Checks Redis answers (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let pong: String = self.bounded(redis::cmd("PING").query_async(&mut conn)).await?;
        match pong.as_str() {
            "PONG" => Ok(()),
            other => Err(StoreError::Backend(format!("redis answered PING with {other:?}"))),
        }
    }

    /// The bucket's Redis key. The API key's id is a hash tag (`{...}`), so that a key's
    /// buckets share a Redis Cluster slot and one script may take from both.
    fn key(&self, key_id: &str, kind: RateKind) -> String {
        format!("{}rate:{{{key_id}}}:{}", self.prefix, kind.as_str())
    }

    /// Runs the bucket script (`bucket.lua`) with `op` at `now_ms` over the key's buckets, each
    /// `(kind, per minute, need, amount)`: `(done, level, index of the refused bucket)`.
    async fn run(
        &self,
        key_id: &str,
        op: &str,
        now_ms: i64,
        buckets: &[(RateKind, f64, f64, f64)],
    ) -> StoreResult<(bool, f64, usize)> {
        let mut conn = self.conn.clone();
        let mut call = self.bucket.prepare_invoke();
        call.arg(op).arg(now_ms);
        for (kind, per_minute, need, amount) in buckets {
            call.key(self.key(key_id, *kind)).arg(per_minute).arg(need).arg(amount);
        }
        let (ok, level, index): (i64, String, i64) = self.bounded(call.invoke_async(&mut conn)).await?;
        let level =
            level.parse::<f64>().map_err(|_| StoreError::Backend(format!("bad bucket level {level:?} from redis")))?;
        Ok((ok == 1, level, usize::try_from(index).unwrap_or(0)))
    }

    /// `fut`, failing as a storage error after the configured timeout.
    async fn bounded<T>(&self, fut: impl std::future::Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Backend(format!("redis: {e}"))),
            Err(_) => Err(StoreError::Backend(format!("redis: no answer within {:?}", self.timeout))),
        }
    }
}

#[async_trait]
impl RateStore for RedisRates {
    async fn take_rate(&self, key_id: &str, kind: RateKind, t: RateTake) -> StoreResult<Result<f64, f64>> {
        let (taken, level, _) = self.run(key_id, "take", t.now_ms, &[(kind, t.per_minute, t.need, t.take)]).await?;
        Ok(if taken { Ok(level) } else { Err(level) })
    }

    async fn take_rates(&self, key_id: &str, takes: &[(RateKind, RateTake)]) -> StoreResult<Result<(), (usize, f64)>> {
        let Some((_, first)) = takes.first() else { return Ok(Ok(())) };
        let buckets: Vec<_> = takes.iter().map(|(kind, t)| (*kind, t.per_minute, t.need, t.take)).collect();
        let (taken, level, refused) = self.run(key_id, "take", first.now_ms, &buckets).await?;
        Ok(if taken { Ok(()) } else { Err((refused, level)) })
    }

    async fn add_rate(
        &self,
        key_id: &str,
        kind: RateKind,
        per_minute: f64,
        amount: f64,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.run(key_id, "add", now_ms, &[(kind, per_minute, 0.0, amount)]).await.map(|_| ())
    }

    async fn ping_rates(&self) -> StoreResult<()> {
        self.ping().await
    }
}
