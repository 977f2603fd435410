-- Per-key rate buckets shared by every process on the database (`gateway.shared_limits`):
-- the level after the last take and when it was taken; refilled arithmetically on each take.
CREATE TABLE IF NOT EXISTS rate_buckets (
    key_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    level      DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, kind)
);
