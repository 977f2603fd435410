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

/// `EXISTS (SELECT 1 FROM <each value of the field> e(v) WHERE `: the field's elements when it
/// is a list, else the value itself (the caller closes the parenthesis).
fn push_any_value(q: &mut QueryBuilder<'_, Postgres>, field: &[String], meta: &str) {
    q.push("EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(");
    push_value(q, field, meta);
    q.push(") WHEN 'array' THEN ");
    push_value(q, field, meta);
    q.push(" ELSE jsonb_build_array(");
    push_value(q, field, meta);
    q.push(") END) AS e(v) WHERE ");
}

fn push_condition(q: &mut QueryBuilder<'_, Postgres>, field: &[String], op: &Op, meta: &str) {
    match op {
        Op::Exists(want) => {
            q.push("((COALESCE(jsonb_typeof(");
            push_value(q, field, meta);
            q.push("), 'null') <> 'null') = ").push_bind(*want).push(")");
        }
        Op::Eq(x) | Op::Ne(x) => {
            q.push(if matches!(op, Op::Ne(_)) { "(NOT " } else { "(" });
            push_any_value(q, field, meta);
            q.push("e.v = ").push_bind(x.to_string()).push("::jsonb))");
        }
        Op::In(xs) => {
            q.push("(");
            push_any_value(q, field, meta);
            q.push("e.v IN (SELECT jsonb_array_elements(")
                .push_bind(serde_json::Value::Array(xs.clone()).to_string())
                .push("::jsonb))))");
        }
        Op::Cmp(cmp, bound) => {
            let sign = match cmp {
                Cmp::Gt => " > ",
                Cmp::Gte => " >= ",
                Cmp::Lt => " < ",
                Cmp::Lte => " <= ",
            };
            q.push("(");
            push_any_value(q, field, meta);
            match bound {
                Bound::Number(n) => {
                    // Compared as numeric: a stored number too large for a double still
                    // compares instead of failing the query.
                    q.push("jsonb_typeof(e.v) = 'number' AND (e.v)::numeric")
                        .push(sign)
                        .push_bind(*n)
                        .push("::float8::numeric))");
                }
                Bound::Instant(ms) => {
                    q.push("jsonb_typeof(e.v) = 'string' AND cairn_instant_ms(e.v #>> '{}')")
                        .push(sign)
                        .push_bind(*ms)
                        .push("::bigint))");
                }
            }
        }
    }
}
