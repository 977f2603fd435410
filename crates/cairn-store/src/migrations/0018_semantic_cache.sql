-- The semantic cache: an entry may also be found by the embedding of its last user turn,
-- among entries with the same `semantic_key` (tenant, namespace, alias, system prompt, tools,
-- parameters, earlier turns). Entries answered from knowledge collections are listed per
-- collection and deleted in the transaction that changes the collection.
ALTER TABLE response_cache ADD COLUMN semantic_key TEXT;
ALTER TABLE response_cache ADD COLUMN question TEXT;
ALTER TABLE response_cache ADD COLUMN embedding {BYTES};
CREATE INDEX response_cache_by_semantic_key ON response_cache (tenant_id, semantic_key, created_ms);
CREATE TABLE response_cache_collections (
    collection_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    PRIMARY KEY (collection_id, tenant_id, cache_key)
);
CREATE INDEX response_cache_collections_by_entry ON response_cache_collections (tenant_id, cache_key);
