-- Claims take turns between tenants (`jobs_claim` module): due queued jobs of one type are
-- found per tenant, by priority, then age. This index serves both the walk over the tenants
-- and each tenant's pick; the global claim order it replaces needs its index no more.
CREATE INDEX IF NOT EXISTS jobs_fair ON jobs (kind, tenant_id, priority DESC, run_at_ms, id) WHERE state = 'queued';
DROP INDEX IF EXISTS jobs_claim;
