-- Search inside the database: pgvector, partitions per collection, the inverted index. The
-- schema is PostgreSQL's alone (see `search_schema.sql`); SQLite searches in memory.
{SEARCH_SCHEMA}
