-- The exact response cache: one complete response per tenant and normalised request.
-- Read by key on every cacheable call; swept by expiry; purged by namespace and model.
CREATE TABLE response_cache (
    tenant_id TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    body TEXT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, cache_key)
);
CREATE INDEX response_cache_by_expiry ON response_cache (expires_ms);
CREATE INDEX response_cache_by_namespace ON response_cache (tenant_id, namespace, model);
