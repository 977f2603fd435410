//! The job queue's queries, written once for SQLite and PostgreSQL. The only difference is how
//! a claim keeps concurrent claimers apart: PostgreSQL locks the chosen rows with
//! `FOR UPDATE SKIP LOCKED`; SQLite needs nothing, as it runs one write transaction at a time.
//! Every state change of a running job is fenced by its lease id, so a worker that lost its
//! lease (it hung, another worker took over) can never finish the job a second time. Batches
//! (enqueues, attempt ends) go in multi-row statements: each statement is a round trip to the
//! database (on SQLite, to its connection's thread), so one per batch instead of one per job.

use cairn_core::jobs::{AttemptOutcome, Finish, JobState, Outcome};

/// Selected columns of `jobs`, in the order `job_from_row` reads them.
pub(crate) const JOB_COLUMNS: &str = "id, tenant_id, kind, payload, state, priority, idempotency_key, \
    attempts, max_attempts, timeout_ms, run_at_ms, created_at_ms, updated_at_ms, started_at_ms, \
    finished_at_ms, progress, result, last_error, cancel_requested, worker, lease_id, lease_until_ms, trace_parent";

/// Final states, as an SQL list.
pub(crate) const FINAL_STATES: &str = "('succeeded', 'cancelled', 'dead')";

/// Rows per multi-row statement: well under both databases' limits on bound parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// `rows` copies of `template`, comma-separated, with each `?` replaced by the next `$N`.
pub(crate) fn numbered(template: &str, rows: usize) -> String {
    let mut out = String::with_capacity(rows * (template.len() + 16));
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        for c in template.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// What an attempt's end does to its job and its history.
pub(crate) struct FinishEffect<'a> {
    pub(crate) state: JobState,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<&'a str>,
    pub(crate) run_at_ms: Option<i64>,
    pub(crate) finished_at_ms: Option<i64>,
    /// 1 when the attempt is handed back uncounted.
    pub(crate) give_back: i32,
    pub(crate) attempt: AttemptOutcome,
    pub(crate) attempt_error: Option<&'a str>,
}

impl<'a> FinishEffect<'a> {
    pub(crate) fn of(f: &'a Finish) -> Self {
        let base = |state, attempt| FinishEffect {
            state,
            result: None,
            error: None,
            run_at_ms: None,
            finished_at_ms: Some(f.at_ms),
            give_back: 0,
            attempt,
            attempt_error: None,
        };
        match &f.outcome {
            Outcome::Succeeded(r) => FinishEffect {
                result: r.as_ref().map(|v| v.to_string()),
                ..base(JobState::Succeeded, AttemptOutcome::Succeeded)
            },
            Outcome::Retry { run_at_ms, error, outcome } => FinishEffect {
                error: Some(error),
                attempt_error: Some(error),
                run_at_ms: Some(*run_at_ms),
                finished_at_ms: None,
                ..base(JobState::Queued, *outcome)
            },
            Outcome::Dead { error, outcome } => {
                FinishEffect { error: Some(error), attempt_error: Some(error), ..base(JobState::Dead, *outcome) }
            }
            Outcome::Cancelled => base(JobState::Cancelled, AttemptOutcome::Cancelled),
            Outcome::Released => FinishEffect {
                run_at_ms: Some(f.at_ms),
                finished_at_ms: None,
                give_back: 1,
                attempt_error: Some("the worker shut down; handed back unfinished"),
                ..base(JobState::Queued, AttemptOutcome::Interrupted)
            },
        }
    }
}

/// Implements `JobStore` for `$store` (which has a `pool` field) on database `$db`; `$lock` is
/// the row-locking clause claims and the reaper append to their row selection.
macro_rules! impl_job_store {
    ($store:ty, $db:ty, $lock:literal) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use cairn_core::jobs::{
            Attempt, AttemptOutcome, BulkFilter, ClaimRequest, Finish, Job, JobFilter, JobState, JobStore,
            LeaseRef, LeaseStatus, NewJob, QueueCount, Reaped,
        };
        use cairn_core::store::StoreResult;
        use sqlx::Row;

        type JobRow = <$db as sqlx::Database>::Row;

        /// Row locking for claims and the reaper.
        const LOCK: &str = $lock;

        fn json_col(r: &JobRow, col: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
            r.try_get::<Option<String>, _>(col)?
                .map(|s| serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(e.into())))
                .transpose()
        }

        fn job_from_row(r: &JobRow) -> Result<Job, sqlx::Error> {
            let state: String = r.try_get("state")?;
            Ok(Job {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                kind: r.try_get("kind")?,
                payload: json_col(r, "payload")?.unwrap_or(serde_json::Value::Null),
                state: state.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                priority: r.try_get("priority")?,
                idempotency_key: r.try_get("idempotency_key")?,
                attempts: r.try_get::<i32, _>("attempts")?.max(0) as u32,
                max_attempts: r.try_get::<i32, _>("max_attempts")?.max(0) as u32,
                timeout_ms: r.try_get::<i64, _>("timeout_ms")?.max(0) as u64,
                run_at_ms: r.try_get("run_at_ms")?,
                created_at_ms: r.try_get("created_at_ms")?,
                updated_at_ms: r.try_get("updated_at_ms")?,
                started_at_ms: r.try_get("started_at_ms")?,
                finished_at_ms: r.try_get("finished_at_ms")?,
                progress: json_col(r, "progress")?,
                result: json_col(r, "result")?,
                last_error: r.try_get("last_error")?,
                cancel_requested: r.try_get("cancel_requested")?,
                worker: r.try_get("worker")?,
                lease_id: r.try_get("lease_id")?,
                lease_until_ms: r.try_get("lease_until_ms")?,
                trace_parent: r.try_get("trace_parent")?,
            })
        }

        fn jobs_from_rows(rows: &[JobRow]) -> StoreResult<Vec<Job>> {
            rows.iter().map(job_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
        }

        /// Runs `sql` (binding `$1` = job id, `$2` = time) and says whether it changed the job.
        async fn update_one(
            conn: &mut <$db as sqlx::Database>::Connection,
            sql: &'static str,
            id: &str,
            at_ms: i64,
        ) -> StoreResult<bool> {
            let n = sqlx::query(sql).bind(id).bind(at_ms).execute(conn).await.map_err($crate::db_err)?.rows_affected();
            Ok(n == 1)
        }

        /// Inserts `jobs` inside `tx` (the knowledge store writes documents and their jobs in one
        /// transaction); a job whose idempotency key exists returns the existing job instead.
        pub(super) async fn insert_jobs(
            tx: &mut $crate::tx::Tx<'_, $db>,
            jobs: &[NewJob],
        ) -> StoreResult<Vec<(Job, bool)>> {
            // One multi-row INSERT per chunk; RETURNING says which rows went in (the others
            // hit an existing idempotency key).
            let mut inserted = std::collections::HashSet::new();
            for chunk in jobs.chunks($crate::jobs_sql::ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO jobs (id, tenant_id, kind, payload, state, priority, idempotency_key, attempts, \
                     max_attempts, timeout_ms, run_at_ms, created_at_ms, updated_at_ms, cancel_requested, trace_parent) VALUES {} \
                     ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL \
                     DO NOTHING RETURNING id",
                    $crate::jobs_sql::numbered("(?, ?, ?, ?, 'queued', ?, ?, 0, ?, ?, ?, ?, ?, FALSE, ?)", chunk.len())
                );
                let mut q = sqlx::query(&sql);
                for j in chunk {
                    q = q
                        .bind(&j.id)
                        .bind(&j.tenant_id)
                        .bind(&j.kind)
                        .bind(j.payload.to_string())
                        .bind(j.priority)
                        .bind(&j.idempotency_key)
                        .bind(j.max_attempts as i32)
                        .bind(j.timeout_ms as i64)
                        .bind(j.run_at_ms)
                        .bind(j.created_at_ms)
                        .bind(j.created_at_ms)
                        .bind(&j.trace_parent);
                }
                for r in q.fetch_all(&mut **tx).await.map_err($crate::db_err)? {
                    inserted.insert(r.try_get::<String, _>("id").map_err($crate::db_err)?);
                }
            }
            let mut out = Vec::with_capacity(jobs.len());
            for j in jobs {
                if inserted.contains(&j.id) {
                    out.push((j.clone().into_job(), true));
                    continue;
                }
                let sql = format!(
                    "SELECT {} FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2",
                    $crate::jobs_sql::JOB_COLUMNS
                );
                let row = sqlx::query(&sql)
                    .bind(&j.tenant_id)
                    .bind(&j.idempotency_key)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err($crate::db_err)?;
                out.push((job_from_row(&row).map_err($crate::db_err)?, false));
            }
            Ok(out)
        }

        #[async_trait::async_trait]
        impl JobStore for $store {
            async fn enqueue_jobs(&self, jobs: &[NewJob]) -> StoreResult<Vec<(Job, bool)>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let out = insert_jobs(&mut tx, jobs).await?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(out)
            }

            async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
                let sql = format!("SELECT {} FROM jobs WHERE id = $1", $crate::jobs_sql::JOB_COLUMNS);
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err($crate::db_err)?;
                row.as_ref().map(job_from_row).transpose().map_err($crate::db_err)
            }

            async fn list_jobs(&self, f: &JobFilter) -> StoreResult<Vec<Job>> {
                let sql = format!(
                    "SELECT {} FROM jobs WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR kind = $2) \
                     AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR created_at_ms >= $4) \
                     AND ($5 IS NULL OR created_at_ms < $5) AND ($6 IS NULL OR id < $6) \
                     ORDER BY id DESC LIMIT $7",
                    $crate::jobs_sql::JOB_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(f.tenant_id.as_deref())
                    .bind(f.kind.as_deref())
                    .bind(f.state.map(JobState::as_str))
                    .bind(f.created_from_ms)
                    .bind(f.created_to_ms)
                    .bind(f.before_id.as_deref())
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                jobs_from_rows(&rows)
            }

            async fn job_attempts(&self, id: &str) -> StoreResult<Vec<Attempt>> {
                let rows = sqlx::query(
                    "SELECT worker, started_at_ms, finished_at_ms, outcome, error FROM job_attempts \
                     WHERE job_id = $1 ORDER BY started_at_ms, finished_at_ms",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| {
                        Ok(Attempt {
                            number: i as u32 + 1,
                            worker: r.try_get("worker")?,
                            started_at_ms: r.try_get("started_at_ms")?,
                            finished_at_ms: r.try_get("finished_at_ms")?,
                            outcome: AttemptOutcome::parse(&r.try_get::<String, _>("outcome")?),
                            error: r.try_get("error")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err($crate::db_err)
            }

            async fn claim_jobs(&self, c: &ClaimRequest<'_>) -> StoreResult<Vec<Job>> {
                // The chosen ids are materialised first: PostgreSQL may otherwise run a LIMIT
                // subquery inside `IN (...)` more than once and claim more rows than asked for.
                let sql = format!(
                    "WITH next AS MATERIALIZED (SELECT id FROM jobs WHERE kind = $5 AND state = 'queued' \
                     AND run_at_ms <= $4 ORDER BY priority DESC, run_at_ms, id LIMIT $6{LOCK}) \
                     UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = $1, lease_id = $2, \
                     lease_until_ms = $3, started_at_ms = $4, updated_at_ms = $4, cancel_requested = FALSE \
                     WHERE state = 'queued' AND id IN (SELECT id FROM next) RETURNING {}",
                    $crate::jobs_sql::JOB_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(c.worker)
                    .bind(c.lease_id)
                    .bind(c.now_ms + c.lease_ms)
                    .bind(c.now_ms)
                    .bind(c.kind)
                    .bind(i64::from(c.limit))
                    .fetch_all(&mut *self.write_conn().await?)
                    .await
                    .map_err($crate::db_err)?;
                let mut jobs = jobs_from_rows(&rows)?;
                jobs.sort_by(|a, b| {
                    b.priority.cmp(&a.priority).then(a.run_at_ms.cmp(&b.run_at_ms)).then(a.id.cmp(&b.id))
                });
                Ok(jobs)
            }

            async fn renew_leases(&self, leases: &[LeaseRef], until_ms: i64) -> StoreResult<Vec<LeaseStatus>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let mut out = Vec::with_capacity(leases.len());
                for l in leases {
                    let row = sqlx::query(
                        "UPDATE jobs SET lease_until_ms = $1 WHERE id = $2 AND lease_id = $3 AND state = 'running' \
                         RETURNING cancel_requested",
                    )
                    .bind(until_ms)
                    .bind(&l.job_id)
                    .bind(&l.lease_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                    let cancel_requested =
                        row.as_ref().map(|r| r.try_get::<bool, _>("cancel_requested")).transpose().map_err($crate::db_err)?;
                    out.push(LeaseStatus {
                        lease: l.clone(),
                        held: cancel_requested.is_some(),
                        cancel_requested: cancel_requested.unwrap_or(false),
                    });
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(out)
            }

            async fn finish_jobs(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let mut applied = std::collections::HashSet::new();
                for chunk in finishes.chunks($crate::jobs_sql::ROWS_PER_STATEMENT) {
                    // One UPDATE for the whole chunk, each row fenced by its lease.
                    let sql = format!(
                        "UPDATE jobs SET state = v.column3, result = v.column4, \
                         last_error = COALESCE(v.column5, jobs.last_error), \
                         run_at_ms = COALESCE(v.column6, jobs.run_at_ms), finished_at_ms = v.column7, \
                         attempts = jobs.attempts - v.column8, updated_at_ms = v.column9, worker = NULL, \
                         lease_id = NULL, lease_until_ms = NULL, cancel_requested = FALSE \
                         FROM (VALUES {}) AS v \
                         WHERE jobs.id = v.column1 AND jobs.lease_id = v.column2 AND jobs.state = 'running' \
                         RETURNING jobs.id",
                        $crate::jobs_sql::numbered(
                            "(?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS BIGINT))",
                            chunk.len()
                        )
                    );
                    let mut q = sqlx::query(&sql);
                    for f in chunk {
                        let e = $crate::jobs_sql::FinishEffect::of(f);
                        q = q
                            .bind(&f.job_id)
                            .bind(&f.lease_id)
                            .bind(e.state.as_str())
                            .bind(e.result)
                            .bind(e.error.map(str::to_owned))
                            .bind(e.run_at_ms)
                            .bind(e.finished_at_ms)
                            .bind(e.give_back)
                            .bind(f.at_ms);
                    }
                    for r in q.fetch_all(&mut *tx).await.map_err($crate::db_err)? {
                        applied.insert(r.try_get::<String, _>("id").map_err($crate::db_err)?);
                    }
                    // Every attempt that ended is kept, in one INSERT.
                    let ended: Vec<&Finish> = chunk.iter().filter(|f| applied.contains(&f.job_id)).collect();
                    if ended.is_empty() {
                        continue;
                    }
                    let sql = format!(
                        "INSERT INTO job_attempts (job_id, lease_id, worker, started_at_ms, finished_at_ms, outcome, error) \
                         VALUES {} ON CONFLICT (job_id, lease_id) DO NOTHING",
                        $crate::jobs_sql::numbered("(?, ?, ?, ?, ?, ?, ?)", ended.len())
                    );
                    let mut q = sqlx::query(&sql);
                    for f in ended {
                        let e = $crate::jobs_sql::FinishEffect::of(f);
                        q = q
                            .bind(&f.job_id)
                            .bind(&f.lease_id)
                            .bind(&f.worker)
                            .bind(f.started_at_ms)
                            .bind(f.at_ms)
                            .bind(e.attempt.as_str())
                            .bind(e.attempt_error.map(str::to_owned));
                    }
                    q.execute(&mut *tx).await.map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(finishes.iter().map(|f| applied.contains(&f.job_id)).collect())
            }

            async fn set_job_progress(
                &self,
                l: &LeaseRef,
                progress: &serde_json::Value,
                at_ms: i64,
            ) -> StoreResult<bool> {
                let n = sqlx::query(
                    "UPDATE jobs SET progress = $1, updated_at_ms = $2 WHERE id = $3 AND lease_id = $4 AND state = 'running'",
                )
                .bind(progress.to_string())
                .bind(at_ms)
                .bind(&l.job_id)
                .bind(&l.lease_id)
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?
                .rows_affected();
                Ok(n == 1)
            }

            async fn reap_expired_leases(&self, now_ms: i64, limit: u32) -> StoreResult<Reaped> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let sql = format!(
                    "SELECT id, kind, lease_id, worker, started_at_ms FROM jobs WHERE state = 'running' \
                     AND lease_until_ms < $1 ORDER BY lease_until_ms LIMIT $2{LOCK}"
                );
                let expired = sqlx::query(&sql)
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let mut reaped = Reaped::default();
                for r in &expired {
                    let read = || -> Result<(String, String, String, String, i64), sqlx::Error> {
                        Ok((
                            r.try_get("id")?,
                            r.try_get("kind")?,
                            r.try_get::<Option<String>, _>("lease_id")?.unwrap_or_default(),
                            r.try_get::<Option<String>, _>("worker")?.unwrap_or_default(),
                            r.try_get::<Option<i64>, _>("started_at_ms")?.unwrap_or(now_ms),
                        ))
                    };
                    let (id, kind, lease_id, worker, started) = read().map_err($crate::db_err)?;
                    let error = format!("lease expired: worker '{worker}' stopped renewing it (it died or hung)");
                    let row = sqlx::query(
                        "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' \
                         WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                         finished_at_ms = CASE WHEN cancel_requested OR attempts >= max_attempts THEN $1 ELSE NULL END, \
                         run_at_ms = $1, updated_at_ms = $1, last_error = $2, worker = NULL, lease_id = NULL, \
                         lease_until_ms = NULL WHERE id = $3 AND lease_id = $4 AND state = 'running' RETURNING state",
                    )
                    .bind(now_ms)
                    .bind(&error)
                    .bind(&id)
                    .bind(&lease_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                    let Some(row) = row else { continue };
                    let state: String = row.try_get("state").map_err($crate::db_err)?;
                    sqlx::query(
                        "INSERT INTO job_attempts (job_id, lease_id, worker, started_at_ms, finished_at_ms, outcome, error) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id, lease_id) DO NOTHING",
                    )
                    .bind(&id)
                    .bind(&lease_id)
                    .bind(&worker)
                    .bind(started)
                    .bind(now_ms)
                    .bind(AttemptOutcome::LeaseExpired.as_str())
                    .bind(&error)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                    match state.as_str() {
                        "queued" => reaped.requeued.push((id, kind)),
                        "dead" => reaped.dead.push((id, kind)),
                        _ => reaped.cancelled.push((id, kind)),
                    }
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(reaped)
            }

            async fn cancel_queued_job(&self, id: &str, at_ms: i64) -> StoreResult<bool> {
                update_one(&mut *self.write_conn().await?, "UPDATE jobs SET state = 'cancelled', finished_at_ms = $2, updated_at_ms = $2 \
                     WHERE id = $1 AND state = 'queued'", id, at_ms).await
            }

            async fn request_job_cancel(&self, id: &str, at_ms: i64) -> StoreResult<bool> {
                update_one(&mut *self.write_conn().await?, "UPDATE jobs SET cancel_requested = TRUE, updated_at_ms = $2 WHERE id = $1 AND state = 'running'", id, at_ms).await
            }

            async fn requeue_job(&self, id: &str, at_ms: i64) -> StoreResult<bool> {
                update_one(&mut *self.write_conn().await?, "UPDATE jobs SET state = 'queued', attempts = 0, run_at_ms = $2, updated_at_ms = $2, \
                     finished_at_ms = NULL, result = NULL, cancel_requested = FALSE \
                     WHERE id = $1 AND state IN ('dead', 'cancelled')", id, at_ms).await
            }

            async fn requeue_dead_jobs(&self, f: &BulkFilter, at_ms: i64) -> StoreResult<u64> {
                let n = sqlx::query(
                    "UPDATE jobs SET state = 'queued', attempts = 0, run_at_ms = $1, updated_at_ms = $1, \
                     finished_at_ms = NULL, cancel_requested = FALSE \
                     WHERE state = 'dead' AND ($2 IS NULL OR tenant_id = $2) AND ($3 IS NULL OR kind = $3)",
                )
                .bind(at_ms)
                .bind(f.tenant_id.as_deref())
                .bind(f.kind.as_deref())
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?
                .rows_affected();
                Ok(n)
            }

            async fn purge_jobs(&self, f: &BulkFilter, before_ms: i64) -> StoreResult<u64> {
                let matching = format!(
                    "state IN {} AND finished_at_ms < $1 AND ($2 IS NULL OR tenant_id = $2) AND ($3 IS NULL OR kind = $3)",
                    $crate::jobs_sql::FINAL_STATES
                );
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                sqlx::query(&format!("DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE {matching})"))
                    .bind(before_ms)
                    .bind(f.tenant_id.as_deref())
                    .bind(f.kind.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let n = sqlx::query(&format!("DELETE FROM jobs WHERE {matching}"))
                    .bind(before_ms)
                    .bind(f.tenant_id.as_deref())
                    .bind(f.kind.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?
                    .rows_affected();
                tx.commit().await.map_err($crate::db_err)?;
                Ok(n)
            }

            async fn queue_counts(&self) -> StoreResult<Vec<QueueCount>> {
                // Only the states that make up a queue's depth (final ones grow until purged),
                // one state per branch so each is answered from its partial index.
                let count = |state: &str| {
                    format!("SELECT kind, '{state}' AS state, CAST(COUNT(*) AS BIGINT) AS n FROM jobs WHERE state = '{state}' GROUP BY kind")
                };
                let sql = format!("{} UNION ALL {} UNION ALL {}", count("queued"), count("running"), count("dead"));
                let rows = sqlx::query(&sql)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter()
                    .map(|r| {
                        let state: String = r.try_get("state")?;
                        Ok(QueueCount {
                            kind: r.try_get("kind")?,
                            state: state.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                            count: r.try_get::<i64, _>("n")?.max(0) as u64,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err($crate::db_err)
            }
        }
    };
}
pub(crate) use impl_job_store;
