//! JSON and JSON Lines documents: the text is one field (a dotted path such as `body` or
//! `fields.content`), the title another if present, and every other top-level field becomes
//! metadata.

use serde_json::{Map, Value};

use super::{plain, ParseError, Parsed};

/// Where a JSON document keeps its text and title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextField {
    /// Dotted path of the text, e.g. `text` or `fields.body`.
    pub text: String,
    /// Dotted path of the title, if any.
    pub title: Option<String>,
}

impl Default for TextField {
    fn default() -> Self {
        Self { text: "text".into(), title: Some("title".into()) }
    }
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn from_value(v: Value, field: &TextField, place: &str) -> Result<Parsed, ParseError> {
    let Value::Object(obj) = v else {
        return Err(ParseError::Json(format!("{place}: expected a JSON object")));
    };
    let root = Value::Object(obj);
    let text = match at(&root, &field.text) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ParseError::Json(format!("{place}: field '{}' is not a string", field.text))),
        None => return Err(ParseError::Json(format!("{place}: no text field '{}'", field.text))),
    };
    let title = field.title.as_deref().and_then(|p| at(&root, p)).and_then(Value::as_str).map(str::to_owned);
    let mut doc = plain(&text, title);
    let Value::Object(obj) = root else { return Ok(doc) };
    let top = |p: &Option<String>| p.as_deref().map(|p| p.split('.').next().unwrap_or(p).to_owned());
    let skip = [top(&Some(field.text.clone())), top(&field.title)];
    doc.metadata =
        obj.into_iter().filter(|(k, _)| !skip.iter().any(|s| s.as_deref() == Some(k))).collect::<Map<_, _>>();
    Ok(doc)
}

/// One JSON object.
pub(super) fn document(text: &str, field: &TextField) -> Result<Parsed, ParseError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(format!("invalid JSON: {e}")))?;
    from_value(v, field, "document")
}

/// One JSON object per non-empty line, read a line at a time: a file with too many
/// documents, or a line too long, is refused when that line is reached.
pub(super) fn lines(text: &str, field: &TextField, limits: &super::Limits) -> Result<Vec<Parsed>, ParseError> {
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let place = format!("line {}", n + 1);
        if out.len() == limits.max_documents {
            return Err(ParseError::TooLarge(format!(
                "{place}: more than {} documents in one file",
                limits.max_documents
            )));
        }
        if l.len() > limits.max_document_bytes {
            return Err(ParseError::TooLarge(format!(
                "{place}: {} bytes; the limit per document is {}",
                l.len(),
                limits.max_document_bytes
            )));
        }
        if n % 256 == 0 {
            limits.check_time()?;
        }
        let v: Value = serde_json::from_str(l).map_err(|e| ParseError::Json(format!("{place}: invalid JSON: {e}")))?;
        out.push(from_value(v, field, &place)?);
    }
    Ok(out)
}
