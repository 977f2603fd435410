CREATE TABLE IF NOT EXISTS collections (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    embedding_model      TEXT NOT NULL,
    dimensions           INTEGER NOT NULL,
    chunk_max_tokens     INTEGER NOT NULL,
    chunk_overlap_tokens INTEGER NOT NULL,
    pii                  TEXT NOT NULL,
    created_at_ms        BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS collections_name ON collections (tenant_id, name);

CREATE TABLE IF NOT EXISTS documents (
    id             TEXT PRIMARY KEY,
    collection_id  TEXT NOT NULL REFERENCES collections (id),
    tenant_id      TEXT NOT NULL,
    title          TEXT NOT NULL,
    source         TEXT,
    metadata       TEXT NOT NULL,
    fingerprint    TEXT,
    state          TEXT NOT NULL,
    error          TEXT,
    chunk_count    INTEGER NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_collection ON documents (collection_id, id);

CREATE TABLE IF NOT EXISTS chunks (
    id            {SERIAL},
    document_id   TEXT NOT NULL REFERENCES documents (id),
    collection_id TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    text          TEXT NOT NULL,
    start_byte    INTEGER NOT NULL,
    end_byte      INTEGER NOT NULL,
    headings      TEXT NOT NULL,
    embedding     {BYTES} NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id, seq);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection_id, id);

-- Every change to what is searchable, in commit order on SQLite (one writer); nodes keep their
-- in-memory indexes current by reading it from their last position.
CREATE TABLE IF NOT EXISTS knowledge_changes (
    seq           {SERIAL},
    collection_id TEXT NOT NULL,
    document_id   TEXT,
    kind          TEXT NOT NULL,
    at_ms         BIGINT NOT NULL
);
