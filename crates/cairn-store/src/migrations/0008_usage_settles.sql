-- A usage record names the budget reservation it settles and carries its cost in billionths
-- of a dollar, as the gateway computed it. Inserting it settles the call in the same statement
-- (a trigger, so no writer can forget it and a single record commits in one round trip): the
-- cost is added to the key's settled spend for the record's UTC month, then taken from the
-- reservation (never below zero). A record skipped as a duplicate settles nothing.
-- Order matters on PostgreSQL: reservations lock `key_spend` first too, so they cannot deadlock.
ALTER TABLE usage_records ADD COLUMN reservation_id TEXT;
ALTER TABLE usage_records ADD COLUMN cost_nusd BIGINT NOT NULL DEFAULT 0;
UPDATE usage_records SET cost_nusd = CAST(ROUND(cost_usd * 1000000000) AS BIGINT);
{SETTLE_TRIGGER}
