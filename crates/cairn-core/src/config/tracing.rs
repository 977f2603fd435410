//! The tracing section: what spans keep, how they are written, how long they live.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::trace::Capture;

/// Trace recording and retention.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// `off` (no spans), `metadata` (no prompt or completion text) or `full` (content too,
    /// after PII redaction).
    pub capture: Capture,
    /// Finished spans waiting to be written at most; past that new spans are dropped and
    /// counted (`cairn_spans_dropped_total`), never slowing a request.
    pub queue: usize,
    /// Spans per write transaction at most.
    pub batch: usize,
    /// Longest a finished span waits to be written with others, milliseconds.
    pub flush_ms: u64,
    /// Days traces are kept (by start); 0 keeps them forever.
    pub retention_days: u32,
    /// Days kept for particular tenants, overriding `retention_days`.
    pub tenant_retention_days: BTreeMap<String, u32>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            capture: Capture::Metadata,
            queue: 20_000,
            batch: 500,
            flush_ms: 200,
            retention_days: 30,
            tenant_retention_days: BTreeMap::new(),
        }
    }
}

impl TracingConfig {
    /// What is wrong with these settings.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.queue == 0 {
            problems.push("tracing.queue must be at least 1".into());
        }
        if self.batch == 0 || self.batch > 5_000 {
            problems.push("tracing.batch must be 1-5000".into());
        }
        if self.flush_ms == 0 || self.flush_ms > 60_000 {
            problems.push("tracing.flush_ms must be 1-60000".into());
        }
        problems
    }

    /// Days `tenant`'s traces are kept (0: forever).
    pub fn retention_for(&self, tenant: &str) -> u32 {
        self.tenant_retention_days.get(tenant).copied().unwrap_or(self.retention_days)
    }
}
