//! `[models.NAME]`: the names clients use, each routed to targets (provider, upstream model,
//! prices, timeouts) or, for a routed alias, to a small and a large alias.

use serde::{Deserialize, Serialize};

use super::{ModelCacheConfig, RouteConfig, TimeoutOverrides};

/// What a model is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// `/v1/chat/completions`.
    #[default]
    Chat,
    /// `/v1/embeddings`.
    Embedding,
}

/// A model name clients use, routed to an ordered list of targets (the first is preferred).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Chat or embedding.
    #[serde(default)]
    pub kind: ModelKind,
    /// Targets in fallback order (none when the alias routes, see `route`).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Route each call to a small or a large alias by difficulty, instead of own targets.
    #[serde(default)]
    pub route: Option<RouteConfig>,
    /// The exact response cache; absent: never cached.
    #[serde(default)]
    pub cache: Option<ModelCacheConfig>,
    /// The guards every call to this alias passes; absent: none.
    #[serde(default)]
    pub guards: crate::guard::GuardSettings,
}

/// One provider + upstream model, with its prices and timeouts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Provider name (a key of `[providers]`).
    pub provider: String,
    /// Model name at the provider.
    pub model: String,
    /// US dollars per million input tokens.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    /// US dollars per million output tokens.
    #[serde(default)]
    pub output_usd_per_mtok: f64,
    /// Timeout overrides for this target.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Whether this model can call tools (default true; say false for a model served without
    /// tool support, and agents with tools refuse the alias).
    #[serde(default = "yes")]
    pub tools: bool,
}

fn yes() -> bool {
    true
}
