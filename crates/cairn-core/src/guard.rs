//! Guardrails as the gateway applies them: which guards there are, what each may do (its mode),
//! and how an alias's settings combine with a key's. The screening itself lives in
//! `cairn-guard`; the stages that run it live in the gateway's call pipeline.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One guard of the call pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// Prompt-injection screening of user input and of tool output in the messages.
    Injection,
    /// Personal data in prompts sent to providers that are not trusted with it.
    PiiInput,
    /// Personal data in model output, streamed output included.
    PiiOutput,
    /// Output that must match the request's `response_format` JSON schema.
    OutputSchema,
}

impl GuardKind {
    /// The snake_case name used in config, errors, headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardKind::Injection => "injection",
            GuardKind::PiiInput => "pii_input",
            GuardKind::PiiOutput => "pii_output",
            GuardKind::OutputSchema => "output_schema",
        }
    }

    /// The error code of a call this guard blocked.
    pub fn error_code(self) -> &'static str {
        match self {
            GuardKind::Injection => "guard_injection",
            GuardKind::PiiInput => "guard_pii_input",
            GuardKind::PiiOutput => "guard_pii_output",
            GuardKind::OutputSchema => "guard_output_schema",
        }
    }

    /// Whether the guard judges what the model produced (a block is then HTTP 422, not 400).
    pub fn on_output(self) -> bool {
        matches!(self, GuardKind::PiiOutput | GuardKind::OutputSchema)
    }
}

/// What a guard does with what it finds. Ordered from least to most strict: where an alias and
/// a key both set a guard, the stricter mode applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    /// The guard does not run.
    #[default]
    Off,
    /// The guard runs and reports what it found (`x-cairn-guards`, metrics, the call's span);
    /// the call goes on unchanged.
    Flag,
    /// PII guards only: what is found is replaced by its kind (`[EMAIL]`) and the call goes on.
    Redact,
    /// The call is refused with a 4xx naming the guard, and accounted as `blocked`.
    Block,
}

impl GuardMode {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::Off => "off",
            GuardMode::Flag => "flag",
            GuardMode::Redact => "redact",
            GuardMode::Block => "block",
        }
    }
}

/// The modes of a guard that screens or checks without rewriting (injection, output schema):
/// `GuardMode` without `redact`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScreenMode {
    /// The guard does not run.
    #[default]
    Off,
    /// The guard runs and reports; the call goes on unchanged.
    Flag,
    /// The call is refused.
    Block,
}

impl From<ScreenMode> for GuardMode {
    fn from(m: ScreenMode) -> Self {
        match m {
            ScreenMode::Off => GuardMode::Off,
            ScreenMode::Flag => GuardMode::Flag,
            ScreenMode::Block => GuardMode::Block,
        }
    }
}

/// What a guard did on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardOutcome {
    /// It ran and found nothing.
    Pass,
    /// It found something and, in `flag` mode, let the call go on unchanged.
    Flagged,
    /// It replaced what it found.
    Redacted,
    /// It refused the call.
    Blocked,
}

impl GuardOutcome {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardOutcome::Pass => "pass",
            GuardOutcome::Flagged => "flagged",
            GuardOutcome::Redacted => "redacted",
            GuardOutcome::Blocked => "blocked",
        }
    }
}

/// The guards that ran on a call and what each did, in the order they ran; written as the
/// `x-cairn-guards` header (`injection=pass, pii_output=redacted`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardReport(pub Vec<(GuardKind, GuardOutcome)>);

impl GuardReport {
    /// Notes what `guard` did; a later, stronger outcome of the same guard replaces it.
    pub fn note(&mut self, guard: GuardKind, outcome: GuardOutcome) {
        match self.0.iter_mut().find(|(g, _)| *g == guard) {
            Some((_, o)) if (*o as u8) < (outcome as u8) => *o = outcome,
            Some(_) => {}
            None => self.0.push((guard, outcome)),
        }
    }

    /// The header value; empty when no guard ran.
    pub fn header(&self) -> String {
        self.0.iter().map(|(g, o)| format!("{}={}", g.as_str(), o.as_str())).collect::<Vec<_>>().join(", ")
    }
}

/// The guards of one model alias (`[models.NAME.guards]`) or one key (`guards` on a key); a
/// key's settings only ever tighten its alias's (see `GuardSettings::with`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    /// Prompt-injection screening: `off`, `flag` or `block`.
    pub injection: ScreenMode,
    /// PII in prompts bound for untrusted providers: `off`, `flag`, `redact` or `block`.
    pub pii_input: GuardMode,
    /// PII in model output: `off`, `flag`, `redact` or `block`.
    pub pii_output: GuardMode,
    /// JSON-schema validation of output (`response_format` of type `json_schema`): `off`,
    /// `flag` or `block` (re-ask, then refuse).
    pub output_schema: ScreenMode,
    /// How many times an answer that fails its schema is re-asked (with the validation error)
    /// before the call is refused; at most 5. Absent: the alias's value, else 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 5)]
    pub schema_retries: Option<u8>,
}

/// Most re-asks after an answer fails its schema.
pub const MAX_SCHEMA_RETRIES: u8 = 5;
/// Re-asks when nothing says otherwise.
pub const DEFAULT_SCHEMA_RETRIES: u8 = 2;

impl GuardSettings {
    /// Whether nothing is set (for serialisation).
    pub fn is_default(&self) -> bool {
        *self == GuardSettings::default()
    }

    /// Whether any guard runs.
    pub fn any(&self) -> bool {
        *self != GuardSettings { schema_retries: self.schema_retries, ..GuardSettings::default() }
    }

    /// The mode of one guard.
    pub fn mode(&self, guard: GuardKind) -> GuardMode {
        match guard {
            GuardKind::Injection => self.injection.into(),
            GuardKind::PiiInput => self.pii_input,
            GuardKind::PiiOutput => self.pii_output,
            GuardKind::OutputSchema => self.output_schema.into(),
        }
    }

    /// These settings tightened by `key`'s: each guard takes the stricter mode; re-asks take
    /// the key's count when it sets one.
    pub fn with(&self, key: &GuardSettings) -> GuardSettings {
        GuardSettings {
            injection: self.injection.max(key.injection),
            pii_input: self.pii_input.max(key.pii_input),
            pii_output: self.pii_output.max(key.pii_output),
            output_schema: self.output_schema.max(key.output_schema),
            schema_retries: key.schema_retries.or(self.schema_retries),
        }
    }

    /// Re-asks allowed after a schema failure.
    pub fn retries(&self) -> u8 {
        self.schema_retries.unwrap_or(DEFAULT_SCHEMA_RETRIES)
    }

    /// Checks the settings; `at` names where they came from in errors.
    pub fn check(&self, at: &str) -> Result<(), String> {
        if self.schema_retries.is_some_and(|n| n > MAX_SCHEMA_RETRIES) {
            return Err(format!("{at}.schema_retries: at most {MAX_SCHEMA_RETRIES}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_only_tighten() {
        let alias = GuardSettings { injection: ScreenMode::Block, pii_output: GuardMode::Flag, ..Default::default() };
        let key = GuardSettings { injection: ScreenMode::Off, pii_output: GuardMode::Redact, ..Default::default() };
        let both = alias.with(&key);
        assert_eq!(both.injection, ScreenMode::Block);
        assert_eq!(both.pii_output, GuardMode::Redact);
        assert_eq!(both.retries(), DEFAULT_SCHEMA_RETRIES);
        assert!(both.any());
        assert!(!GuardSettings { schema_retries: Some(1), ..Default::default() }.any());
    }

    #[test]
    fn redact_is_for_pii_only() {
        let bad: Result<GuardSettings, _> = serde_json::from_str(r#"{"injection": "redact"}"#);
        assert!(bad.is_err());
        let ok = GuardSettings { pii_input: GuardMode::Redact, schema_retries: Some(5), ..Default::default() };
        assert!(ok.check("k").is_ok());
        assert!(GuardSettings { schema_retries: Some(6), ..Default::default() }.check("k").is_err());
    }
}
