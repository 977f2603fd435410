//! Response cache queries, written once for SQLite and PostgreSQL.

/// Implements `ResponseCacheStore` for `$store` (with `pool` and `writer` fields) on `$db`.
macro_rules! impl_cache_store {
    ($store:ty, $db:ty) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use cairn_core::cache::{
            CacheEntry, CacheKey, CachePurge, EntryIndex, ResponseCacheStore, SemanticCandidate,
        };
        use cairn_core::knowledge::{embedding_from_bytes, embedding_to_bytes};
        use cairn_core::store::StoreResult;
        use sqlx::Row;

        const CACHE_COLUMNS: &str =
            "tenant_id, cache_key, namespace, model, provider, upstream_model, body, cost_usd, created_ms, expires_ms";

        #[async_trait::async_trait]
        impl ResponseCacheStore for $store {
            async fn cache_get(&self, tenant: &str, key: &CacheKey, now_ms: i64) -> StoreResult<Option<CacheEntry>> {
                let row = sqlx::query(&format!(
                    "SELECT {CACHE_COLUMNS} FROM response_cache WHERE tenant_id = $1 AND cache_key = $2 AND expires_ms > $3"
                ))
                .bind(tenant)
                .bind(&key.0)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::db_err)?;
                let Some(r) = row else { return Ok(None) };
                let entry = (|| {
                    Ok::<_, sqlx::Error>(CacheEntry {
                        tenant_id: r.try_get("tenant_id")?,
                        key: CacheKey(r.try_get("cache_key")?),
                        namespace: r.try_get("namespace")?,
                        model: r.try_get("model")?,
                        provider: r.try_get("provider")?,
                        upstream_model: r.try_get("upstream_model")?,
                        body: r.try_get("body")?,
                        cost_usd: r.try_get("cost_usd")?,
                        created_ms: r.try_get("created_ms")?,
                        expires_ms: r.try_get("expires_ms")?,
                    })
                })()
                .map_err($crate::db_err)?;
                Ok(Some(entry))
            }

            async fn cache_put(&self, e: &CacheEntry, index: &EntryIndex) -> StoreResult<()> {
                let semantic = index.semantic.as_ref();
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                sqlx::query(&format!(
                    "INSERT INTO response_cache ({CACHE_COLUMNS}, semantic_key, question, embedding) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (tenant_id, cache_key) DO UPDATE SET namespace = excluded.namespace, \
                     model = excluded.model, provider = excluded.provider, upstream_model = excluded.upstream_model, \
                     body = excluded.body, cost_usd = excluded.cost_usd, created_ms = excluded.created_ms, \
                     expires_ms = excluded.expires_ms, semantic_key = excluded.semantic_key, \
                     question = excluded.question, embedding = excluded.embedding"
                ))
                .bind(&e.tenant_id)
                .bind(&e.key.0)
                .bind(&e.namespace)
                .bind(&e.model)
                .bind(&e.provider)
                .bind(&e.upstream_model)
                .bind(&e.body)
                .bind(e.cost_usd)
                .bind(e.created_ms)
                .bind(e.expires_ms)
                .bind(semantic.map(|s| s.key.0.as_str()))
                .bind(semantic.map(|s| s.question.as_str()))
                .bind(semantic.map(|s| embedding_to_bytes(&s.vector)))
                .execute(&mut *tx)
                .await
                .map_err($crate::db_err)?;
                sqlx::query("DELETE FROM response_cache_collections WHERE tenant_id = $1 AND cache_key = $2")
                    .bind(&e.tenant_id)
                    .bind(&e.key.0)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                for collection in &index.collections {
                    sqlx::query(
                        "INSERT INTO response_cache_collections (collection_id, tenant_id, cache_key) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(collection)
                    .bind(&e.tenant_id)
                    .bind(&e.key.0)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(())
            }

            async fn cache_similar(
                &self,
                tenant: &str,
                key: &CacheKey,
                now_ms: i64,
                limit: u32,
            ) -> StoreResult<Vec<SemanticCandidate>> {
                let rows = sqlx::query(
                    "SELECT cache_key, question, embedding, created_ms FROM response_cache \
                     WHERE tenant_id = $1 AND semantic_key = $2 AND expires_ms > $3 \
                     ORDER BY created_ms DESC LIMIT $4",
                )
                .bind(tenant)
                .bind(&key.0)
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(SemanticCandidate {
                            key: CacheKey(r.try_get("cache_key")?),
                            question: r.try_get::<Option<String>, _>("question")?.unwrap_or_default(),
                            vector: embedding_from_bytes(&r.try_get::<Option<Vec<u8>>, _>("embedding")?.unwrap_or_default()),
                            created_ms: r.try_get("created_ms")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err($crate::db_err)
            }

            async fn cache_purge(&self, tenant: &str, what: &CachePurge) -> StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM response_cache WHERE tenant_id = $1 AND ($2 IS NULL OR namespace = $2) \
                     AND ($3 IS NULL OR model = $3)",
                )
                .bind(tenant)
                .bind(what.namespace.as_deref())
                .bind(what.model.as_deref())
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                forget_orphans(&mut *self.write_conn().await?, Some(tenant)).await?;
                Ok(done.rows_affected())
            }

            async fn cache_sweep(&self, now_ms: i64, limit: u32) -> StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM response_cache WHERE (tenant_id, cache_key) IN (SELECT tenant_id, cache_key \
                     FROM response_cache WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $2)",
                )
                .bind(now_ms)
                .bind(i64::from(limit))
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                forget_orphans(&mut *self.write_conn().await?, None).await?;
                Ok(done.rows_affected())
            }
        }

        /// Drops the collection links of entries no longer stored (of `tenant`, or everyone's).
        async fn forget_orphans(conn: &mut <$db as sqlx::Database>::Connection, tenant: Option<&str>) -> StoreResult<()> {
            sqlx::query(
                "DELETE FROM response_cache_collections WHERE ($1 IS NULL OR tenant_id = $1) AND NOT EXISTS \
                 (SELECT 1 FROM response_cache r WHERE r.tenant_id = response_cache_collections.tenant_id \
                 AND r.cache_key = response_cache_collections.cache_key)",
            )
            .bind(tenant)
            .execute(conn)
            .await
            .map_err($crate::db_err)?;
            Ok(())
        }
    };
}

pub(crate) use impl_cache_store;
