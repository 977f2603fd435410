-- The audit log: one hash chain, appended in order (seq has no gaps), never updated.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, seq);
