-- Agents (issue 11). An agent row holds its latest version; every version's definition is kept
-- in agent_versions, never changed, so a run replays the version it pinned. Deleting an agent
-- sets deleted_at_ms: its name is free again, its versions stay.
CREATE TABLE IF NOT EXISTS agents (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    deleted_at_ms  BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS agents_live_name ON agents (tenant_id, name) WHERE deleted_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS agents_tenant ON agents (tenant_id, id);

CREATE TABLE IF NOT EXISTS agent_versions (
    agent_id       TEXT NOT NULL REFERENCES agents (id),
    version        BIGINT NOT NULL,
    spec           TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, version)
);
