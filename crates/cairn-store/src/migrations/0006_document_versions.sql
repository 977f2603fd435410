-- Document ids are unique within a collection, not across the instance: two tenants (or two
-- collections of one tenant) may each have a document `handbook.md`. Each document has a
-- version, bumped by every upload; an ingest job commits only the version it was made for.
-- Collections may exempt metadata fields from redaction.
-- SQLite cannot change a primary key in place, so both tables are rebuilt (chunk ids kept).
CREATE TABLE documents_v2 (
    id             TEXT NOT NULL,
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
    updated_at_ms  BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    PRIMARY KEY (collection_id, id)
);
INSERT INTO documents_v2 (id, collection_id, tenant_id, title, source, metadata, fingerprint, state, error,
    chunk_count, created_at_ms, updated_at_ms, version)
SELECT id, collection_id, tenant_id, title, source, metadata, fingerprint, state, error,
    chunk_count, created_at_ms, updated_at_ms, 1 FROM documents;

CREATE TABLE chunks_v2 (
    id            {SERIAL},
    document_id   TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    text          TEXT NOT NULL,
    start_byte    INTEGER NOT NULL,
    end_byte      INTEGER NOT NULL,
    headings      TEXT NOT NULL,
    embedding     {BYTES} NOT NULL,
    FOREIGN KEY (collection_id, document_id) REFERENCES documents_v2 (collection_id, id)
);
INSERT INTO chunks_v2 (id, document_id, collection_id, seq, text, start_byte, end_byte, headings, embedding)
SELECT id, document_id, collection_id, seq, text, start_byte, end_byte, headings, embedding FROM chunks;

DROP TABLE chunks;
DROP TABLE documents;
ALTER TABLE documents_v2 RENAME TO documents;
ALTER TABLE chunks_v2 RENAME TO chunks;
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (collection_id, document_id, seq);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection_id, id);
{RESET_SERIAL:chunks}

ALTER TABLE collections ADD COLUMN pii_exempt TEXT NOT NULL DEFAULT '[]';
