//! The claim query: due queued jobs of one type, taking turns between tenants.
//!
//! Ordered by priority and age alone, one tenant's flood of jobs (or its jobs at the top
//! priority, which every tenant may set) would run before any other tenant's, for as long as it
//! lasted. So a claim first walks the tenants that have queued jobs of the type, starting after
//! the one its worker served last (`ClaimRequest::after_tenant`) and wrapping around, at most
//! `limit` of them; takes each one's best `limit` due jobs (priority, then age: a tenant's
//! priorities order its own jobs); and fills the batch round-robin: every tenant's first job,
//! then every tenant's second, and so on. The walk is a loose index scan (one index probe per
//! tenant over `jobs_fair`), so a tenant with a million queued jobs costs the others a probe,
//! not a scan past its jobs.
//!
//! Parameters: `$1` worker, `$2` lease id, `$3` lease end, `$4` now, `$5` job type, `$6`
//! limit, `$7` the tenant served last (empty: start from the first).

/// How a backend joins each walked tenant to its candidate jobs.
#[derive(Clone, Copy)]
pub(crate) enum Candidates {
    /// `CROSS JOIN LATERAL`, locking the candidates (PostgreSQL: its planner runs an `IN`
    /// subquery that refers to the outer row once per row of `jobs`).
    Lateral,
    /// A correlated `IN` subquery (SQLite, which has no `LATERAL`; one writer at a time, so no
    /// locks).
    InSubquery,
}

/// The claim statement for a backend, returning `columns` of the claimed jobs.
pub(crate) fn claim_sql(candidates: Candidates, columns: &str) -> String {
    let due = "kind = $5 AND state = 'queued' AND tenant_id = tenants.t AND run_at_ms <= $4 \
               ORDER BY priority DESC, run_at_ms, id LIMIT $6";
    let pick = match candidates {
        Candidates::Lateral => format!(
            "FROM tenants CROSS JOIN LATERAL \
             (SELECT id, tenant_id, priority, run_at_ms FROM jobs WHERE {due} FOR UPDATE SKIP LOCKED) j"
        ),
        Candidates::InSubquery => format!("FROM tenants JOIN jobs j ON j.id IN (SELECT id FROM jobs WHERE {due})"),
    };
    let next_tenant = |bound: &str| {
        format!("SELECT MIN(tenant_id) FROM jobs WHERE kind = $5 AND state = 'queued' AND tenant_id > {bound}")
    };
    format!(
        "WITH RECURSIVE \
         after_t(t, n) AS ( \
             SELECT ({first_after}), 1 \
             UNION ALL SELECT ({next_after}), n + 1 FROM after_t WHERE t IS NOT NULL AND n < $6), \
         before_t(t, n) AS ( \
             SELECT (SELECT MIN(tenant_id) FROM jobs WHERE kind = $5 AND state = 'queued' AND tenant_id <= $7), 1 \
             UNION ALL SELECT ({next_before} AND tenant_id <= $7), n + 1 FROM before_t \
             WHERE t IS NOT NULL AND n < $6), \
         tenants(t, turn) AS ( \
             SELECT t, n FROM after_t WHERE t IS NOT NULL \
             UNION ALL SELECT t, n + $6 FROM before_t WHERE t IS NOT NULL \
             ORDER BY 2 LIMIT $6), \
         next AS MATERIALIZED ( \
             SELECT id FROM ( \
                 SELECT j.id, tenants.turn, ROW_NUMBER() OVER \
                     (PARTITION BY j.tenant_id ORDER BY j.priority DESC, j.run_at_ms, j.id) AS rank \
                 {pick}) ranked \
             ORDER BY rank, turn LIMIT $6) \
         UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = $1, lease_id = $2, \
         lease_until_ms = $3, started_at_ms = $4, updated_at_ms = $4, cancel_requested = FALSE \
         WHERE state = 'queued' AND id IN (SELECT id FROM next) RETURNING {columns}",
        first_after = next_tenant("$7"),
        next_after = next_tenant("after_t.t"),
        next_before = next_tenant("before_t.t"),
    )
}
