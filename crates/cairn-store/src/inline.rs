//! Short writes run on the calling thread, through a second connection to the main file.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every statement is a round trip
//! to that thread and back: two thread hand-offs, each of which waits for a free CPU on a busy
//! machine. For the one write a response waits for (its usage record) those waits were most of
//! Cairn's own time per request, while the write itself takes tens of microseconds. A plain
//! synchronous connection runs it on the request's own thread instead.
//!
//! It is used only under the writer's lock, so it never waits for this process's other writes.
//! It never waits for another process either (no busy timeout): when the file is locked, the
//! caller hands the write to sqlx's connection, whose thread waits in SQLite's busy handler.
//! Only small batches come here, so a runtime thread is never held for long.

use std::path::Path;
use std::time::Duration;

use cairn_core::store::StoreError;
use cairn_core::usage::Settlement;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{ErrorCode, OpenFlags, ToSql};

use crate::usage_row::{usage_row, UsageValue, USAGE_INSERT_COLUMNS, USAGE_ROW_LEN};

/// The most usage records written inline at once; larger batches go to sqlx's thread.
pub(crate) const INLINE_ROWS: usize = 16;

/// The inline connection. See the module docs.
pub(crate) struct InlineConn {
    conn: rusqlite::Connection,
    /// The insert statement for 1 ..= [`INLINE_ROWS`] rows, at index rows - 1.
    inserts: Vec<String>,
}

impl InlineConn {
    /// Opens the existing file at `path` with the settings of Cairn's other connections, but
    /// never waiting for a lock and never checkpointing (a background task does).
    pub(crate) fn open(path: &Path) -> rusqlite::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")?;
        let row = format!("({})", vec!["?"; USAGE_ROW_LEN].join(", "));
        let inserts = (1..=INLINE_ROWS)
            .map(|n| {
                format!(
                    "INSERT INTO usage_records ({USAGE_INSERT_COLUMNS}) VALUES {} ON CONFLICT (id) DO NOTHING",
                    vec![row.as_str(); n].join(", ")
                )
            })
            .collect();
        Ok(Self { conn, inserts })
    }

    /// Inserts `records` in one statement, skipping ids already stored; `Ok(false)` when there
    /// are more than [`INLINE_ROWS`] or another process holds the file's lock, and nothing was
    /// written.
    pub(crate) fn insert_usage(&mut self, records: &[Settlement]) -> Result<bool, StoreError> {
        let Some(sql) = records.len().checked_sub(1).and_then(|i| self.inserts.get(i)) else {
            return Ok(records.is_empty());
        };
        let result = self.conn.prepare_cached(sql).and_then(|mut stmt| {
            let values = records.iter().flat_map(usage_row);
            for (i, v) in values.enumerate() {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
            stmt.raw_execute()
        });
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => Ok(false),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        }
    }
}

impl ToSql for UsageValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            UsageValue::Text(t) | UsageValue::MaybeText(Some(t)) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            UsageValue::MaybeText(None) => ToSqlOutput::Owned(Value::Null),
            UsageValue::Int(v) => ToSqlOutput::Owned(Value::Integer(v)),
            UsageValue::MaybeInt(v) => ToSqlOutput::Owned(v.map_or(Value::Null, Value::Integer)),
            UsageValue::Real(v) => ToSqlOutput::Owned(Value::Real(v)),
            UsageValue::MaybeReal(v) => ToSqlOutput::Owned(v.map_or(Value::Null, Value::Real)),
            UsageValue::Bool(v) => ToSqlOutput::Owned(Value::Integer(i64::from(v))),
        })
    }
}
