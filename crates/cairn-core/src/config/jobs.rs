//! The `[jobs]` section: how the durable job queue's workers run and retry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Job queue and worker settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Run workers inside `cairn serve`; set false on API-only nodes and run `cairn worker`.
    pub workers_in_serve: bool,
    /// Jobs of one type that one process runs at once, unless `concurrency` names the type.
    pub default_concurrency: usize,
    /// Per-type concurrency, e.g. `{ webhook = 64 }`.
    pub concurrency: BTreeMap<String, usize>,
    /// Lease on a running job; the worker renews it every third of this. A worker that dies
    /// loses its jobs to another worker once the lease runs out.
    pub lease_ms: u64,
    /// How often idle workers look for due jobs. Jobs enqueued in the same process wake them
    /// at once; this bounds the delay for jobs from other processes and for scheduled retries.
    pub poll_ms: u64,
    /// Attempts a job gets unless its request says otherwise.
    pub max_attempts: u32,
    /// Per-attempt timeout unless the request says otherwise.
    pub timeout_ms: u64,
    /// First retry delay; doubles each attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Cap on one retry delay.
    pub backoff_max_ms: u64,
    /// Finished jobs are purged this many hours after they finish; 0 keeps them.
    pub retention_hours: u64,
    /// Largest job payload, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// Hosts (`host` or `host:port`) that `webhook` jobs of every tenant may call.
    pub webhook_allowed_hosts: Vec<String>,
    /// More hosts per tenant, e.g. `{ acme = ["hooks.acme.com"] }`: a tenant's webhooks may call
    /// the instance's hosts and its own, never another tenant's.
    pub webhook_tenant_hosts: BTreeMap<String, Vec<String>>,
    /// Longest one webhook delivery may take, connecting and reading the answer included.
    pub webhook_timeout_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers_in_serve: true,
            default_concurrency: 16,
            concurrency: BTreeMap::new(),
            lease_ms: 30_000,
            poll_ms: 250,
            max_attempts: 5,
            timeout_ms: 300_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 600_000,
            retention_hours: 24 * 7,
            max_payload_bytes: 1024 * 1024,
            webhook_allowed_hosts: Vec::new(),
            webhook_tenant_hosts: BTreeMap::new(),
            webhook_timeout_secs: 30,
        }
    }
}

impl JobsConfig {
    /// Range checks; one line per problem.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.default_concurrency == 0 || self.concurrency.values().any(|&c| c == 0) {
            p.push("jobs concurrency must be at least 1".into());
        }
        if self.lease_ms < 1_000 {
            p.push("jobs.lease_ms must be at least 1000".into());
        }
        if self.poll_ms == 0 {
            p.push("jobs.poll_ms must be at least 1".into());
        }
        if !(1..=100).contains(&self.max_attempts) {
            p.push("jobs.max_attempts must be between 1 and 100".into());
        }
        if self.timeout_ms == 0 {
            p.push("jobs.timeout_ms must be at least 1".into());
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            p.push("jobs.backoff_base_ms must not exceed jobs.backoff_max_ms".into());
        }
        p
    }
}
