-- Feedback on traces, RAG answers and agent runs, and stored answer evaluations. Kept per
-- tenant; feedback is read by trace and by target, and removed by age with its traces.
CREATE TABLE feedback (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    target TEXT NOT NULL,
    target_id TEXT NOT NULL,
    trace_id TEXT,
    name TEXT NOT NULL,
    score_num DOUBLE PRECISION,
    score_bool BOOLEAN,
    score_cat TEXT,
    comment TEXT,
    author TEXT,
    key_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX feedback_by_trace ON feedback (tenant_id, trace_id);
CREATE INDEX feedback_by_target ON feedback (tenant_id, target, target_id);
CREATE INDEX feedback_by_age ON feedback (tenant_id, created_ms);

CREATE TABLE evals (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT,
    judge TEXT,
    questions BIGINT NOT NULL,
    citation_precision DOUBLE PRECISION,
    citation_recall DOUBLE PRECISION,
    faithfulness DOUBLE PRECISION,
    items TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX evals_by_tenant ON evals (tenant_id, created_ms);
