-- Search inside PostgreSQL (migration 0019, PostgreSQL only): what `knowledge.retrieval =
-- "database"` reads. Written in the same transactions as the chunks themselves, whatever the
-- retrieval setting, so switching it needs no reindexing.
CREATE EXTENSION IF NOT EXISTS vector;

-- Metadata as JSONB, for filters compiled to SQL.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS meta JSONB GENERATED ALWAYS AS (metadata::jsonb) STORED;

-- Each collection's number (naming its partitions and HNSW index), dimension, and the BM25
-- statistics of its chunks (count, total length in terms), kept by the writes that change them.
CREATE TABLE IF NOT EXISTS search_collections (
    collection_id TEXT PRIMARY KEY,
    key           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    dimensions    INTEGER NOT NULL,
    chunks        BIGINT NOT NULL DEFAULT 0,
    total_terms   BIGINT NOT NULL DEFAULT 0,
    -- False for collections that held chunks before this schema: their chunks are indexed by
    -- the first node that starts (`DatabaseRetriever::backfill`).
    backfilled    BOOLEAN NOT NULL DEFAULT TRUE
);

-- One row per chunk: its vector (untyped: each collection's partition is indexed at its own
-- dimension) and its length in terms. Partitioned by collection, so a collection's HNSW graph
-- holds its vectors only and deleting a collection drops its partitions.
CREATE TABLE IF NOT EXISTS chunk_vectors (
    collection_key BIGINT NOT NULL,
    chunk_id       BIGINT NOT NULL,
    document_id    TEXT NOT NULL,
    embedding      vector NOT NULL,
    terms          INTEGER NOT NULL,
    PRIMARY KEY (collection_key, chunk_id)
) PARTITION BY LIST (collection_key);
CREATE INDEX IF NOT EXISTS chunk_vectors_document ON chunk_vectors (collection_key, document_id);

-- The inverted index: one row per (term, chunk) with the term's frequency, the chunk's length
-- (so BM25 reads postings alone) and the posting's impact (its BM25 weight at the collection's
-- average length when written), by which each term's postings are read best first: a query
-- reads only each term's best postings, then scores them exactly.
CREATE TABLE IF NOT EXISTS chunk_terms (
    collection_key BIGINT NOT NULL,
    term           TEXT NOT NULL,
    chunk_id       BIGINT NOT NULL,
    tf             INTEGER NOT NULL,
    len            INTEGER NOT NULL,
    impact         REAL NOT NULL,
    document_id    TEXT NOT NULL
) PARTITION BY LIST (collection_key);
-- Read best first; the document id lets a filter skip postings during the read.
CREATE INDEX IF NOT EXISTS chunk_terms_best ON chunk_terms (collection_key, term, impact DESC)
    INCLUDE (chunk_id, tf, len, document_id);
CREATE INDEX IF NOT EXISTS chunk_terms_chunk ON chunk_terms (collection_key, chunk_id);

-- Each term's document frequency (chunks holding it), kept by the writes, so a query never
-- counts postings.
CREATE TABLE IF NOT EXISTS search_terms (
    collection_key BIGINT NOT NULL,
    term           TEXT NOT NULL,
    df             BIGINT NOT NULL,
    PRIMARY KEY (collection_key, term)
) PARTITION BY LIST (collection_key);

-- Unix ms of a `YYYY-MM-DD` day (UTC) or an RFC 3339 instant, NULL for anything else: exactly
-- what `cairn_core::filter::instant` accepts, so date filters agree in both retrievers. Never
-- raises, whatever the text.
CREATE OR REPLACE FUNCTION cairn_instant_ms(s TEXT) RETURNS BIGINT
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    m TEXT[];
    y BIGINT; mo INT; d INT; dim INT;
    era BIGINT; yoe BIGINT; doy BIGINT; days BIGINT;
    h INT; mi INT; sec INT; millis INT := 0; off INT := 0;
BEGIN
    m := regexp_match(s, '^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$');
    IF m IS NULL THEN RETURN NULL; END IF;
    y := m[1]::BIGINT; mo := m[2]::INT; d := m[3]::INT;
    IF mo < 1 OR mo > 12 OR d < 1 THEN RETURN NULL; END IF;
    dim := CASE WHEN mo IN (4, 6, 9, 11) THEN 30
                WHEN mo = 2 THEN CASE WHEN (y % 4 = 0 AND y % 100 <> 0) OR y % 400 = 0 THEN 29 ELSE 28 END
                ELSE 31 END;
    IF d > dim THEN RETURN NULL; END IF;
    -- Days since 1970-01-01 (Howard Hinnant's days_from_civil, as in `cairn_core::time`).
    IF mo <= 2 THEN y := y - 1; END IF;
    era := CASE WHEN y >= 0 THEN y ELSE y - 399 END / 400;
    yoe := y - era * 400;
    doy := (153 * (mo + CASE WHEN mo > 2 THEN -3 ELSE 9 END) + 2) / 5 + d - 1;
    days := era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    IF m[4] IS NULL THEN RETURN days * 86400000; END IF;
    h := m[4]::INT; mi := m[5]::INT; sec := m[6]::INT;
    IF h > 23 OR mi > 59 OR sec > 60 THEN RETURN NULL; END IF;
    IF m[7] IS NOT NULL THEN millis := rpad(left(m[7], 3), 3, '0')::INT; END IF;
    IF m[8] NOT IN ('Z', 'z') THEN
        off := (substr(m[8], 2, 2)::INT * 60 + substr(m[8], 5, 2)::INT) * CASE WHEN left(m[8], 1) = '-' THEN -1 ELSE 1 END;
    END IF;
    RETURN days * 86400000 + ((h * 60 + mi - off) * 60 + sec)::BIGINT * 1000 + millis;
END
$fn$;

-- Creates a collection's partitions and its HNSW index (cosine, at its dimension: `vector` up
-- to 2,000 dimensions, `halfvec` up to 4,000; past that its vectors are searched exactly).
-- Formats only the two integers it is given.
CREATE OR REPLACE FUNCTION cairn_search_partitions(k BIGINT, dims INTEGER) RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS chunk_vectors_%s PARTITION OF chunk_vectors FOR VALUES IN (%s)', k, k);
    EXECUTE format('CREATE TABLE IF NOT EXISTS chunk_terms_%s PARTITION OF chunk_terms FOR VALUES IN (%s)', k, k);
    EXECUTE format('CREATE TABLE IF NOT EXISTS search_terms_%s PARTITION OF search_terms FOR VALUES IN (%s)', k, k);
    IF dims BETWEEN 1 AND 2000 THEN
        EXECUTE format('CREATE INDEX IF NOT EXISTS chunk_vectors_%s_hnsw ON chunk_vectors_%s USING hnsw '
            '((embedding::vector(%s)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)', k, k, dims);
    ELSIF dims BETWEEN 2001 AND 4000 THEN
        EXECUTE format('CREATE INDEX IF NOT EXISTS chunk_vectors_%s_hnsw ON chunk_vectors_%s USING hnsw '
            '((embedding::halfvec(%s)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)', k, k, dims);
    END IF;
END
$fn$;

-- Drops a collection's partitions (its vectors, postings and index go with them).
CREATE OR REPLACE FUNCTION cairn_search_drop(k BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS chunk_vectors_%s', k);
    EXECUTE format('DROP TABLE IF EXISTS chunk_terms_%s', k);
    EXECUTE format('DROP TABLE IF EXISTS search_terms_%s', k);
END
$fn$;

-- Collections that existed before get their partitions now and their chunks indexed by the
-- first node that starts.
INSERT INTO search_collections (collection_id, dimensions, backfilled)
SELECT id, dimensions, FALSE FROM collections ON CONFLICT DO NOTHING;
SELECT cairn_search_partitions(key, dimensions) FROM search_collections;
