//! The guard stages of the call pipeline: what runs, per call, between the request and the
//! provider and between the provider and the client.
//!
//! - **injection** (`input`): user turns are screened as direct input; tool results, and data
//!   fenced inside user turns (RAG sources), as indirect text, against a stricter threshold.
//!   Rules and a classifier (`cairn_guard::classifier`) decide; the message that tripped it is
//!   named.
//! - **pii_input** (`input`): prompts bound for a provider that is not trusted with personal
//!   data (`providers.NAME.trusted`) are redacted per attempt, so a fallback from a local model
//!   to a remote one redacts and the local model still sees the prompt as sent.
//! - **pii_output** (`output`, `stream`): answers are redacted; streamed answers hold back
//!   the tail that may still be part of a value (`cairn_guard::StreamRedactor`).
//! - **output_schema** (`output`): an answer to a `json_schema` response format is validated;
//!   one that fails is re-asked with the validation error, `schema_retries` times, then the call
//!   is refused.
//!
//! Modes come from the alias and the caller's key, the stricter winning (`GuardSettings::with`).
//! A block is a 4xx naming the guard (`Error::GuardBlocked`), accounted as a `blocked` call and
//! written to the audit log; flags and redactions are reported in `x-cairn-guards`, the
//! `cairn_guard_decisions_total` metric and the call's span.

mod input;
pub(crate) mod output;
mod stages;
mod stream;
mod vectors;

use std::sync::Arc;

use cairn_core::config::Config;
use cairn_core::guard::{GuardKind, GuardOutcome, GuardReport, GuardSettings};
use cairn_core::tenancy::Principal;
use cairn_guard::{InjectionModel, InjectionScreen, PiiPolicy, Redactor, Schemas};
use cairn_telemetry::Metrics;

pub(crate) use output::Verdict;
pub(crate) use stages::BlockAudit;
pub(crate) use stream::StreamPii;
pub(crate) use vectors::SharedVectors;
pub use vectors::StaticVectors;

use crate::router::ModelRoute;

/// What the guard stages share: compiled rules, the classifier, the redactor, schemas.
pub(crate) struct Guards {
    /// The injection screen (rules, classifier, thresholds).
    screener: Arc<input::Screener>,
    /// The classifier's word vectors (shared with the cost router).
    vectors: SharedVectors,
    redactor: Arc<Redactor>,
    schemas: Schemas,
    metrics: Arc<Metrics>,
}

/// One call's guards: the modes in force and what each did so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct GuardPlan {
    /// The modes for this call (alias tightened by key).
    pub settings: GuardSettings,
    /// What ran and what it did.
    pub report: GuardReport,
}

/// A guard's refusal, before it becomes an error: the guard, what it found, and where.
#[derive(Clone, Debug)]
pub(crate) struct Blocked {
    /// Which guard.
    pub guard: GuardKind,
    /// What it found (no personal data).
    pub reason: String,
    /// The request field at fault.
    pub param: Option<String>,
}

impl Blocked {
    /// The client-facing error.
    pub fn error(&self) -> cairn_core::Error {
        cairn_core::Error::GuardBlocked { guard: self.guard, message: self.reason.clone(), param: self.param.clone() }
    }
}

impl Guards {
    /// The guards as configured; fails only if the built-in classifier is unreadable.
    pub fn new(cfg: &Config, vectors: SharedVectors, metrics: Arc<Metrics>) -> Result<Self, String> {
        let model = InjectionModel::builtin()?;
        Ok(Self {
            screener: Arc::new(input::Screener {
                screen: InjectionScreen::new(),
                direct_threshold: cfg.guards.injection_threshold.unwrap_or(model.direct_threshold),
                indirect_threshold: cfg.guards.indirect_threshold.unwrap_or(model.indirect_threshold),
                model,
            }),
            vectors,
            redactor: Arc::new(Redactor::new(PiiPolicy::Mask)),
            schemas: Schemas::default(),
            metrics,
        })
    }

    /// Whether `text` holds personal data or a secret the redactor finds.
    pub(crate) fn has_pii(&self, text: &str) -> bool {
        !self.redactor.find(text).is_empty()
    }

    /// The guards of a call by `p` to `route`, tightened by `also` (a routed alias's own).
    pub fn plan(&self, route: &ModelRoute, p: &Principal, also: &GuardSettings) -> GuardPlan {
        GuardPlan { settings: route.guards.with(also).with(&p.limits.guards), report: GuardReport::default() }
    }

    /// Notes what `guard` did on a call, in its report and the metrics.
    fn note(&self, plan: &mut GuardPlan, guard: GuardKind, outcome: GuardOutcome) {
        plan.report.note(guard, outcome);
        count(&self.metrics, guard, outcome);
    }
}

/// Counts one guard decision in `cairn_guard_decisions_total`.
fn count(metrics: &Metrics, guard: GuardKind, outcome: GuardOutcome) {
    metrics
        .guard_decisions
        .get_or_create(&vec![("guard", guard.as_str().into()), ("outcome", outcome.as_str().into())])
        .inc();
}

/// What a PII guard in `mode` did, given whether it found anything.
fn pii_outcome(found: bool, mode: cairn_core::guard::GuardMode) -> GuardOutcome {
    use cairn_core::guard::GuardMode;
    match (found, mode) {
        (false, _) => GuardOutcome::Pass,
        (true, GuardMode::Block) => GuardOutcome::Blocked,
        (true, GuardMode::Redact) => GuardOutcome::Redacted,
        (true, _) => GuardOutcome::Flagged,
    }
}
