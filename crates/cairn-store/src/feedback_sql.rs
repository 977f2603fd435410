//! Feedback and evaluation queries, written once for SQLite and PostgreSQL. The per-target
//! cap is checked in the inserting statement itself; on PostgreSQL concurrent inserts may pass
//! it by a few, which is fine for a guard against floods.

/// Implements `FeedbackStore` for `$store` (with `pool` and `writer` fields) on `$db`.
macro_rules! impl_feedback_store {
    ($store:ty, $db:ty) => {
        use cairn_core::store::StoreResult;
        use cairn_core::trace::{EvalItem, EvalRun, Feedback, FeedbackStore, FeedbackTarget, Score};
        use sqlx::Row;

        type FRow = <$db as sqlx::Database>::Row;

        const FEEDBACK_COLUMNS: &str = "id, tenant_id, target, target_id, trace_id, name, score_num, score_bool, \
             score_cat, comment, author, key_id, created_ms";
        const EVAL_COLUMNS: &str = "id, tenant_id, collection_id, dataset, model, judge, questions, \
             citation_precision, citation_recall, faithfulness, key_id, created_ms";

        fn feedback_from_row(r: &FRow) -> Result<Feedback, sqlx::Error> {
            let score = match (
                r.try_get::<Option<bool>, _>("score_bool")?,
                r.try_get::<Option<f64>, _>("score_num")?,
                r.try_get::<Option<String>, _>("score_cat")?,
            ) {
                (Some(b), _, _) => Score::Boolean(b),
                (_, Some(n), _) => Score::Numeric(n),
                (_, _, Some(c)) => Score::Categorical(c),
                _ => return Err(sqlx::Error::Decode("feedback without a score".into())),
            };
            Ok(Feedback {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                target: FeedbackTarget::parse(&r.try_get::<String, _>("target")?),
                target_id: r.try_get("target_id")?,
                trace_id: r.try_get("trace_id")?,
                name: r.try_get("name")?,
                score,
                comment: r.try_get("comment")?,
                author: r.try_get("author")?,
                key_id: r.try_get("key_id")?,
                created_ms: r.try_get("created_ms")?,
            })
        }

        fn eval_from_row(r: &FRow, items: Vec<EvalItem>) -> Result<EvalRun, sqlx::Error> {
            Ok(EvalRun {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                collection_id: r.try_get("collection_id")?,
                dataset: r.try_get("dataset")?,
                model: r.try_get("model")?,
                judge: r.try_get("judge")?,
                questions: r.try_get::<i64, _>("questions")?.clamp(0, i64::from(u32::MAX)) as u32,
                citation_precision: r.try_get("citation_precision")?,
                citation_recall: r.try_get("citation_recall")?,
                faithfulness: r.try_get("faithfulness")?,
                items,
                key_id: r.try_get("key_id")?,
                created_ms: r.try_get("created_ms")?,
            })
        }

        #[async_trait::async_trait]
        impl FeedbackStore for $store {
            async fn insert_feedback(&self, f: &Feedback, max_per_target: u32) -> StoreResult<bool> {
                let (num, boolean, cat) = match &f.score {
                    Score::Numeric(n) => (Some(*n), None, None),
                    Score::Boolean(b) => (None, Some(*b), None),
                    Score::Categorical(c) => (None, None, Some(c.as_str())),
                };
                let done = sqlx::query(&format!(
                    "INSERT INTO feedback ({FEEDBACK_COLUMNS}) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
                     WHERE (SELECT COUNT(*) FROM feedback WHERE tenant_id = $2 AND target = $3 AND target_id = $4) < $14"
                ))
                .bind(&f.id)
                .bind(&f.tenant_id)
                .bind(f.target.as_str())
                .bind(&f.target_id)
                .bind(&f.trace_id)
                .bind(&f.name)
                .bind(num)
                .bind(boolean)
                .bind(cat)
                .bind(&f.comment)
                .bind(&f.author)
                .bind(&f.key_id)
                .bind(f.created_ms)
                .bind(i64::from(max_per_target))
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn feedback_for_trace(&self, tenant: Option<&str>, trace_id: &str) -> StoreResult<Vec<Feedback>> {
                let rows = sqlx::query(&format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE ($1 IS NULL OR tenant_id = $1) AND trace_id = $2 \
                     ORDER BY created_ms, id LIMIT 10000"
                ))
                .bind(tenant)
                .bind(trace_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter().map(feedback_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn feedback_for(&self, tenant: &str, target: FeedbackTarget, id: &str) -> StoreResult<Vec<Feedback>> {
                let rows = sqlx::query(&format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE tenant_id = $1 AND target = $2 AND target_id = $3 \
                     ORDER BY created_ms, id LIMIT 10000"
                ))
                .bind(tenant)
                .bind(target.as_str())
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter().map(feedback_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn delete_feedback_before(&self, tenant: &str, before_ms: i64, limit: u32) -> StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM feedback WHERE id IN (SELECT id FROM feedback WHERE tenant_id = $1 AND created_ms < $2 \
                     ORDER BY created_ms LIMIT $3)",
                )
                .bind(tenant)
                .bind(before_ms)
                .bind(i64::from(limit))
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_eval(&self, e: &EvalRun) -> StoreResult<()> {
                let items = serde_json::to_string(&e.items).map_err(|x| cairn_core::store::StoreError::Backend(x.to_string()))?;
                sqlx::query(&format!(
                    "INSERT INTO evals ({EVAL_COLUMNS}, items) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ))
                .bind(&e.id)
                .bind(&e.tenant_id)
                .bind(&e.collection_id)
                .bind(&e.dataset)
                .bind(&e.model)
                .bind(&e.judge)
                .bind(i64::from(e.questions))
                .bind(e.citation_precision)
                .bind(e.citation_recall)
                .bind(e.faithfulness)
                .bind(&e.key_id)
                .bind(e.created_ms)
                .bind(items)
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                Ok(())
            }

            async fn list_evals(&self, tenant: Option<&str>, limit: u32) -> StoreResult<Vec<EvalRun>> {
                let rows = sqlx::query(&format!(
                    "SELECT {EVAL_COLUMNS} FROM evals WHERE ($1 IS NULL OR tenant_id = $1) \
                     ORDER BY created_ms DESC, id DESC LIMIT $2"
                ))
                .bind(tenant)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter().map(|r| eval_from_row(r, Vec::new())).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn get_eval(&self, tenant: Option<&str>, id: &str) -> StoreResult<Option<EvalRun>> {
                let row = sqlx::query(&format!(
                    "SELECT {EVAL_COLUMNS}, items FROM evals WHERE ($1 IS NULL OR tenant_id = $1) AND id = $2"
                ))
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::db_err)?;
                let Some(r) = row else { return Ok(None) };
                let items: Vec<EvalItem> = serde_json::from_str(&r.try_get::<String, _>("items").map_err($crate::db_err)?)
                    .map_err(|x| cairn_core::store::StoreError::Backend(x.to_string()))?;
                eval_from_row(&r, items).map(Some).map_err($crate::db_err)
            }
        }
    };
}

pub(crate) use impl_feedback_store;
