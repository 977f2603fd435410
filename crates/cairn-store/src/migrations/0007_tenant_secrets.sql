-- Per-tenant secrets Cairn signs with (webhook deliveries), created on first use. They must be
-- read back to sign, so they are stored as they are; the database is readable by its owner only.
CREATE TABLE IF NOT EXISTS tenant_secrets (
    tenant_id     TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, purpose)
);
