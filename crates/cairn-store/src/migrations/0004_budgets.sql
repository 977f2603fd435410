-- Every model call has its own id; the request that caused it becomes a column.
ALTER TABLE usage_records ADD COLUMN request_id TEXT;
UPDATE usage_records SET request_id = id WHERE request_id IS NULL;
CREATE INDEX IF NOT EXISTS usage_request ON usage_records (request_id);

-- Settled spend per key and UTC month, in billionths of a dollar. A row is created (from the
-- month's usage records) the first time a budgeted key reserves; every settled call adds to it.
-- Reservations lock this row, which serialises them per key across processes.
CREATE TABLE IF NOT EXISTS key_spend (
    key_id         TEXT NOT NULL,
    month_start_ms BIGINT NOT NULL,
    settled_nusd   BIGINT NOT NULL,
    PRIMARY KEY (key_id, month_start_ms)
);

-- Worst-case costs held by calls in flight; a call's usage record deletes its reservation.
-- Reservations of calls that never settle (their node crashed) lapse at expires_at_ms.
CREATE TABLE IF NOT EXISTS budget_reservations (
    id            TEXT PRIMARY KEY,
    key_id        TEXT NOT NULL,
    amount_nusd   BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_reservations_key ON budget_reservations (key_id, expires_at_ms);
