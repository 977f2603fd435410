-- Traces: every span as it was recorded, and one summary row per trace (folded from its
-- spans as batches arrive) that trace lists filter and page on. Both are keyed by tenant
-- first: a caller who sends another tenant's trace id in `traceparent` only ever adds to a
-- trace of its own tenant.
CREATE TABLE IF NOT EXISTS spans (
    tenant_id      TEXT NOT NULL,
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    parent_id      TEXT,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    start_ns       BIGINT NOT NULL,
    end_ns         BIGINT NOT NULL,
    status         TEXT NOT NULL,
    status_message TEXT,
    model          TEXT,
    attributes     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (tenant_id, start_ns);

CREATE TABLE IF NOT EXISTS traces (
    tenant_id     TEXT NOT NULL,
    trace_id      TEXT NOT NULL,
    name          TEXT NOT NULL,
    start_ns      BIGINT NOT NULL,
    end_ns        BIGINT NOT NULL,
    span_count    BIGINT NOT NULL,
    error_count   BIGINT NOT NULL,
    key_id        TEXT,
    end_user      TEXT,
    session_id    TEXT,
    run_id        TEXT,
    model         TEXT,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nusd     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, trace_id)
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (tenant_id, start_ns, trace_id);
CREATE INDEX IF NOT EXISTS traces_all_by_start ON traces (start_ns, trace_id);
CREATE INDEX IF NOT EXISTS traces_by_run ON traces (tenant_id, run_id);
-- The instance owner reads a trace by its id alone.
CREATE INDEX IF NOT EXISTS traces_by_id ON traces (trace_id);
