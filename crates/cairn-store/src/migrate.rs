//! Schema migrations: an ordered list of SQL scripts, each applied once inside a transaction
//! and recorded in `schema_migrations`. The SQL is shared by SQLite and PostgreSQL; what they
//! spell differently is written as placeholders, `{BYTES}` (a binary column), `{SERIAL}` (an
//! auto-increasing 64-bit primary key), `{RESET_SERIAL:table}` (after rows were copied
//! into a rebuilt table with their ids: continue its counter after the largest id) and
//! `{SETTLE_TRIGGER}` (the trigger by which a usage record settles its call's budget),
//! `{SEARCH_SCHEMA}` (search inside the database, PostgreSQL's alone), and filled in per
//! backend (`Dialect`).

/// Every migration, in order: (version, name, SQL).
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "tenancy_and_usage", include_str!("migrations/0001_tenancy_and_usage.sql")),
    (2, "jobs", include_str!("migrations/0002_jobs.sql")),
    (3, "knowledge", include_str!("migrations/0003_knowledge.sql")),
    (4, "budgets", include_str!("migrations/0004_budgets.sql")),
    (5, "tenant_roles", include_str!("migrations/0005_tenant_roles.sql")),
    (6, "document_versions", include_str!("migrations/0006_document_versions.sql")),
    (7, "tenant_secrets", include_str!("migrations/0007_tenant_secrets.sql")),
    (8, "usage_settles", include_str!("migrations/0008_usage_settles.sql")),
    (9, "agents", include_str!("migrations/0009_agents.sql")),
    (10, "run_steps_count", include_str!("migrations/0010_run_steps_count.sql")),
    (11, "mcp_servers", include_str!("migrations/0011_mcp_servers.sql")),
    (12, "traces", include_str!("migrations/0012_traces.sql")),
    (13, "job_traces", include_str!("migrations/0013_job_traces.sql")),
    (14, "feedback", include_str!("migrations/0014_feedback.sql")),
    (15, "response_cache", include_str!("migrations/0015_response_cache.sql")),
    (16, "audit_log", include_str!("migrations/0016_audit_log.sql")),
    (17, "key_guards", include_str!("migrations/0017_key_guards.sql")),
    (18, "semantic_cache", include_str!("migrations/0018_semantic_cache.sql")),
    (19, "database_search", include_str!("migrations/0019_database_search.sql")),
    (20, "rate_buckets", include_str!("migrations/0020_rate_buckets.sql")),
];

/// The trace tables' schema (migration 0012), which the SQLite store also applies to its
/// separate traces file; every statement in it may run again harmlessly.
pub(crate) const TRACES_SQL: &str = include_str!("migrations/0012_traces.sql");

/// How one backend spells the types the shared SQL leaves as placeholders.
pub(crate) struct Dialect {
    /// A binary column.
    pub(crate) bytes: &'static str,
    /// An auto-increasing 64-bit primary key.
    pub(crate) serial: &'static str,
    /// Statement continuing table `{T}`'s `id` counter after its largest id (empty: the
    /// backend does so by itself).
    pub(crate) reset_serial: &'static str,
    /// The trigger settling a new usage record's cost (see migration 0008).
    pub(crate) settle_trigger: &'static str,
    /// The trigger counting a run's journal entries (see migration 0010).
    pub(crate) steps_trigger: &'static str,
    /// The schema of search inside the database (migration 0019; empty: none).
    pub(crate) search_schema: &'static str,
}

/// SQLite's spelling.
/// SQLite's AUTOINCREMENT keeps its counter at the largest id inserted, explicit ones included.
pub(crate) const SQLITE: Dialect = Dialect {
    bytes: "BLOB",
    serial: "INTEGER PRIMARY KEY AUTOINCREMENT",
    reset_serial: "",
    settle_trigger: "CREATE TRIGGER usage_settles AFTER INSERT ON usage_records
WHEN NEW.reservation_id IS NOT NULL
BEGIN
    UPDATE key_spend SET settled_nusd = settled_nusd + NEW.cost_nusd
    WHERE key_id = NEW.key_id
      AND month_start_ms = CAST(strftime('%s', NEW.ts_ms / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000;
    UPDATE budget_reservations
    SET amount_nusd = CASE WHEN amount_nusd > NEW.cost_nusd THEN amount_nusd - NEW.cost_nusd ELSE 0 END
    WHERE id = NEW.reservation_id;
END;",
    steps_trigger: "CREATE TRIGGER run_steps_count AFTER INSERT ON run_steps
BEGIN
    UPDATE runs SET steps = MAX(steps, NEW.seq), updated_at_ms = NEW.created_at_ms WHERE id = NEW.run_id;
END;",
    search_schema: "",
};
/// PostgreSQL's spelling.
/// PostgreSQL's sequences ignore explicit ids; a rebuilt table's sequence is named after the
/// table it was created as, so it is found through the column.
pub(crate) const POSTGRES: Dialect = Dialect {
    bytes: "BYTEA",
    serial: "BIGSERIAL PRIMARY KEY",
    reset_serial:
        "SELECT setval(pg_get_serial_sequence('{T}', 'id'), COALESCE((SELECT MAX(id) FROM {T}), 0) + 1, false);",
    settle_trigger: "CREATE OR REPLACE FUNCTION usage_settles() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE key_spend SET settled_nusd = settled_nusd + NEW.cost_nusd
    WHERE key_id = NEW.key_id
      AND month_start_ms = (EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(NEW.ts_ms / 1000) AT TIME ZONE 'UTC')) * 1000)::BIGINT;
    UPDATE budget_reservations SET amount_nusd = GREATEST(amount_nusd - NEW.cost_nusd, 0)
    WHERE id = NEW.reservation_id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER usage_settles AFTER INSERT ON usage_records
FOR EACH ROW WHEN (NEW.reservation_id IS NOT NULL) EXECUTE FUNCTION usage_settles();",
    steps_trigger: "CREATE OR REPLACE FUNCTION run_steps_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE runs SET steps = GREATEST(steps, NEW.seq), updated_at_ms = NEW.created_at_ms WHERE id = NEW.run_id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER run_steps_count AFTER INSERT ON run_steps
FOR EACH ROW EXECUTE FUNCTION run_steps_count();",
    search_schema: include_str!("search_schema.sql"),
};

impl Dialect {
    /// `sql` with the placeholders filled in.
    pub(crate) fn render(&self, sql: &str) -> String {
        let mut out = sql
            .replace("{BYTES}", self.bytes)
            .replace("{SERIAL}", self.serial)
            .replace("{SETTLE_TRIGGER}", self.settle_trigger)
            .replace("{STEPS_TRIGGER}", self.steps_trigger)
            .replace("{SEARCH_SCHEMA}", self.search_schema);
        while let Some(at) = out.find("{RESET_SERIAL:") {
            let Some(len) = out[at..].find('}') else { break };
            let table = out[at + "{RESET_SERIAL:".len()..at + len].to_owned();
            out.replace_range(at..=at + len, &self.reset_serial.replace("{T}", &table));
        }
        out
    }
}

/// Creates the ledger table.
pub(crate) const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)";

/// Applies pending migrations on one connection; the caller holds a lock that keeps other
/// processes out (a write transaction on SQLite, an advisory lock on PostgreSQL).
macro_rules! run_migrations {
    ($conn:expr, $dialect:expr) => {{
        use sqlx::Row;
        sqlx::raw_sql($crate::migrate::LEDGER).execute(&mut *$conn).await.map_err($crate::db_err)?;
        for (version, name, sql) in $crate::migrate::MIGRATIONS {
            let done = sqlx::query("SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_one(&mut *$conn)
                .await
                .map_err($crate::db_err)?
                .try_get::<i64, _>("n")
                .map_err($crate::db_err)?;
            if done > 0 {
                continue;
            }
            tracing::info!(version, name, "applying migration");
            sqlx::raw_sql(&$dialect.render(sql)).execute(&mut *$conn).await.map_err($crate::db_err)?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*name)
                .bind(cairn_core::time::now_ms())
                .execute(&mut *$conn)
                .await
                .map_err($crate::db_err)?;
        }
        Ok::<(), cairn_core::store::StoreError>(())
    }};
}
pub(crate) use run_migrations;
