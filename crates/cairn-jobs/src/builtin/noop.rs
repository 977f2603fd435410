//! `noop`: succeeds at once. For checking that workers run, and for measuring the queue itself.

use async_trait::async_trait;
use serde_json::Value;

use crate::handler::{JobContext, JobError, JobHandler, Refusal};

/// Does nothing; its payload must be a JSON object (or absent).
pub struct Noop;

#[async_trait]
impl JobHandler for Noop {
    fn validate(&self, _tenant_id: &str, payload: &Value) -> Result<(), Refusal> {
        match payload {
            Value::Null | Value::Object(_) => Ok(()),
            _ => Err("expected a JSON object".into()),
        }
    }

    fn payload_schema(&self) -> Value {
        serde_json::json!({"type": ["object", "null"], "description": "Anything: it is ignored."})
    }

    async fn run(&self, _ctx: JobContext) -> Result<Option<Value>, JobError> {
        Ok(None)
    }
}
