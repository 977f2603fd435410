//! The job types this process knows: each name mapped to its handler. The service refuses
//! jobs of unknown types at enqueue time; workers run only registered types. A type can be
//! internal: run like any other, but enqueued only by the subsystem that owns it (through
//! `JobService::enqueue_internal`), never through the public job API, so its payloads always
//! come from code that checked them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::handler::JobHandler;

/// Job types and their handlers.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
    internal: BTreeSet<String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler of `kind`.
    pub fn register(&mut self, kind: impl Into<String>, handler: impl JobHandler) -> &mut Self {
        let kind = kind.into();
        self.handlers.insert(kind, Arc::new(handler));
        self
    }

    /// Adds (or replaces) an internal type (see the module docs).
    pub fn register_internal(&mut self, kind: impl Into<String>, handler: impl JobHandler) -> &mut Self {
        let kind = kind.into();
        self.internal.insert(kind.clone());
        self.register(kind, handler)
    }

    /// True for internal types.
    pub fn is_internal(&self, kind: &str) -> bool {
        self.internal.contains(kind)
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(kind)
    }

    /// Every registered type, sorted (what workers run).
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// The types the public job API accepts, sorted.
    pub fn public_kinds(&self) -> impl Iterator<Item = &str> {
        self.kinds().filter(|k| !self.internal.contains(*k))
    }
}
