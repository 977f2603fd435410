//! Output validation: JSON checked against a JSON Schema, with errors written for the model
//! that must fix its answer (the first few, each with where in the document it is). Compiled
//! schemas are kept, so a schema sent on every request compiles once.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

/// Most compiled schemas kept; past it the cache starts over (schemas are per request, so an
/// unbounded cache would grow with hostile traffic).
const MAX_SCHEMAS: usize = 256;
/// Errors reported per check.
const MAX_ERRORS: usize = 5;

/// Compiles and caches JSON Schemas, and checks documents against them. Share one.
#[derive(Default)]
pub struct Schemas {
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Schemas {
    /// `schema` compiled (from the cache when it was compiled before), or why it cannot be.
    pub fn compile(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = schema.to_string();
        if let Some(v) = self.compiled.lock().get(&key) {
            return Ok(v.clone());
        }
        let compiled =
            Arc::new(jsonschema::validator_for(schema).map_err(|e| format!("the schema does not compile: {e}"))?);
        let mut cache = self.compiled.lock();
        if cache.len() >= MAX_SCHEMAS {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }

    /// The first errors of `value` against `schema` (empty: valid), each with its JSON pointer.
    pub fn errors(&self, schema: &Value, value: &Value) -> Result<Vec<String>, String> {
        let validator = self.compile(schema)?;
        Ok(validator
            .iter_errors(value)
            .take(MAX_ERRORS)
            .map(|e| {
                let at = e.instance_path.to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} at '{at}'")
                }
            })
            .collect())
    }

    /// Checks that `text` is one JSON document that `schema` admits; says why not.
    pub fn check_text(&self, schema: &Value, text: &str) -> Result<(), String> {
        let value: Value =
            serde_json::from_str(text.trim()).map_err(|e| format!("the answer is not valid JSON: {e}"))?;
        let errors = self.errors(schema, &value)?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("the answer does not match the schema: {}", errors.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_and_explains() {
        let s = Schemas::default();
        let schema = json!({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false});
        assert!(s.check_text(&schema, " {\"n\": 3} ").is_ok());
        let e = s.check_text(&schema, "{\"n\": \"three\"}").unwrap_err();
        assert!(e.contains("/n"), "{e}");
        assert!(s.check_text(&schema, "{}").unwrap_err().contains("required"));
        assert!(s.check_text(&schema, "Sure! {\"n\": 3}").unwrap_err().contains("not valid JSON"));
        assert!(s.compile(&json!({"type": 12})).is_err());
    }
}
