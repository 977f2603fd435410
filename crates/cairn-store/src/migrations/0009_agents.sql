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

-- Threads: append-only conversations, messages numbered from 1.
CREATE TABLE IF NOT EXISTS threads (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    last_seq       BIGINT NOT NULL DEFAULT 0,
    created_at_ms  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS thread_messages (
    thread_id      TEXT NOT NULL REFERENCES threads (id),
    seq            BIGINT NOT NULL,
    message        TEXT NOT NULL,
    run_id         TEXT,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

-- Runs and their journals: one row per step, holding what that step added. `steps` is the
-- journal's length, the compare-and-set point for appends.
CREATE TABLE IF NOT EXISTS runs (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    agent_version  BIGINT NOT NULL,
    thread_id      TEXT,
    input          TEXT NOT NULL,
    state          TEXT NOT NULL,
    steps          BIGINT NOT NULL DEFAULT 0,
    error          TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    FOREIGN KEY (agent_id, agent_version) REFERENCES agent_versions (agent_id, version)
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs (thread_id, created_at_ms);
CREATE INDEX IF NOT EXISTS runs_tenant ON runs (tenant_id, id);
CREATE TABLE IF NOT EXISTS run_steps (
    run_id         TEXT NOT NULL REFERENCES runs (id),
    seq            BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
