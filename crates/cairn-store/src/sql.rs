//! The store's queries, written once in SQL that SQLite and PostgreSQL both accept (`$N`
//! placeholders, `ON CONFLICT`, explicit casts on aggregates) and instantiated per backend.

/// Selected columns of `api_keys`, in the order `key_from_row` reads them.
pub(crate) const KEY_COLUMNS: &str = "id, tenant_id, name, role, prefix, hash, rpm, tpm, \
    monthly_budget_usd, created_at_ms, revoked_at_ms, guards";

/// Implements every storage port for `$store` (which has a `pool` field) on database `$db`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use async_trait::async_trait;
        use cairn_core::store::{KeyStore, Store, StoreError, TenantStore, UsageStore};
        use cairn_core::tenancy::{ApiKey, KeyLimits, Tenant};
        use cairn_core::usage::{
            CallStatus, NanoUsd, Reservation, ReserveOutcome, Settlement, UsageBucket, UsageQuery, UsageRecord,
        };
        use sqlx::Row;

        type DbRow = <$db as sqlx::Database>::Row;

        fn key_from_row(r: &DbRow) -> Result<ApiKey, sqlx::Error> {
            let role: String = r.try_get("role")?;
            Ok(ApiKey {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                name: r.try_get("name")?,
                role: role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                prefix: r.try_get("prefix")?,
                hash: r.try_get("hash")?,
                limits: KeyLimits {
                    requests_per_minute: r.try_get::<Option<i64>, _>("rpm")?.map(|v| v as u32),
                    tokens_per_minute: r.try_get::<Option<i64>, _>("tpm")?.map(|v| v as u64),
                    monthly_budget_usd: r.try_get("monthly_budget_usd")?,
                    guards: match r.try_get::<Option<String>, _>("guards")? {
                        Some(json) => serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(e.into()))?,
                        None => Default::default(),
                    },
                },
                created_at_ms: r.try_get("created_at_ms")?,
                revoked_at_ms: r.try_get("revoked_at_ms")?,
            })
        }

        /// One statement inserting `records`, skipping ids already stored.
        fn usage_insert(records: &[Settlement]) -> sqlx::QueryBuilder<'_, $db> {
            use $crate::usage_row::UsageValue as V;
            let mut q = sqlx::QueryBuilder::new(format!(
                "INSERT INTO usage_records ({}) ",
                $crate::usage_row::USAGE_INSERT_COLUMNS
            ));
            q.push_values(records, |mut row, s| {
                for v in $crate::usage_row::usage_row(s) {
                    match v {
                        V::Text(t) => row.push_bind(t),
                        V::MaybeText(t) => row.push_bind(t),
                        V::Int(n) => row.push_bind(n),
                        V::MaybeInt(n) => row.push_bind(n),
                        V::Real(x) => row.push_bind(x),
                        V::MaybeReal(x) => row.push_bind(x),
                        V::Bool(b) => row.push_bind(b),
                    };
                }
            });
            q.push(" ON CONFLICT (id) DO NOTHING");
            q
        }

        fn usage_from_row(r: &DbRow) -> Result<UsageRecord, sqlx::Error> {
            let status: String = r.try_get("status")?;
            Ok(UsageRecord {
                id: r.try_get("id")?,
                request_id: r.try_get::<Option<String>, _>("request_id")?.unwrap_or_default(),
                ts_ms: r.try_get("ts_ms")?,
                tenant_id: r.try_get("tenant_id")?,
                key_id: r.try_get("key_id")?,
                endpoint: r.try_get("endpoint")?,
                model_alias: r.try_get("model_alias")?,
                provider: r.try_get("provider")?,
                upstream_model: r.try_get("upstream_model")?,
                input_tokens: r.try_get::<i64, _>("input_tokens")? as u64,
                output_tokens: r.try_get::<i64, _>("output_tokens")? as u64,
                tokens_estimated: r.try_get("tokens_estimated")?,
                cost_usd: r.try_get("cost_usd")?,
                latency_ms: r.try_get::<i64, _>("latency_ms")? as u64,
                ttft_ms: r.try_get::<Option<i64>, _>("ttft_ms")?.map(|v| v as u64),
                output_tokens_per_s: r.try_get("output_tps")?,
                retries: r.try_get::<i64, _>("retries")? as u32,
                fallbacks: r.try_get::<i64, _>("fallbacks")? as u32,
                streamed: r.try_get("streamed")?,
                status: CallStatus::parse(&status),
                error: r.try_get("error")?,
            })
        }

        /// The key's settled spend for the month (0 without a row) and what its live reservations hold.
        async fn budget_totals(
            conn: &mut <$db as sqlx::Database>::Connection,
            key_id: &str,
            month_start_ms: i64,
            now_ms: i64,
        ) -> cairn_core::store::StoreResult<(NanoUsd, NanoUsd)> {
            let row = sqlx::query(
                "SELECT \
                 CAST(COALESCE((SELECT settled_nusd FROM key_spend WHERE key_id = $1 AND month_start_ms = $2), 0) \
                 AS BIGINT) AS settled, \
                 CAST(COALESCE((SELECT SUM(amount_nusd) FROM budget_reservations \
                 WHERE key_id = $1 AND expires_at_ms > $3), 0) AS BIGINT) AS held",
            )
            .bind(key_id)
            .bind(month_start_ms)
            .bind(now_ms)
            .fetch_one(&mut *conn)
            .await
            .map_err($crate::db_err)?;
            let settled: i64 = row.try_get("settled").map_err($crate::db_err)?;
            let held: i64 = row.try_get("held").map_err($crate::db_err)?;
            Ok((NanoUsd(settled), NanoUsd(held)))
        }

        #[async_trait]
        impl TenantStore for $store {
            async fn create_tenant(&self, t: &Tenant) -> cairn_core::store::StoreResult<()> {
                sqlx::query("INSERT INTO tenants (id, name, created_at_ms) VALUES ($1, $2, $3)")
                    .bind(&t.id)
                    .bind(&t.name)
                    .bind(t.created_at_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(|e| match $crate::db_err(e) {
                        StoreError::Conflict(_) => StoreError::Conflict(format!("tenant '{}' already exists", t.id)),
                        other => other,
                    })?;
                Ok(())
            }

            async fn tenant_secret(
                &self,
                tenant_id: &str,
                purpose: &str,
                candidate: &str,
            ) -> cairn_core::store::StoreResult<String> {
                sqlx::query(
                    "INSERT INTO tenant_secrets (tenant_id, purpose, secret, created_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, purpose) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(purpose)
                .bind(candidate)
                .bind(cairn_core::time::now_ms())
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                sqlx::query("SELECT secret FROM tenant_secrets WHERE tenant_id = $1 AND purpose = $2")
                    .bind(tenant_id)
                    .bind(purpose)
                    .fetch_one(&mut *self.write_conn().await?)
                    .await
                    .and_then(|r| r.try_get("secret"))
                    .map_err($crate::db_err)
            }

            async fn set_tenant_secret(
                &self,
                tenant_id: &str,
                purpose: &str,
                secret: &str,
            ) -> cairn_core::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO tenant_secrets (tenant_id, purpose, secret, created_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, purpose) DO UPDATE SET secret = excluded.secret, \
                     created_at_ms = excluded.created_at_ms",
                )
                .bind(tenant_id)
                .bind(purpose)
                .bind(secret)
                .bind(cairn_core::time::now_ms())
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                Ok(())
            }

            async fn get_tenant(&self, id: &str) -> cairn_core::store::StoreResult<Option<Tenant>> {
                let row = sqlx::query("SELECT id, name, created_at_ms FROM tenants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                row.map(|r| {
                    Ok(Tenant {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        created_at_ms: r.try_get("created_at_ms")?,
                    })
                })
                .transpose()
                .map_err($crate::db_err)
            }

            async fn list_tenants(&self) -> cairn_core::store::StoreResult<Vec<Tenant>> {
                let rows = sqlx::query("SELECT id, name, created_at_ms FROM tenants ORDER BY created_at_ms, id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(Tenant {
                            id: r.try_get("id")?,
                            name: r.try_get("name")?,
                            created_at_ms: r.try_get("created_at_ms")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err($crate::db_err)
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn insert_key(&self, k: &ApiKey) -> cairn_core::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, name, role, prefix, hash, rpm, tpm, \
                     monthly_budget_usd, created_at_ms, revoked_at_ms, guards) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&k.id)
                .bind(&k.tenant_id)
                .bind(&k.name)
                .bind(k.role.as_str())
                .bind(&k.prefix)
                .bind(&k.hash)
                .bind(k.limits.requests_per_minute.map(i64::from))
                .bind(k.limits.tokens_per_minute.map(|v| v as i64))
                .bind(k.limits.monthly_budget_usd)
                .bind(k.created_at_ms)
                .bind(k.revoked_at_ms)
                .bind((!k.limits.guards.is_default()).then(|| serde_json::to_string(&k.limits.guards).unwrap_or_default()))
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err(|e| match $crate::db_err(e) {
                    StoreError::NotFound(_) => StoreError::NotFound(format!("tenant '{}' does not exist", k.tenant_id)),
                    other => other,
                })?;
                Ok(())
            }

            async fn find_key_by_hash(&self, hash: &str) -> cairn_core::store::StoreResult<Option<ApiKey>> {
                let sql = format!("SELECT {} FROM api_keys WHERE hash = $1", $crate::sql::KEY_COLUMNS);
                let row = sqlx::query(&sql).bind(hash).fetch_optional(&self.pool).await.map_err($crate::db_err)?;
                row.as_ref().map(key_from_row).transpose().map_err($crate::db_err)
            }

            async fn get_key(&self, id: &str) -> cairn_core::store::StoreResult<Option<ApiKey>> {
                let sql = format!("SELECT {} FROM api_keys WHERE id = $1", $crate::sql::KEY_COLUMNS);
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err($crate::db_err)?;
                row.as_ref().map(key_from_row).transpose().map_err($crate::db_err)
            }

            async fn list_keys(&self, tenant_id: Option<&str>) -> cairn_core::store::StoreResult<Vec<ApiKey>> {
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY created_at_ms, id",
                    $crate::sql::KEY_COLUMNS
                );
                let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(&self.pool).await.map_err($crate::db_err)?;
                rows.iter().map(key_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn revoke_key(&self, id: &str, at_ms: i64) -> cairn_core::store::StoreResult<ApiKey> {
                sqlx::query("UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE id = $1")
                    .bind(id)
                    .bind(at_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err($crate::db_err)?;
                self.get_key(id).await?.ok_or_else(|| StoreError::NotFound(format!("key '{id}' does not exist")))
            }

            async fn count_active_owner_keys(&self) -> cairn_core::store::StoreResult<u64> {
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM api_keys WHERE role = 'owner' AND revoked_at_ms IS NULL",
                )
                .fetch_one(&self.pool)
                .await
                .and_then(|r| r.try_get("n"))
                .map_err($crate::db_err)?;
                Ok(n as u64)
            }
        }

        #[async_trait]
        impl UsageStore for $store {
            async fn insert_usage(&self, records: &[Settlement]) -> cairn_core::store::StoreResult<()> {
                // SQLite writes small batches on the calling thread when it can (`crate::inline`).
                if self.insert_usage_inline(records).await? {
                    return Ok(());
                }
                // Multi-row inserts; one statement (the usual case) commits on its own, in one
                // round trip. The `usage_settles` trigger settles each new record's budget.
                const ROWS: usize = 400;
                if records.len() <= ROWS {
                    usage_insert(records).build().execute(&mut *self.write_conn().await?).await.map_err($crate::db_err)?;
                    return Ok(());
                }
                // Run to its end whatever the caller does: these are charges for calls already
                // made, and a caller that went away must not take them with it.
                let (store, records) = (self.clone(), records.to_vec());
                let write = tokio::spawn(async move {
                    let mut conn = store.write_conn().await?;
                    let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                    for chunk in records.chunks(ROWS) {
                        usage_insert(chunk).build().execute(&mut *tx).await.map_err($crate::db_err)?;
                    }
                    tx.commit().await.map_err($crate::db_err)
                });
                write.await.map_err(|e| cairn_core::store::StoreError::Backend(format!("the usage write stopped: {e}")))?
            }

            async fn reserve_budgets(
                &self,
                batch: &[Reservation],
            ) -> cairn_core::store::StoreResult<Vec<ReserveOutcome>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                // Per key, in the order keys first appear: lock its spend row (a write, so SQLite
                // takes its write lock and PostgreSQL the row lock: reservations of one key run one
                // after another across processes), read its totals once, then decide its
                // reservations in order.
                let mut totals: std::collections::HashMap<&str, (NanoUsd, NanoUsd)> = std::collections::HashMap::new();
                let mut out = Vec::with_capacity(batch.len());
                for r in batch {
                    if !totals.contains_key(r.key_id.as_str()) {
                        let lock = "UPDATE key_spend SET settled_nusd = settled_nusd \
                                    WHERE key_id = $1 AND month_start_ms = $2";
                        let locked = sqlx::query(lock)
                            .bind(&r.key_id)
                            .bind(r.month_start_ms)
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::db_err)?
                            .rows_affected();
                        if locked == 0 {
                            // First reservation this month: start from the usage already recorded.
                            sqlx::query(
                                "INSERT INTO key_spend (key_id, month_start_ms, settled_nusd) \
                                 SELECT $1, $2, CAST(COALESCE(SUM(cost_nusd), 0) AS BIGINT) \
                                 FROM usage_records WHERE key_id = $1 AND ts_ms >= $2 \
                                 ON CONFLICT (key_id, month_start_ms) DO NOTHING",
                            )
                            .bind(&r.key_id)
                            .bind(r.month_start_ms)
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::db_err)?;
                            sqlx::query(lock)
                                .bind(&r.key_id)
                                .bind(r.month_start_ms)
                                .execute(&mut *tx)
                                .await
                                .map_err($crate::db_err)?;
                        }
                        let t = budget_totals(&mut *tx, &r.key_id, r.month_start_ms, r.now_ms).await?;
                        totals.insert(r.key_id.as_str(), t);
                    }
                    let (settled, held) = totals[r.key_id.as_str()];
                    let committed = settled.0.saturating_add(held.0);
                    let left = r.budget.0.saturating_sub(committed.saturating_add(r.amount.0));
                    if left < 0 {
                        out.push(ReserveOutcome::Refused { settled, held });
                        continue;
                    }
                    // Headroom: at most half of what is left, so other nodes keep a share.
                    let granted = r.amount.0.saturating_add(r.extra.0.min(left / 2));
                    // A lapsed row (its node stopped renewing it) starts again from nothing.
                    sqlx::query(
                        "INSERT INTO budget_reservations (id, key_id, amount_nusd, expires_at_ms) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET \
                         amount_nusd = CASE WHEN budget_reservations.expires_at_ms > $5 \
                         THEN budget_reservations.amount_nusd + excluded.amount_nusd ELSE excluded.amount_nusd END, \
                         expires_at_ms = CASE WHEN budget_reservations.expires_at_ms > excluded.expires_at_ms \
                         THEN budget_reservations.expires_at_ms ELSE excluded.expires_at_ms END",
                    )
                    .bind(&r.id)
                    .bind(&r.key_id)
                    .bind(granted)
                    .bind(r.expires_at_ms)
                    .bind(r.now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                    totals.insert(r.key_id.as_str(), (settled, NanoUsd(held.0.saturating_add(granted))));
                    out.push(ReserveOutcome::Reserved { granted: NanoUsd(granted) });
                }
                // Lapsed reservations (their node crashed) are only counted out by the totals
                // above; they are deleted here, off the decision, now and then.
                if let Some(r) = batch.first() {
                    sqlx::query("DELETE FROM budget_reservations WHERE key_id = $1 AND expires_at_ms <= $2")
                        .bind(&r.key_id)
                        .bind(r.now_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(out)
            }

            async fn release_reservations(&self, ids: &[String]) -> cairn_core::store::StoreResult<()> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                for id in ids {
                    sqlx::query("DELETE FROM budget_reservations WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)
            }

            async fn budget_state(
                &self,
                key_id: &str,
                month_start_ms: i64,
                now_ms: i64,
            ) -> cairn_core::store::StoreResult<(NanoUsd, NanoUsd)> {
                let mut conn = self.pool.acquire().await.map_err($crate::db_err)?;
                budget_totals(&mut *conn, key_id, month_start_ms, now_ms).await
            }

            async fn usage_buckets(&self, q: &UsageQuery) -> cairn_core::store::StoreResult<Vec<UsageBucket>> {
                let rows = sqlx::query(
                    "SELECT ts_ms / 86400000 AS day, tenant_id, model_alias, key_id, \
                     CAST(COUNT(*) AS BIGINT) AS requests, \
                     CAST(SUM(CASE WHEN status IN ('ok', 'cached') THEN 0 ELSE 1 END) AS BIGINT) AS errors, \
                     CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
                     CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
                     CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost_usd \
                     FROM usage_records \
                     WHERE ts_ms >= $1 AND ts_ms < $2 AND ($3 IS NULL OR tenant_id = $3) \
                     AND ($4 IS NULL OR key_id = $4) AND ($5 IS NULL OR model_alias = $5) \
                     GROUP BY ts_ms / 86400000, tenant_id, model_alias, key_id \
                     ORDER BY day, tenant_id, model_alias, key_id",
                )
                .bind(q.from_ms)
                .bind(q.to_ms)
                .bind(q.tenant_id.as_deref())
                .bind(q.key_id.as_deref())
                .bind(q.model_alias.as_deref())
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(UsageBucket {
                            day: cairn_core::time::iso_day(r.try_get::<i64, _>("day")? * cairn_core::time::DAY_MS),
                            tenant_id: r.try_get("tenant_id")?,
                            model: r.try_get("model_alias")?,
                            key_id: r.try_get("key_id")?,
                            requests: r.try_get::<i64, _>("requests")? as u64,
                            errors: r.try_get::<i64, _>("errors")? as u64,
                            input_tokens: r.try_get::<i64, _>("input_tokens")? as u64,
                            output_tokens: r.try_get::<i64, _>("output_tokens")? as u64,
                            cost_usd: r.try_get("cost_usd")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err($crate::db_err)
            }

            async fn usage_by_request(&self, request_id: &str) -> cairn_core::store::StoreResult<Vec<UsageRecord>> {
                let sql = format!(
                    "SELECT {} FROM usage_records WHERE request_id = $1 ORDER BY id",
                    $crate::usage_row::USAGE_COLUMNS
                );
                let rows = sqlx::query(&sql).bind(request_id).fetch_all(&self.pool).await.map_err($crate::db_err)?;
                rows.iter().map(usage_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn get_usage(&self, id: &str) -> cairn_core::store::StoreResult<Option<UsageRecord>> {
                let sql = format!("SELECT {} FROM usage_records WHERE id = $1", $crate::usage_row::USAGE_COLUMNS);
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err($crate::db_err)?;
                row.as_ref().map(usage_from_row).transpose().map_err($crate::db_err)
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> cairn_core::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err($crate::db_err)?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                $backend
            }
        }
    };
}
pub(crate) use impl_store;
