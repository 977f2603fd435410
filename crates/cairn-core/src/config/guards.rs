//! `[guards]`: what the guard stages share across model aliases. Which guards run, and how,
//! is set per alias (`[models.NAME.guards]`, a `GuardSettings`) and per key.

use serde::{Deserialize, Serialize};

/// Settings shared by every alias's guards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardsConfig {
    /// The embedding model whose tokenizer and word vectors the injection classifier reads: a
    /// model in the cache (`minilm`) or a folder path. Loaded only when an alias screens for
    /// injection.
    pub injection_model: String,
    /// Score from which direct input (user turns) is flagged, 0 to 1; absent: the trained
    /// model's own threshold.
    pub injection_threshold: Option<f32>,
    /// Score from which text inside tool output or documents is flagged, 0 to 1; absent: the
    /// trained model's own threshold.
    pub indirect_threshold: Option<f32>,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        Self { injection_model: "minilm".into(), injection_threshold: None, indirect_threshold: None }
    }
}

impl GuardsConfig {
    /// Problems with the settings.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, t) in
            [("injection_threshold", self.injection_threshold), ("indirect_threshold", self.indirect_threshold)]
        {
            if t.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
                out.push(format!("guards.{name} must be from 0 to 1"));
            }
        }
        if self.injection_model.trim().is_empty() {
            out.push("guards.injection_model must name a model".into());
        }
        out
    }
}

impl super::ProviderConfig {
    /// Whether prompts may reach this provider with personal data in them (see `trusted`).
    pub fn is_trusted(&self) -> bool {
        self.trusted.unwrap_or(self.kind == super::ProviderKind::Local)
    }
}
