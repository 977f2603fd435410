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
-- Partial indexes (both databases have them) hold only the rows in one state, so a state
-- change touches the index it leaves and the one it enters, and nothing else.
-- Claims scan due queued jobs of one type by priority, then age.
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (kind, priority DESC, run_at_ms, id) WHERE state = 'queued';
-- The reaper scans running jobs by lease expiry.
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_until_ms) WHERE state = 'running';
-- Queue-depth metrics count dead jobs by type.
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (kind) WHERE state = 'dead';
-- Purges scan finished jobs by age.
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

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
