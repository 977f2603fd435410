//! Threads, runs and run journals, written once for SQLite and PostgreSQL. Every append is a
//! compare-and-set inside one transaction: a thread's messages are numbered from its counter
//! row, a run's steps from its `steps` column, so concurrent writers never share a number and
//! a stale worker's append fails instead of forking the journal.

/// Selected columns of `runs`.
pub(crate) const RUN_COLUMNS: &str = "id, tenant_id, key_id, agent_id, agent_version, thread_id, input, state, steps, \
    error, created_at_ms, updated_at_ms";

/// The final run states as an SQL list, for `state NOT IN ...`.
pub(crate) fn final_states() -> String {
    let names: Vec<String> = cairn_core::runs::RunState::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", names.join(", "))
}

/// Rows per multi-row INSERT of journal entries (6 parameters each).
pub(crate) const STEP_ROWS_PER_STATEMENT: usize = 1000;

/// Implements `RunStore` for `$store` (with `pool` and `writer` fields) on `$db`; `$lock` is
/// the clause that locks rows read for an update (PostgreSQL: ` FOR UPDATE`; SQLite's single
/// writer needs none).
macro_rules! impl_run_store {
    ($store:ty, $db:ty, $lock:expr) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use cairn_core::jobs::{Job, NewJob};
        use cairn_core::openai::ChatMessage;
        use cairn_core::runs::{Append, BusyThread, Run, RunState, RunStep, RunStore, Thread, ThreadMessage};
        use cairn_core::store::{StoreError, StoreResult};
        use sqlx::Row;

        type RRow = <$db as sqlx::Database>::Row;

        /// Whether `e` is a primary key or unique constraint violation.
        fn is_unique_violation(e: &sqlx::Error) -> bool {
            e.as_database_error().is_some_and(|d| d.is_unique_violation())
        }

        /// Inserts every entry of `appends` as one statement (one round trip), numbering each
        /// run's entries after the length its writer read. The primary key is the
        /// compare-and-set on that length: if any run has moved on, the statement fails whole
        /// with a unique violation. Entries of runs that ended, or that are shorter than their
        /// writer read (never, short of a bug: it would leave a gap), are left out by the join;
        /// the trigger moves each run's count on. For each append, whether it went in.
        async fn insert_steps(
            conn: &mut <$db as sqlx::Database>::Connection,
            appends: &[Append],
        ) -> Result<Vec<bool>, sqlx::Error> {
            let mut values = Vec::new();
            let mut n = 0;
            for a in appends {
                for _ in &a.entries {
                    values.push(format!("(${}, ${}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4, n + 5, n + 6));
                    n += 6;
                }
            }
            if values.is_empty() {
                return Ok(vec![false; appends.len()]);
            }
            let sql = format!(
                "INSERT INTO run_steps (run_id, seq, kind, payload, created_at_ms) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5 FROM (VALUES {}) AS v \
                 JOIN runs r ON r.id = v.column1 WHERE r.steps >= v.column6 AND r.state NOT IN {} \
                 RETURNING run_id, seq",
                values.join(", "),
                $crate::runs_sql::final_states()
            );
            let mut q = sqlx::query(&sql);
            for a in appends {
                for (i, (kind, payload)) in a.entries.iter().enumerate() {
                    q = q
                        .bind(a.run_id.clone())
                        .bind(a.expected as i64 + i as i64 + 1)
                        .bind(kind.as_str())
                        .bind(payload.to_string())
                        .bind(a.now_ms)
                        .bind(a.expected as i64);
                }
            }
            let inserted: std::collections::HashSet<(String, i64)> = q
                .fetch_all(conn)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<String, _>("run_id")?, row.try_get::<i64, _>("seq")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            Ok(appends
                .iter()
                .map(|a| !a.entries.is_empty() && inserted.contains(&(a.run_id.clone(), a.expected as i64 + 1)))
                .collect())
        }

        fn json_from(text: &str) -> Result<serde_json::Value, sqlx::Error> {
            serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
        }

        fn run_from_row(r: &RRow) -> Result<Run, sqlx::Error> {
            let state: String = r.try_get("state")?;
            Ok(Run {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                key_id: r.try_get("key_id")?,
                agent_id: r.try_get("agent_id")?,
                agent_version: r.try_get::<i64, _>("agent_version")? as u32,
                thread_id: r.try_get("thread_id")?,
                input: json_from(&r.try_get::<String, _>("input")?)?,
                state: state.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                steps: r.try_get::<i64, _>("steps")? as u64,
                error: r.try_get("error")?,
                created_at_ms: r.try_get("created_at_ms")?,
                updated_at_ms: r.try_get("updated_at_ms")?,
            })
        }

        fn message_from_row(r: &RRow) -> Result<ThreadMessage, sqlx::Error> {
            let message: ChatMessage = serde_json::from_str(&r.try_get::<String, _>("message")?)
                .map_err(|e| sqlx::Error::Decode(e.into()))?;
            Ok(ThreadMessage {
                thread_id: r.try_get("thread_id")?,
                seq: r.try_get::<i64, _>("seq")? as u64,
                message,
                run_id: r.try_get("run_id")?,
                created_at_ms: r.try_get("created_at_ms")?,
            })
        }

        /// Appends `messages` to thread `id` inside `tx`, numbering them from its counter row
        /// (which also serialises appenders).
        async fn append_in(
            tx: &mut $crate::tx::Tx<'_, $db>,
            id: &str,
            messages: &[ChatMessage],
            run_id: Option<&str>,
            now_ms: i64,
        ) -> StoreResult<Vec<ThreadMessage>> {
            let last: Option<i64> = sqlx::query("UPDATE threads SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq")
                .bind(id)
                .bind(messages.len() as i64)
                .fetch_optional(&mut **tx)
                .await
                .map_err($crate::db_err)?
                .map(|r| r.try_get("last_seq"))
                .transpose()
                .map_err($crate::db_err)?;
            let Some(last) = last else {
                return Err(StoreError::NotFound(format!("thread '{id}' does not exist")));
            };
            let first = (last - messages.len() as i64 + 1) as u64;
            let mut out = Vec::with_capacity(messages.len());
            for (i, m) in messages.iter().enumerate() {
                let seq = first + i as u64;
                let text = serde_json::to_string(m).map_err(|e| StoreError::Backend(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO thread_messages (thread_id, seq, message, run_id, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(seq as i64)
                .bind(text)
                .bind(run_id)
                .bind(now_ms)
                .execute(&mut **tx)
                .await
                .map_err($crate::db_err)?;
                out.push(ThreadMessage {
                    thread_id: id.to_owned(),
                    seq,
                    message: m.clone(),
                    run_id: run_id.map(str::to_owned),
                    created_at_ms: now_ms,
                });
            }
            Ok(out)
        }

        #[async_trait::async_trait]
        impl RunStore for $store {
            async fn create_thread(&self, t: &Thread, messages: &[ChatMessage]) -> StoreResult<Vec<ThreadMessage>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                sqlx::query("INSERT INTO threads (id, tenant_id, metadata, created_at_ms) VALUES ($1, $2, $3, $4)")
                    .bind(&t.id)
                    .bind(&t.tenant_id)
                    .bind(t.metadata.to_string())
                    .bind(t.created_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let added = append_in(&mut tx, &t.id, messages, None, t.created_at_ms).await?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(added)
            }

            async fn get_thread(&self, id: &str) -> StoreResult<Option<Thread>> {
                let row = sqlx::query("SELECT id, tenant_id, metadata, created_at_ms FROM threads WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                row.map(|r| -> Result<Thread, sqlx::Error> {
                    Ok(Thread {
                        id: r.try_get("id")?,
                        tenant_id: r.try_get("tenant_id")?,
                        metadata: json_from(&r.try_get::<String, _>("metadata")?)?,
                        created_at_ms: r.try_get("created_at_ms")?,
                    })
                })
                .transpose()
                .map_err($crate::db_err)
            }

            async fn append_messages(
                &self,
                id: &str,
                messages: &[ChatMessage],
                run_id: Option<&str>,
                now_ms: i64,
            ) -> StoreResult<Vec<ThreadMessage>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let added = append_in(&mut tx, id, messages, run_id, now_ms).await?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(added)
            }

            async fn list_messages(&self, id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<ThreadMessage>> {
                let rows = sqlx::query(
                    "SELECT thread_id, seq, message, run_id, created_at_ms FROM thread_messages \
                     WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(id)
                .bind(after_seq as i64)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter().map(message_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn create_run(&self, run: &Run, busy: BusyThread, job: &NewJob) -> StoreResult<Option<(Job, bool)>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let mut head = true;
                if let Some(thread) = &run.thread_id {
                    // Lock the thread's row (PostgreSQL; SQLite's writer is alone anyway), so
                    // two runs racing for a free thread are decided one after the other.
                    let locked = sqlx::query("UPDATE threads SET last_seq = last_seq WHERE id = $1 AND tenant_id = $2")
                        .bind(thread)
                        .bind(&run.tenant_id)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::db_err)?
                        .rows_affected();
                    if locked == 0 {
                        return Err(StoreError::NotFound(format!("thread '{thread}' does not exist")));
                    }
                    let open: i64 = sqlx::query(&format!(
                        "SELECT COUNT(*) AS n FROM runs WHERE thread_id = $1 AND state NOT IN {}",
                        $crate::runs_sql::final_states()
                    ))
                    .bind(thread)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::db_err)?
                    .try_get("n")
                    .map_err($crate::db_err)?;
                    if open > 0 && busy == BusyThread::Refuse {
                        return Err(StoreError::Conflict(format!("thread '{thread}' has a run in progress")));
                    }
                    head = open == 0;
                }
                sqlx::query(&format!(
                    "INSERT INTO runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, $9, $9)",
                    $crate::runs_sql::RUN_COLUMNS
                ))
                .bind(&run.id)
                .bind(&run.tenant_id)
                .bind(&run.key_id)
                .bind(&run.agent_id)
                .bind(i64::from(run.agent_version))
                .bind(&run.thread_id)
                .bind(run.input.to_string())
                .bind(RunState::Queued.as_str())
                .bind(run.created_at_ms)
                .execute(&mut *tx)
                .await
                .map_err($crate::db_err)?;
                // The run and the job that steps it commit together: no run waits for a job
                // that was never stored. A run queued behind another gets its job when that
                // one ends.
                let job = if head {
                    super::job_ports::insert_jobs(&mut tx, std::slice::from_ref(job)).await?.pop()
                } else {
                    None
                };
                tx.commit().await.map_err($crate::db_err)?;
                Ok(job)
            }

            async fn get_run(&self, id: &str) -> StoreResult<Option<Run>> {
                let row = sqlx::query(&format!("SELECT {} FROM runs WHERE id = $1", $crate::runs_sql::RUN_COLUMNS))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                row.map(|r| run_from_row(&r)).transpose().map_err($crate::db_err)
            }

            async fn list_runs(
                &self,
                tenant: Option<&str>,
                state: Option<RunState>,
                before: Option<&str>,
                limit: u32,
            ) -> StoreResult<Vec<Run>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM runs WHERE 1 = 1",
                    $crate::runs_sql::RUN_COLUMNS
                ));
                if let Some(t) = tenant {
                    q.push(" AND tenant_id = ").push_bind(t.to_owned());
                }
                if let Some(st) = state {
                    q.push(" AND state = ").push_bind(st.as_str());
                }
                if let Some(b) = before {
                    q.push(" AND id < ").push_bind(b.to_owned());
                }
                q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                let rows = q.build().fetch_all(&self.pool).await.map_err($crate::db_err)?;
                rows.iter().map(run_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn thread_head(&self, thread_id: &str) -> StoreResult<Option<Run>> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM runs WHERE thread_id = $1 AND state NOT IN {} ORDER BY created_at_ms, id LIMIT 1",
                    $crate::runs_sql::RUN_COLUMNS,
                    $crate::runs_sql::final_states()
                ))
                .bind(thread_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::db_err)?;
                row.map(|r| run_from_row(&r)).transpose().map_err($crate::db_err)
            }

            async fn set_run_state(
                &self,
                id: &str,
                from: &[RunState],
                to: RunState,
                error: Option<&str>,
                now_ms: i64,
            ) -> StoreResult<Option<Run>> {
                // The states are the enum's own names, never caller text.
                let allowed: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
                if allowed.is_empty() {
                    return Ok(None);
                }
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let moved = sqlx::query(&format!(
                    "UPDATE runs SET state = $2, error = COALESCE($3, error), updated_at_ms = $4 \
                     WHERE id = $1 AND state IN ({})",
                    allowed.join(", ")
                ))
                .bind(id)
                .bind(to.as_str())
                .bind(error)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err($crate::db_err)?
                .rows_affected();
                if moved == 0 {
                    return Ok(None);
                }
                let row = sqlx::query(&format!("SELECT {} FROM runs WHERE id = $1", $crate::runs_sql::RUN_COLUMNS))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let run = run_from_row(&row).map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(Some(run))
            }

            async fn append_many(&self, appends: &[Append]) -> StoreResult<Vec<bool>> {
                let rows: usize = appends.iter().map(|a| a.entries.len()).sum();
                if rows <= $crate::runs_sql::STEP_ROWS_PER_STATEMENT {
                    match insert_steps(&mut *self.write_conn().await?, appends).await {
                        Ok(out) => return Ok(out),
                        // One append's length was stale: nothing went in; try each alone.
                        Err(e) if is_unique_violation(&e) => {}
                        Err(e) => return Err($crate::db_err(e)),
                    }
                }
                let mut out = Vec::with_capacity(appends.len());
                for a in appends {
                    out.push(match insert_steps(&mut *self.write_conn().await?, std::slice::from_ref(a)).await {
                        Ok(done) => done.first().copied().unwrap_or(false),
                        Err(e) if is_unique_violation(&e) => false,
                        Err(e) => return Err($crate::db_err(e)),
                    });
                }
                Ok(out)
            }

            async fn list_steps(&self, id: &str, after_seq: u64, limit: u32) -> StoreResult<Vec<RunStep>> {
                let rows = sqlx::query(
                    "SELECT run_id, seq, kind, payload, created_at_ms FROM run_steps \
                     WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(id)
                .bind(after_seq as i64)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter()
                    .map(|r| -> Result<RunStep, sqlx::Error> {
                        let kind: String = r.try_get("kind")?;
                        Ok(RunStep {
                            run_id: r.try_get("run_id")?,
                            seq: r.try_get::<i64, _>("seq")? as u64,
                            kind: kind.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                            payload: json_from(&r.try_get::<String, _>("payload")?)?,
                            created_at_ms: r.try_get("created_at_ms")?,
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err($crate::db_err)
            }
        }
    };
}
pub(crate) use impl_run_store;
