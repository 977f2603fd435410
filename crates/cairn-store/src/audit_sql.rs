//! Audit log queries, written once for SQLite and PostgreSQL. An append reads the chain's last
//! entry and inserts the next in one transaction; `seq` is the primary key, so of two writers
//! that read the same head only one inserts and the other tries again: the chain never forks.
//! PostgreSQL writers also take a transaction-scoped advisory lock first, so they queue instead
//! of racing; SQLite's writers are already serialised on one connection per process.

/// Implements `AuditStore` for `$store` (with `pool` and `writer` fields) on `$db`; `$lock` is
/// the statement serialising appenders (empty for none).
macro_rules! impl_audit_store {
    ($store:ty, $db:ty, $lock:expr) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use cairn_core::audit::{AuditAction, AuditEntry, AuditEvent, AuditQuery, AuditStore, GENESIS};
        use cairn_core::store::{StoreError, StoreResult};
        use sqlx::Row;

        const AUDIT_COLUMNS: &str = "seq, ts_ms, tenant_id, actor, action, target, details, prev_hash, hash";

        fn audit_from_row(r: &<$db as sqlx::Database>::Row) -> Result<AuditEntry, sqlx::Error> {
            let action: String = r.try_get("action")?;
            Ok(AuditEntry {
                seq: r.try_get("seq")?,
                ts_ms: r.try_get("ts_ms")?,
                tenant_id: r.try_get("tenant_id")?,
                actor: r.try_get("actor")?,
                action: AuditAction::parse(&action)
                    .ok_or_else(|| sqlx::Error::Decode(format!("unknown audit action '{action}'").into()))?,
                target: r.try_get("target")?,
                details: r.try_get("details")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })
        }

        #[async_trait::async_trait]
        impl AuditStore for $store {
            async fn audit_append_once(&self, event: &AuditEvent, ts_ms: i64) -> StoreResult<AuditEntry> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let lock: &str = $lock;
                if !lock.is_empty() {
                    sqlx::query(lock).execute(&mut *tx).await.map_err($crate::db_err)?;
                }
                let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let (seq, prev): (i64, String) = match head {
                    Some(r) => (r.try_get("seq").map_err($crate::db_err)?, r.try_get("hash").map_err($crate::db_err)?),
                    None => (0, GENESIS.to_owned()),
                };
                let e = AuditEntry::seal(event, seq + 1, ts_ms, &prev);
                sqlx::query(&format!(
                    "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(e.seq)
                .bind(e.ts_ms)
                .bind(&e.tenant_id)
                .bind(&e.actor)
                .bind(e.action.as_str())
                .bind(&e.target)
                .bind(&e.details)
                .bind(&e.prev_hash)
                .bind(&e.hash)
                .execute(&mut *tx)
                .await
                .map_err(|err| match $crate::db_err(err) {
                    StoreError::Conflict(_) => StoreError::Conflict("another audit entry took this place".into()),
                    other => other,
                })?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(e)
            }

            async fn audit_list(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
                let rows = sqlx::query(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR tenant_id = $1) \
                     AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR ts_ms >= $3) AND ($4 IS NULL OR ts_ms < $4) \
                     AND seq > $5 ORDER BY seq LIMIT $6"
                ))
                .bind(q.tenant.as_deref())
                .bind(q.action.map(AuditAction::as_str))
                .bind(q.from_ms)
                .bind(q.to_ms)
                .bind(q.after_seq)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter().map(audit_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }
        }
    };
}

pub(crate) use impl_audit_store;
