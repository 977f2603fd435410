//! Metadata filters: a small JSON language checked once when a query arrives (so a mistake is
//! a clear 400 naming the clause) and then evaluated per document inside the retrievers.
//!
//! ```json
//! {"and": [
//!   {"field": "year", "gte": 2020},
//!   {"field": "published", "lt": "2024-07-01"},
//!   {"or": [{"field": "tags", "in": ["oncology", "cardiology"]}, {"field": "lang", "eq": "en"}]},
//!   {"not": {"field": "draft", "eq": true}},
//!   {"field": "author.name", "exists": true}
//! ]}
//! ```
//!
//! A condition names a `field` (a dotted path into the document's metadata) and one operator:
//! `eq`, `ne`, `in` (a list), `gt`, `gte`, `lt`, `lte` (numbers, or dates as `YYYY-MM-DD` or
//! RFC 3339 instants), or `exists` (true or false). On a list field, `eq` and `in` match when
//! any element matches. A field that is missing matches nothing but `ne`, `exists: false` and
//! negations.

use serde_json::Value;

/// A checked filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Every clause holds.
    And(Vec<Filter>),
    /// At least one clause holds.
    Or(Vec<Filter>),
    /// The clause does not hold.
    Not(Box<Filter>),
    /// One condition on one field.
    Cond {
        /// Dotted path into the metadata.
        field: Vec<String>,
        /// The test.
        op: Op,
    },
}

/// A test on one field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Equal (any element, on lists).
    Eq(Value),
    /// Not equal (no element, on lists; true when the field is missing).
    Ne(Value),
    /// Equal to one of these (any element, on lists).
    In(Vec<Value>),
    /// Ordered comparison against a number or an instant.
    Cmp(Cmp, Bound),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
}

/// An ordering test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
}

/// What an ordering test compares with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// A number.
    Number(f64),
    /// An instant, Unix ms (from a date or RFC 3339 string).
    Instant(i64),
}

/// Why a filter was refused: where (a JSON path such as `and[1].or[0]`) and what.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("filter{}: {message}", if path.is_empty() { String::new() } else { format!(" at {path}") })]
pub struct FilterError {
    /// The clause at fault.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Deepest nesting accepted (keeps evaluation and parsing bounded).
const MAX_DEPTH: usize = 16;
/// Most clauses and list values in one filter: it is evaluated against every candidate, so its
/// size multiplies the cost of a search.
pub const MAX_NODES: usize = 256;

impl Filter {
    /// Checks and compiles `v`; the empty object is the filter that passes everything.
    pub fn parse(v: &Value) -> Result<Filter, FilterError> {
        if v.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(Filter::And(Vec::new()));
        }
        let mut nodes = 0;
        parse_at(v, "", 0, &mut nodes)
    }

    /// True when the document with `metadata` passes.
    pub fn matches(&self, metadata: &Value) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(metadata)),
            Filter::Or(any) => any.iter().any(|f| f.matches(metadata)),
            Filter::Not(f) => !f.matches(metadata),
            Filter::Cond { field, op } => {
                let value = field.iter().try_fold(metadata, |v, key| v.get(key)).filter(|v| !v.is_null());
                test(op, value)
            }
        }
    }
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError { path: path.to_owned(), message: message.into() }
}

fn parse_at(v: &Value, path: &str, depth: usize, nodes: &mut usize) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    *nodes += 1 + v.get("in").and_then(Value::as_array).map_or(0, Vec::len);
    if *nodes > MAX_NODES {
        return Err(err(path, format!("more than {MAX_NODES} clauses and list values in one filter")));
    }
    let Value::Object(obj) = v else { return Err(err(path, "expected an object")) };
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    if let Some((key, inner)) = obj.iter().find(|(k, _)| matches!(k.as_str(), "and" | "or" | "not")) {
        if obj.len() != 1 {
            return Err(err(path, format!("'{key}' must be the only key of its object")));
        }
        let here = join(key);
        if key == "not" {
            return Ok(Filter::Not(Box::new(parse_at(inner, &here, depth + 1, nodes)?)));
        }
        let Value::Array(items) = inner else { return Err(err(&here, "expected a list of filters")) };
        if items.is_empty() {
            return Err(err(&here, "expected at least one filter"));
        }
        let parsed = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_at(item, &format!("{here}[{i}]"), depth + 1, &mut *nodes))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if key == "and" { Filter::And(parsed) } else { Filter::Or(parsed) });
    }
    let field = match obj.get("field") {
        Some(Value::String(f)) if !f.is_empty() && f.split('.').all(|p| !p.is_empty()) => f,
        Some(_) => return Err(err(path, "'field' must be a dotted path such as \"year\" or \"author.name\"")),
        None => return Err(err(path, "expected 'and', 'or', 'not', or a condition with 'field'")),
    };
    let ops: Vec<(&String, &Value)> = obj.iter().filter(|(k, _)| k.as_str() != "field").collect();
    let path_of: Vec<String> = field.split('.').map(str::to_owned).collect();
    let cond = |(name, arg): (&String, &Value)| -> Result<Filter, FilterError> {
        Ok(Filter::Cond { field: path_of.clone(), op: parse_op(name, arg, &join(name), path)? })
    };
    let lower = |k: &str| matches!(k, "gt" | "gte");
    let upper = |k: &str| matches!(k, "lt" | "lte");
    match ops[..] {
        [one] => cond(one),
        // A range: one lower and one upper bound in the same condition.
        [a, b] if (lower(a.0) && upper(b.0)) || (upper(a.0) && lower(b.0)) => Ok(Filter::And(vec![cond(a)?, cond(b)?])),
        _ => Err(err(
            path,
            "a condition takes one of eq, ne, in, gt, gte, lt, lte, exists (or a lower and an upper bound)",
        )),
    }
}

fn parse_op(name: &str, arg: &Value, here: &str, path: &str) -> Result<Op, FilterError> {
    Ok(match name {
        "eq" => Op::Eq(scalar(arg, here)?.clone()),
        "ne" => Op::Ne(scalar(arg, here)?.clone()),
        "in" => match arg {
            Value::Array(items) if !items.is_empty() => {
                Op::In(items.iter().map(|i| scalar(i, here).cloned()).collect::<Result<_, _>>()?)
            }
            _ => return Err(err(here, "expected a non-empty list")),
        },
        "gt" | "gte" | "lt" | "lte" => {
            let cmp = match name {
                "gt" => Cmp::Gt,
                "gte" => Cmp::Gte,
                "lt" => Cmp::Lt,
                _ => Cmp::Lte,
            };
            let bound = match arg {
                Value::Number(n) => Bound::Number(n.as_f64().unwrap_or(f64::NAN)),
                Value::String(s) => Bound::Instant(
                    instant(s)
                        .ok_or_else(|| err(here, format!("'{s}' is not a date (YYYY-MM-DD) or RFC 3339 time")))?,
                ),
                _ => return Err(err(here, "expected a number or a date")),
            };
            Op::Cmp(cmp, bound)
        }
        "exists" => match arg {
            Value::Bool(b) => Op::Exists(*b),
            _ => return Err(err(here, "expected true or false")),
        },
        other => return Err(err(path, format!("unknown operator '{other}'"))),
    })
}

fn scalar<'a>(v: &'a Value, path: &str) -> Result<&'a Value, FilterError> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(v),
        _ => Err(err(path, "expected a string, number or boolean")),
    }
}

/// The values a field holds: its elements when it is a list, else itself.
fn values(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(items) => Box::new(items.iter()),
        other => Box::new(std::iter::once(other)),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn test(op: &Op, value: Option<&Value>) -> bool {
    match (op, value) {
        (Op::Exists(want), v) => v.is_some() == *want,
        (Op::Ne(x), Some(v)) => !values(v).any(|e| same(e, x)),
        (Op::Ne(_), None) => true,
        (_, None) => false,
        (Op::Eq(x), Some(v)) => values(v).any(|e| same(e, x)),
        (Op::In(xs), Some(v)) => values(v).any(|e| xs.iter().any(|x| same(e, x))),
        (Op::Cmp(cmp, bound), Some(v)) => values(v).any(|e| {
            let ord = match (bound, e) {
                (Bound::Number(b), Value::Number(n)) => n.as_f64().and_then(|n| n.partial_cmp(b)),
                (Bound::Instant(b), Value::String(s)) => instant(s).map(|t| t.cmp(b)),
                _ => None,
            };
            ord.is_some_and(|o| match cmp {
                Cmp::Gt => o.is_gt(),
                Cmp::Gte => o.is_ge(),
                Cmp::Lt => o.is_lt(),
                Cmp::Lte => o.is_le(),
            })
        }),
    }
}

/// Unix ms of `YYYY-MM-DD` (UTC midnight) or an RFC 3339 instant (`2024-07-01T12:30:00Z`,
/// `...+02:00`, fractional seconds allowed).
pub fn instant(s: &str) -> Option<i64> {
    let day = crate::time::parse_iso_day(s.get(..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(day);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // Two ASCII digits (no sign, no multi-byte character) at `a..a + 2` of `t`.
    fn two_digits(t: &str, a: usize) -> Option<i64> {
        let d = t.get(a..a + 2)?;
        d.bytes().all(|b| b.is_ascii_digit()).then(|| d.parse().ok()).flatten()
    }
    let (h, m, sec) = (two_digits(rest, 0)?, two_digits(rest, 3)?, two_digits(rest, 6)?);
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut tail = &rest[8..];
    let mut millis = 0i64;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        millis = format!("{:0<3}", &digits[..digits.len().min(3)]).parse().ok()?;
        tail = &frac[digits.len()..];
    }
    let offset_min = match tail {
        "Z" | "z" => 0,
        t if t.len() == 6 && (t.starts_with('+') || t.starts_with('-')) && t.get(3..4) == Some(":") => {
            let (oh, om) = (two_digits(t, 1)?, two_digits(t, 4)?);
            (oh * 60 + om) * if t.starts_with('-') { -1 } else { 1 }
        }
        _ => return None,
    };
    Some(day + ((h * 60 + m - offset_min) * 60 + sec) * 1000 + millis)
}

#[cfg(test)]
mod tests;
