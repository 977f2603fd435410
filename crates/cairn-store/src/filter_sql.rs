//! Metadata filters compiled to PostgreSQL: each condition becomes a JSONB predicate on the
//! document's `meta` column, every value and field path a bound parameter (nothing from the
//! request is ever spliced into the SQL text). The semantics are `Filter::matches`', clause for
//! clause: a list field matches when any element does, JSON `null` counts as missing, numbers
//! compare by value, dates through `cairn_instant_ms` (the same parser as the Rust side).
//! Every predicate is `TRUE` or `FALSE`, never `NULL`, so `NOT` means what it says.

use cairn_core::filter::{Bound, Cmp, Filter, Op};
use sqlx::{Postgres, QueryBuilder};

/// Appends `filter` as a boolean SQL expression over the JSONB column `meta` (a column
/// reference of ours, not request text).
pub(crate) fn push_filter(q: &mut QueryBuilder<'_, Postgres>, filter: &Filter, meta: &str) {
    match filter {
        Filter::And(all) | Filter::Or(all) if all.is_empty() => {
            // The empty `and` passes everything (`{}`); parsing refuses an empty `or`.
            q.push(if matches!(filter, Filter::And(_)) { "TRUE" } else { "FALSE" });
        }
        Filter::And(all) | Filter::Or(all) => {
            let joiner = if matches!(filter, Filter::And(_)) { " AND " } else { " OR " };
            q.push("(");
            for (i, f) in all.iter().enumerate() {
                if i > 0 {
                    q.push(joiner);
                }
                push_filter(q, f, meta);
            }
            q.push(")");
        }
        Filter::Not(inner) => {
            q.push("(NOT ");
            push_filter(q, inner, meta);
            q.push(")");
        }
        Filter::Cond { field, op } => push_condition(q, field, op, meta),
    }
}

/// `meta #> $path`: the field's value, SQL `NULL` when missing.
fn push_value(q: &mut QueryBuilder<'_, Postgres>, field: &[String], meta: &str) {
    q.push("(").push(meta).push(" #> ").push_bind(field.to_vec()).push("::text[])");
}

/// Where a condition's test finds the value it tests: a list's element, or the field itself.
#[derive(Clone, Copy)]
enum Each<'a> {
    /// `e.v`, inside `push_any`'s walk over a list.
    Element,
    /// The field's own value (neither a list, nor null, nor missing).
    Scalar(&'a [String], &'a str),
}

impl Each<'_> {
    /// Appends the value's expression.
    fn push(self, q: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Each::Element => {
                q.push("e.v");
            }
            Each::Scalar(field, meta) => push_value(q, field, meta),
        }
    }
}

/// Appends whether `test` holds for any value of the field: its elements when it is a list,
/// else the value itself; FALSE when it is missing or null (`Filter::matches` treats a null as
/// missing). A scalar is tested in place: unpacking it as a list of one cost a set-returning
/// call per document, most of a filtered search's fixed cost on a large collection.
fn push_any(
    q: &mut QueryBuilder<'_, Postgres>,
    field: &[String],
    meta: &str,
    test: &dyn Fn(&mut QueryBuilder<'_, Postgres>, Each<'_>),
) {
    q.push("(CASE jsonb_typeof(");
    push_value(q, field, meta);
    q.push(") WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements(");
    push_value(q, field, meta);
    q.push(") AS e(v) WHERE ");
    test(q, Each::Element);
    q.push(") WHEN 'null' THEN FALSE ELSE COALESCE(");
    test(q, Each::Scalar(field, meta));
    q.push(", FALSE) END)");
}

/// `CASE WHEN jsonb_typeof(v) = kind THEN <then> ELSE FALSE END`: CASE, not AND, so that a
/// cast in `then` never meets a value of another JSON type.
fn push_when_type(
    q: &mut QueryBuilder<'_, Postgres>,
    v: Each<'_>,
    kind: &'static str,
    then: &dyn Fn(&mut QueryBuilder<'_, Postgres>),
) {
    q.push("CASE WHEN jsonb_typeof(");
    v.push(q);
    q.push(") = '").push(kind).push("' THEN ");
    then(q);
    q.push(" ELSE FALSE END");
}

fn push_condition(q: &mut QueryBuilder<'_, Postgres>, field: &[String], op: &Op, meta: &str) {
    match op {
        Op::Exists(want) => {
            q.push("((COALESCE(jsonb_typeof(");
            push_value(q, field, meta);
            q.push("), 'null') <> 'null') = ").push_bind(*want).push(")");
        }
        Op::Eq(x) | Op::Ne(x) => {
            let x = x.to_string();
            q.push(if matches!(op, Op::Ne(_)) { "(NOT " } else { "(" });
            push_any(q, field, meta, &|q, v| {
                v.push(q);
                q.push(" = ").push_bind(x.clone()).push("::jsonb");
            });
            q.push(")");
        }
        Op::In(xs) => {
            let xs = serde_json::Value::Array(xs.clone()).to_string();
            push_any(q, field, meta, &|q, v| {
                v.push(q);
                q.push(" IN (SELECT jsonb_array_elements(").push_bind(xs.clone()).push("::jsonb))");
            });
        }
        Op::Cmp(cmp, bound) => {
            let sign = match cmp {
                Cmp::Gt => " > ",
                Cmp::Gte => " >= ",
                Cmp::Lt => " < ",
                Cmp::Lte => " <= ",
            };
            push_any(q, field, meta, &|q, v| match bound {
                // Compared as numeric: a stored number too large for a double still compares
                // instead of failing the query.
                Bound::Number(n) => push_when_type(q, v, "number", &|q| {
                    q.push("(");
                    v.push(q);
                    q.push(")::numeric").push(sign).push_bind(*n).push("::float8::numeric");
                }),
                Bound::Instant(ms) => push_when_type(q, v, "string", &|q| {
                    q.push("cairn_instant_ms(");
                    v.push(q);
                    q.push(" #>> '{}')").push(sign).push_bind(*ms).push("::bigint");
                }),
            });
        }
    }
}
