//! The traces' queries, written once for SQLite and PostgreSQL. A batch of spans is one
//! transaction: the spans not stored yet go in, and only they are folded into their traces'
//! summary rows, so a batch written twice counts once. Lists build their SQL from the filters
//! given, so each query can use the tenant-and-start index.

/// Implements `TraceStore` for `$store` on `$db`, writing through the connection its `$writer`
/// method gives and reading through its `$pool` pool.
macro_rules! impl_trace_store {
    ($store:ty, $db:ty, $writer:ident, $pool:ident) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use cairn_core::store::StoreResult;
        use cairn_core::trace::rollup::BUCKETS;
        use cairn_core::trace::{
            attrs, Rollup, RollupGroup, SpanKind, SpanRecord, SpanStatus, StoredSpan, TraceDelta, TraceQuery, TraceStore,
            TraceSummary,
        };
        use cairn_core::usage::NanoUsd;
        use sqlx::Row;

        type TRow = <$db as sqlx::Database>::Row;

        /// Rows per multi-row insert (12 parameters each, under SQLite's limit).
        const SPAN_ROWS: usize = 500;
        /// Trace summaries per upsert (15 parameters each).
        const SUMMARY_ROWS: usize = 1_000;
        /// Rollups per upsert (89 parameters each).
        const ROLLUP_ROWS: usize = 300;

        /// How a batch's share of a trace folds into its stored summary.
        const SUMMARY_UPSERT: &str = " ON CONFLICT (tenant_id, trace_id) DO UPDATE SET \
             name = CASE WHEN traces.name = '' THEN excluded.name ELSE traces.name END, \
             start_ns = CASE WHEN excluded.start_ns < traces.start_ns THEN excluded.start_ns ELSE traces.start_ns END, \
             end_ns = CASE WHEN excluded.end_ns > traces.end_ns THEN excluded.end_ns ELSE traces.end_ns END, \
             span_count = traces.span_count + excluded.span_count, \
             error_count = traces.error_count + excluded.error_count, \
             key_id = COALESCE(traces.key_id, excluded.key_id), \
             end_user = COALESCE(traces.end_user, excluded.end_user), \
             session_id = COALESCE(traces.session_id, excluded.session_id), \
             run_id = COALESCE(traces.run_id, excluded.run_id), \
             model = COALESCE(traces.model, excluded.model), \
             input_tokens = traces.input_tokens + excluded.input_tokens, \
             output_tokens = traces.output_tokens + excluded.output_tokens, \
             cost_nusd = traces.cost_nusd + excluded.cost_nusd";

        const SUMMARY_COLUMNS: &str = "tenant_id, trace_id, name, start_ns, end_ns, span_count, error_count, key_id, \
             end_user, session_id, run_id, model, input_tokens, output_tokens, cost_nusd";

        fn summary_from(r: &TRow) -> Result<TraceSummary, sqlx::Error> {
            let start: i64 = r.try_get("start_ns")?;
            let end: i64 = r.try_get("end_ns")?;
            let errors: i64 = r.try_get("error_count")?;
            Ok(TraceSummary {
                trace_id: r.try_get("trace_id")?,
                tenant_id: r.try_get("tenant_id")?,
                name: r.try_get("name")?,
                start_ms: start as f64 / 1e6,
                start_ns: start,
                duration_ms: (end - start).max(0) as f64 / 1e6,
                status: if errors > 0 { SpanStatus::Error } else { SpanStatus::Ok },
                span_count: r.try_get("span_count")?,
                error_count: errors,
                key_id: r.try_get("key_id")?,
                user: r.try_get("end_user")?,
                session_id: r.try_get("session_id")?,
                run_id: r.try_get("run_id")?,
                model: r.try_get("model")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cost_usd: NanoUsd(r.try_get("cost_nusd")?).usd(),
            })
        }

        fn span_from(r: &TRow) -> Result<StoredSpan, sqlx::Error> {
            let attributes: String = r.try_get("attributes")?;
            Ok(StoredSpan {
                span_id: r.try_get("span_id")?,
                parent_id: r.try_get("parent_id")?,
                name: r.try_get("name")?,
                kind: SpanKind::parse(&r.try_get::<String, _>("kind")?),
                start_ns: r.try_get("start_ns")?,
                end_ns: r.try_get("end_ns")?,
                status: SpanStatus::parse(&r.try_get::<String, _>("status")?),
                status_message: r.try_get("status_message")?,
                attributes: serde_json::from_str(&attributes).map_err(|e| sqlx::Error::Decode(e.into()))?,
            })
        }

        /// The histogram columns, `l0..l39` (latency) then `t0..t39` (time to first token).
        fn histogram_columns() -> Vec<String> {
            (0..BUCKETS).map(|i| format!("l{i}")).chain((0..BUCKETS).map(|i| format!("t{i}"))).collect()
        }

        /// Adds each of `rows` to its row, creating it if needed (one statement).
        async fn add_rollups(tx: &mut $crate::tx::Tx<'_, $db>, rows: &[Rollup]) -> Result<(), sqlx::Error> {
            let hist = histogram_columns();
            let sums: Vec<String> = ["calls", "errors", "input_tokens", "output_tokens", "cost_nusd"]
                .iter()
                .map(|c| c.to_string())
                .chain(hist.iter().cloned())
                .map(|c| format!("{c} = trace_rollups.{c} + excluded.{c}"))
                .collect();
            let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                "INSERT INTO trace_rollups (tenant_id, hour_ms, model, key_id, calls, errors, input_tokens, \
                 output_tokens, cost_nusd, {}) ",
                hist.join(", ")
            ));
            q.push_values(rows, |mut row, r| {
                row.push_bind(r.tenant_id.clone())
                    .push_bind(r.hour_ms)
                    .push_bind(r.model.clone())
                    .push_bind(r.key_id.clone())
                    .push_bind(r.calls)
                    .push_bind(r.errors)
                    .push_bind(r.input_tokens)
                    .push_bind(r.output_tokens)
                    .push_bind(r.cost.0);
                for n in r.latency.iter().chain(r.ttft.iter()) {
                    row.push_bind(*n);
                }
            });
            q.push(format!(" ON CONFLICT (tenant_id, hour_ms, model, key_id) DO UPDATE SET {}", sums.join(", ")));
            q.build().execute(&mut **tx).await.map(|_| ())
        }

        fn rollup_from(r: &TRow) -> Result<Rollup, sqlx::Error> {
            let mut out = Rollup::empty(
                &r.try_get::<String, _>("tenant_id")?,
                r.try_get("hour_ms")?,
                &r.try_get::<String, _>("model")?,
                &r.try_get::<String, _>("key_id")?,
            );
            out.calls = r.try_get("calls")?;
            out.errors = r.try_get("errors")?;
            out.input_tokens = r.try_get("input_tokens")?;
            out.output_tokens = r.try_get("output_tokens")?;
            out.cost = NanoUsd(r.try_get("cost_nusd")?);
            // By position: the histogram columns follow the nine before them, in order.
            for i in 0..BUCKETS {
                out.latency[i] = r.try_get(9 + i)?;
                out.ttft[i] = r.try_get(9 + BUCKETS + i)?;
            }
            Ok(out)
        }

        /// A span's model column: the model a model call asked for.
        fn span_model(s: &SpanRecord) -> Option<&str> {
            s.attr_str(attrs::REQUEST_MODEL)
        }

        #[async_trait::async_trait]
        impl TraceStore for $store {
            async fn insert_spans(&self, spans: &[SpanRecord]) -> StoreResult<()> {
                let mut conn = self.$writer().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let mut fresh: Vec<SpanRecord> = Vec::with_capacity(spans.len());
                for chunk in spans.chunks(SPAN_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO spans (tenant_id, trace_id, span_id, parent_id, name, kind, start_ns, end_ns, \
                         status, status_message, model, attributes) ",
                    );
                    q.push_values(chunk, |mut row, s| {
                        row.push_bind(s.tenant_id.clone())
                            .push_bind(s.trace_id.to_string())
                            .push_bind(s.span_id.to_string())
                            .push_bind(s.parent_id.map(|p| p.to_string()))
                            .push_bind(s.name.clone())
                            .push_bind(s.kind.as_str())
                            .push_bind(s.start_ns)
                            .push_bind(s.end_ns)
                            .push_bind(s.status.as_str())
                            .push_bind(s.status_message.clone())
                            .push_bind(span_model(s).map(str::to_owned))
                            .push_bind(serde_json::Value::Object(s.attributes_json()).to_string());
                    });
                    q.push(" ON CONFLICT DO NOTHING RETURNING tenant_id, trace_id, span_id");
                    let stored = q.build().fetch_all(&mut *tx).await.map_err($crate::db_err)?;
                    if stored.len() == chunk.len() {
                        // The usual case: every span is new.
                        fresh.extend(chunk.iter().cloned());
                        continue;
                    }
                    let stored: std::collections::HashSet<(String, String, String)> = stored
                        .iter()
                        .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("trace_id")?, r.try_get("span_id")?)))
                        .collect::<Result<_, sqlx::Error>>()
                        .map_err($crate::db_err)?;
                    fresh.extend(
                        chunk
                            .iter()
                            .filter(|s| {
                                stored.contains(&(s.tenant_id.clone(), s.trace_id.to_string(), s.span_id.to_string()))
                            })
                            .cloned(),
                    );
                }
                // One multi-row upsert per chunk: each batch's traces and rollups are unique
                // (folded), as PostgreSQL requires of a single upsert.
                let deltas = TraceDelta::fold(&fresh);
                for chunk in deltas.chunks(SUMMARY_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO traces ({SUMMARY_COLUMNS}) "));
                    q.push_values(chunk, |mut row, d| {
                        row.push_bind(d.tenant_id.clone())
                            .push_bind(d.trace_id.clone())
                            .push_bind(d.name.clone().unwrap_or_default())
                            .push_bind(d.start_ns)
                            .push_bind(d.end_ns)
                            .push_bind(d.spans)
                            .push_bind(d.errors)
                            .push_bind(d.key_id.clone())
                            .push_bind(d.user.clone())
                            .push_bind(d.session.clone())
                            .push_bind(d.run_id.clone())
                            .push_bind(d.model.clone())
                            .push_bind(d.input_tokens)
                            .push_bind(d.output_tokens)
                            .push_bind(d.cost.0);
                    });
                    q.push(SUMMARY_UPSERT);
                    q.build().execute(&mut *tx).await.map_err($crate::db_err)?;
                }
                for chunk in Rollup::fold(&fresh).chunks(ROLLUP_ROWS) {
                    add_rollups(&mut tx, chunk).await.map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)
            }

            async fn rollups(
                &self,
                tenant: Option<&str>,
                from_ms: i64,
                to_ms: i64,
                by: RollupGroup,
            ) -> StoreResult<Vec<Rollup>> {
                // Sums as BIGINT: PostgreSQL's SUM of a BIGINT is NUMERIC.
                let sums = ["calls", "errors", "input_tokens", "output_tokens", "cost_nusd"]
                    .iter()
                    .map(|c| c.to_string())
                    .chain(histogram_columns())
                    .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (keys, group) = match by {
                    RollupGroup::Rows => ("tenant_id, hour_ms, model, key_id".to_owned(), ""),
                    RollupGroup::Time(w) => {
                        let w = w.max(1);
                        (format!("'' AS tenant_id, (hour_ms / {w}) * {w} AS hour_ms, '' AS model, '' AS key_id"), " GROUP BY 2")
                    }
                    RollupGroup::ModelKey => (
                        "'' AS tenant_id, CAST(0 AS BIGINT) AS hour_ms, model, key_id".to_owned(),
                        " GROUP BY model, key_id",
                    ),
                };
                let select = if by == RollupGroup::Rows { "*".to_owned() } else { format!("{keys}, {sums}") };
                let mut q = sqlx::QueryBuilder::<$db>::new(format!("SELECT {select} FROM trace_rollups WHERE hour_ms >= "));
                q.push_bind(from_ms).push(" AND hour_ms < ").push_bind(to_ms);
                if let Some(t) = tenant {
                    q.push(" AND tenant_id = ").push_bind(t.to_owned());
                }
                q.push(group);
                q.push(match by {
                    RollupGroup::Rows => " ORDER BY hour_ms, model, key_id",
                    RollupGroup::Time(_) => " ORDER BY 2",
                    _ => "",
                });
                let rows = q.build().fetch_all(&self.$pool).await.map_err($crate::db_err)?;
                let rows: Vec<Rollup> = rows.iter().map(rollup_from).collect::<Result<_, _>>().map_err($crate::db_err)?;
                // An empty window sums to one row of zeros; say so with no row.
                Ok(rows.into_iter().filter(|r| by == RollupGroup::Rows || r.calls > 0).collect())
            }

            async fn list_traces(&self, f: &TraceQuery) -> StoreResult<Vec<TraceSummary>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!("SELECT {SUMMARY_COLUMNS} FROM traces WHERE 1 = 1"));
                if let Some(t) = &f.tenant_id {
                    q.push(" AND tenant_id = ").push_bind(t.clone());
                }
                if let Some(v) = f.from_ns {
                    q.push(" AND start_ns >= ").push_bind(v);
                }
                if let Some(v) = f.to_ns {
                    q.push(" AND start_ns < ").push_bind(v);
                }
                if let Some(c) = &f.after {
                    q.push(" AND (start_ns < ").push_bind(c.start_ns);
                    q.push(" OR (start_ns = ").push_bind(c.start_ns);
                    q.push(" AND trace_id < ").push_bind(c.trace_id.clone()).push("))");
                }
                if let Some(v) = &f.key_id {
                    q.push(" AND key_id = ").push_bind(v.clone());
                }
                match f.status {
                    Some(SpanStatus::Error) => {
                        q.push(" AND error_count > 0");
                    }
                    Some(_) => {
                        q.push(" AND error_count = 0");
                    }
                    None => {}
                }
                if let Some(v) = f.min_duration_ns {
                    q.push(" AND end_ns - start_ns >= ").push_bind(v);
                }
                if let Some(v) = f.min_cost {
                    q.push(" AND cost_nusd >= ").push_bind(v.0);
                }
                if let Some(v) = &f.run_id {
                    q.push(" AND run_id = ").push_bind(v.clone());
                }
                if let Some(v) = &f.session_id {
                    q.push(" AND session_id = ").push_bind(v.clone());
                }
                if let Some(v) = &f.user {
                    q.push(" AND end_user = ").push_bind(v.clone());
                }
                if let Some(v) = &f.model {
                    q.push(
                        " AND EXISTS (SELECT 1 FROM spans s WHERE s.tenant_id = traces.tenant_id \
                         AND s.trace_id = traces.trace_id AND s.model = ",
                    )
                    .push_bind(v.clone())
                    .push(")");
                }
                q.push(" ORDER BY start_ns DESC, trace_id DESC LIMIT ").push_bind(i64::from(f.limit));
                let rows = q.build().fetch_all(&self.$pool).await.map_err($crate::db_err)?;
                rows.iter().map(summary_from).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn get_trace(
                &self,
                tenant: Option<&str>,
                trace_id: &str,
            ) -> StoreResult<Option<(TraceSummary, Vec<StoredSpan>)>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!("SELECT {SUMMARY_COLUMNS} FROM traces WHERE trace_id = "));
                q.push_bind(trace_id.to_owned());
                if let Some(t) = tenant {
                    q.push(" AND tenant_id = ").push_bind(t.to_owned());
                }
                // No ORDER BY: it would lead SQLite to scan by a tenant index instead of the id one.
                q.push(" LIMIT 1");
                let Some(row) = q.build().fetch_optional(&self.$pool).await.map_err($crate::db_err)? else {
                    return Ok(None);
                };
                let summary = summary_from(&row).map_err($crate::db_err)?;
                let spans = sqlx::query(
                    "SELECT span_id, parent_id, name, kind, start_ns, end_ns, status, status_message, attributes \
                     FROM spans WHERE tenant_id = $1 AND trace_id = $2",
                )
                .bind(&summary.tenant_id)
                .bind(trace_id)
                .fetch_all(&self.$pool)
                .await
                .map_err($crate::db_err)?;
                // Sorted here: an ORDER BY leads SQLite to walk the tenant's spans by start
                // instead of looking the trace up by its key.
                let mut spans: Vec<StoredSpan> =
                    spans.iter().map(span_from).collect::<Result<_, _>>().map_err($crate::db_err)?;
                spans.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
                Ok(Some((summary, spans)))
            }

            async fn delete_traces_before(&self, tenant: Option<&str>, before_ns: i64, limit: u32) -> StoreResult<u64> {
                let mut conn = self.$writer().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let mut q = sqlx::QueryBuilder::<$db>::new("SELECT tenant_id, trace_id FROM traces WHERE start_ns < ");
                q.push_bind(before_ns);
                if let Some(t) = tenant {
                    q.push(" AND tenant_id = ").push_bind(t.to_owned());
                }
                q.push(" ORDER BY start_ns LIMIT ").push_bind(i64::from(limit));
                let old = q.build().fetch_all(&mut *tx).await.map_err($crate::db_err)?;
                for r in &old {
                    let tenant_id: String = r.try_get("tenant_id").map_err($crate::db_err)?;
                    let trace_id: String = r.try_get("trace_id").map_err($crate::db_err)?;
                    for table in ["spans", "traces"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND trace_id = $2"))
                            .bind(&tenant_id)
                            .bind(&trace_id)
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::db_err)?;
                    }
                }
                // Rollups go by the hour they count, once their whole hour is past the cut.
                let mut q = sqlx::QueryBuilder::<$db>::new("DELETE FROM trace_rollups WHERE hour_ms + 3600000 <= ");
                q.push_bind(before_ns / 1_000_000);
                if let Some(t) = tenant {
                    q.push(" AND tenant_id = ").push_bind(t.to_owned());
                }
                q.build().execute(&mut *tx).await.map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(old.len() as u64)
            }
        }
    };
}

pub(crate) use impl_trace_store;
