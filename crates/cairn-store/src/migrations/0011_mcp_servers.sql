-- A tenant's MCP servers (Streamable HTTP endpoints its agents call tools on). The headers
-- carry the tenant's credentials for the server and must be sent as they are, so they are
-- stored as they are; the database is readable by its owner only, and the API never returns
-- their values.
CREATE TABLE IF NOT EXISTS mcp_servers (
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    headers       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
