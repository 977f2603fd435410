//! The cost router: an alias with `route = { small, large, threshold }` sends each chat call to
//! its small or its large alias by how hard the request looks. A logistic regression over the
//! request's features (`features`) gives a difficulty from 0 to 1; from `threshold` on, the
//! large alias answers, so the threshold sets the share of traffic that pays for the large
//! model. One feature is meaning: how much closer the request is to labelled hard requests than
//! to easy ones (the built-in labelled set's training half and the alias's own `examples`,
//! compared as mean word vectors of the embedding model, no encoder run), so an operator
//! steers the router by adding examples. A request may choose (`x-cairn-route`, `cairn.route`).
//!
//! The model ships trained (`data/routing-model.json`) from the committed labelled set
//! (`data/routing-set.jsonl`) by `cairn route train`; `cairn route eval` reports accuracy and
//! decision latency.

pub mod features;

use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::config::{Config, ModelSize, RouteConfig};
use cairn_core::guard::GuardSettings;
use cairn_core::openai::{ChatRequest, RouteDecision};
use cairn_guard::TextVectors;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use features::Examples;

use crate::guard::SharedVectors;

/// The trained weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoutingModel {
    /// One per feature (`features::WIDTH`).
    pub weights: Vec<f32>,
    /// Bias.
    pub bias: f32,
}

const BUILTIN_MODEL: &str = include_str!("../../data/routing-model.json");
/// The labelled set; its training half is the built-in examples.
pub const BUILTIN_SET: &str = include_str!("../../data/routing-set.jsonl");

/// One labelled request of the set.
#[derive(Clone, Debug, Deserialize)]
pub struct Labelled {
    /// The request text.
    pub text: String,
    /// The model it needs.
    pub label: ModelSize,
    /// `train` or `test`.
    pub split: String,
}

impl RoutingModel {
    /// The model that ships with Cairn.
    pub fn builtin() -> Result<Self, String> {
        let m: RoutingModel = serde_json::from_str(BUILTIN_MODEL).map_err(|e| format!("routing model: {e}"))?;
        if m.weights.len() != features::WIDTH {
            return Err(format!("routing model has {} weights for {} features", m.weights.len(), features::WIDTH));
        }
        Ok(m)
    }

    /// The difficulty of a request with these features.
    pub fn score(&self, f: &[f32]) -> f32 {
        let z = self.weights.iter().zip(f).map(|(w, x)| w * x).sum::<f32>() + self.bias;
        1.0 / (1.0 + (-z).exp())
    }
}

/// Parses a labelled set (JSON lines).
pub fn parse_set(text: &str) -> Result<Vec<Labelled>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Decides for every routed alias (see the module docs).
pub(crate) struct CostRouter {
    /// Each routed alias's router and its own guards (which apply whichever model answers).
    routes: HashMap<String, (RouteConfig, GuardSettings)>,
    model: RoutingModel,
    vectors: SharedVectors,
    /// The built-in set's training half, parsed once.
    builtin: Vec<Labelled>,
    /// Each alias's examples (built-in and its own) as vectors, built on first use.
    examples: Mutex<HashMap<String, Arc<Examples>>>,
}

impl CostRouter {
    /// The routers of `cfg`'s routed aliases.
    pub fn new(cfg: &Config, vectors: SharedVectors) -> Result<Self, String> {
        let routes =
            cfg.models.iter().filter_map(|(a, m)| m.route.clone().map(|r| (a.clone(), (r, m.guards)))).collect();
        let builtin = parse_set(BUILTIN_SET)?.into_iter().filter(|e| e.split == "train").collect();
        Ok(Self { routes, model: RoutingModel::builtin()?, vectors, builtin, examples: Mutex::new(HashMap::new()) })
    }

    /// The router of `alias` and its guards, if it routes.
    pub fn get(&self, alias: &str) -> Option<&(RouteConfig, GuardSettings)> {
        self.routes.get(alias)
    }

    /// Every routed alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&String, &RouteConfig)> {
        self.routes.iter().map(|(a, (r, _))| (a, r))
    }

    /// `alias`'s examples as vectors.
    fn examples(&self, alias: &str, route: &RouteConfig, v: &dyn TextVectors) -> Arc<Examples> {
        if let Some(e) = self.examples.lock().get(alias) {
            return e.clone();
        }
        let mut all: Vec<(Vec<f32>, ModelSize)> = self.builtin.iter().map(|e| (v.mean(&e.text), e.label)).collect();
        all.extend(route.examples.iter().map(|e| (v.mean(&e.text), e.size)));
        let built = Arc::new(Examples(all));
        self.examples.lock().insert(alias.to_owned(), built.clone());
        built
    }

    /// Which model of `alias` answers `req`; `forced` when the request chose.
    pub async fn decide(
        &self,
        alias: &str,
        route: &RouteConfig,
        req: &ChatRequest,
        forced: Option<ModelSize>,
    ) -> RouteDecision {
        let vectors = self.vectors.get().await;
        let text = features::asked(req);
        let similarity = match &vectors {
            Some(v) => self.examples(alias, route, v.as_ref()).similarity(&v.mean(&text)),
            None => 0.0,
        };
        let score = self.model.score(&features::features(req, &text, similarity));
        let size = forced.unwrap_or(if score >= route.threshold { ModelSize::Large } else { ModelSize::Small });
        let alias = match size {
            ModelSize::Small => route.small.clone(),
            ModelSize::Large => route.large.clone(),
        };
        RouteDecision { size, alias, score, forced: forced.is_some() }
    }
}
