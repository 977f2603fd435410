//! Shared rate buckets (`RateStore`), written once for SQLite and PostgreSQL. A bucket row holds
//! the level after its last change and when that was; every statement refills it
//! arithmetically to the caller's clock (capped at capacity) and takes or gives back in the same
//! atomic statement, so concurrent nodes never both spend the last request.

/// The bucket's level refilled to `now` (never backwards) at `per` per minute, capped at `per`:
/// SQL over the `rate_buckets` row, with the placeholders named.
pub(crate) fn refilled(per: &str, now: &str) -> String {
    let grown = format!(
        "(rate_buckets.level + (CASE WHEN {now} > rate_buckets.updated_ms THEN {now} - rate_buckets.updated_ms \
         ELSE 0 END) * {per} / 60000.0)"
    );
    format!("(CASE WHEN {grown} > {per} THEN {per} ELSE {grown} END)")
}

/// Implements `RateStore` for `$store` (with a `writer` pool) on `$db`.
macro_rules! impl_rate_store {
    ($store:ty, $db:ty) => {
        use cairn_core::store::{RateKind, RateStore, RateTake, StoreResult};
        use sqlx::Row;

        #[async_trait::async_trait]
        impl RateStore for $store {
            async fn take_rate(&self, key_id: &str, kind: RateKind, t: RateTake) -> StoreResult<Result<f64, f64>> {
                let level = $crate::rates_sql::refilled("$3", "$6");
                let sql = format!(
                    "INSERT INTO rate_buckets (key_id, kind, level, updated_ms) VALUES ($1, $2, $3 - $5, $6) \
                     ON CONFLICT (key_id, kind) DO UPDATE SET level = {level} - $5, \
                     updated_ms = CASE WHEN $6 > rate_buckets.updated_ms THEN $6 ELSE rate_buckets.updated_ms END \
                     WHERE {level} >= $4 RETURNING level"
                );
                let taken = sqlx::query(&sql)
                    .bind(key_id)
                    .bind(kind.as_str())
                    .bind(t.per_minute)
                    .bind(t.need)
                    .bind(t.take)
                    .bind(t.now_ms)
                    .fetch_optional(&mut *self.write_conn().await?)
                    .await
                    .map_err($crate::db_err)?;
                if let Some(r) = taken {
                    return Ok(Ok(r.try_get::<f64, _>("level").map_err($crate::db_err)?));
                }
                // Refused: the level it would have had, for the caller's retry time.
                let sql = format!(
                    "SELECT {} AS level FROM rate_buckets WHERE key_id = $1 AND kind = $2",
                    $crate::rates_sql::refilled("$4", "$3")
                );
                let row = sqlx::query(&sql)
                    .bind(key_id)
                    .bind(kind.as_str())
                    .bind(t.now_ms)
                    .bind(t.per_minute)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                let level = row.map(|r| r.try_get::<f64, _>("level")).transpose().map_err($crate::db_err)?;
                Ok(Err(level.unwrap_or(t.per_minute)))
            }

            async fn add_rate(
                &self,
                key_id: &str,
                kind: RateKind,
                per_minute: f64,
                amount: f64,
                now_ms: i64,
            ) -> StoreResult<()> {
                let level = $crate::rates_sql::refilled("$3", "$5");
                let sql = format!(
                    "UPDATE rate_buckets SET level = CASE WHEN {level} + $4 > $3 THEN $3 ELSE {level} + $4 END, \
                     updated_ms = CASE WHEN $5 > updated_ms THEN $5 ELSE updated_ms END \
                     WHERE key_id = $1 AND kind = $2"
                );
                sqlx::query(&sql)
                    .bind(key_id)
                    .bind(kind.as_str())
                    .bind(per_minute)
                    .bind(amount)
                    .bind(now_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err($crate::db_err)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_rate_store;
