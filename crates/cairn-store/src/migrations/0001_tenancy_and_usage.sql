CREATE TABLE IF NOT EXISTS tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    name               TEXT NOT NULL,
    role               TEXT NOT NULL,
    prefix             TEXT NOT NULL,
    hash               TEXT NOT NULL UNIQUE,
    rpm                BIGINT,
    tpm                BIGINT,
    monthly_budget_usd DOUBLE PRECISION,
    created_at_ms      BIGINT NOT NULL,
    revoked_at_ms      BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE IF NOT EXISTS usage_records (
    id               TEXT PRIMARY KEY,
    ts_ms            BIGINT NOT NULL,
    tenant_id        TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    endpoint         TEXT NOT NULL,
    model_alias      TEXT NOT NULL,
    provider         TEXT NOT NULL,
    upstream_model   TEXT NOT NULL,
    input_tokens     BIGINT NOT NULL,
    output_tokens    BIGINT NOT NULL,
    tokens_estimated BOOLEAN NOT NULL,
    cost_usd         DOUBLE PRECISION NOT NULL,
    latency_ms       BIGINT NOT NULL,
    ttft_ms          BIGINT,
    output_tps       DOUBLE PRECISION,
    retries          BIGINT NOT NULL,
    fallbacks        BIGINT NOT NULL,
    streamed         BOOLEAN NOT NULL,
    status           TEXT NOT NULL,
    error            TEXT
);
CREATE INDEX IF NOT EXISTS usage_tenant_ts ON usage_records (tenant_id, ts_ms);
CREATE INDEX IF NOT EXISTS usage_key_ts ON usage_records (key_id, ts_ms);
