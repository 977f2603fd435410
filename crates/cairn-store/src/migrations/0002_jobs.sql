CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    idempotency_key  TEXT,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    run_at_ms        BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    started_at_ms    BIGINT,
    finished_at_ms   BIGINT,
    progress         TEXT,
    result           TEXT,
    last_error       TEXT,
    cancel_requested BOOLEAN NOT NULL,
    worker           TEXT,
    lease_id         TEXT,
    lease_until_ms   BIGINT
);
-- Claims scan due jobs of one type by priority, then age.
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (kind, state, priority DESC, run_at_ms, id);
-- The reaper scans running jobs by lease expiry.
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (state, lease_until_ms);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant_id, id);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (state, finished_at_ms);
-- NULL keys are distinct in both SQLite and PostgreSQL, so jobs without a key never collide.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant_id, idempotency_key);

CREATE TABLE IF NOT EXISTS job_attempts (
    job_id         TEXT NOT NULL,
    lease_id       TEXT NOT NULL,
    worker         TEXT NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    error          TEXT,
    PRIMARY KEY (job_id, lease_id)
);
