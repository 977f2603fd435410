//! `[models.NAME.route]`: an alias that sends each call to a small or a large alias by how hard
//! the request looks (the gateway's cost router).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which of a routed alias's two models answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelSize {
    /// The cheaper model, for requests that look easy.
    Small,
    /// The stronger model, for requests that look hard.
    Large,
}

impl ModelSize {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSize::Small => "small",
            ModelSize::Large => "large",
        }
    }
}

/// A labelled request the router compares new ones with (by meaning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteExample {
    /// A request text.
    pub text: String,
    /// Which model it needs.
    pub size: ModelSize,
}

/// The cost router of one alias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The alias for easy requests.
    pub small: String,
    /// The alias for hard requests.
    pub large: String,
    /// Difficulty (0 to 1) from which a request goes to `large`: higher sends fewer there.
    #[serde(default = "half")]
    pub threshold: f32,
    /// Your own labelled requests, compared by meaning alongside the built-in ones.
    #[serde(default)]
    pub examples: Vec<RouteExample>,
}

fn half() -> f32 {
    0.5
}

impl RouteConfig {
    /// Problems with alias `alias`'s router, given every alias's (kind, has route, has targets).
    pub fn problems(&self, alias: &str, lookup: impl Fn(&str) -> Option<(bool, bool)>) -> Vec<String> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.threshold) {
            out.push(format!("models.{alias}.route.threshold must be from 0 to 1"));
        }
        for (side, name) in [("small", &self.small), ("large", &self.large)] {
            match lookup(name) {
                None => out.push(format!("models.{alias}.route.{side} names '{name}', which is not a model")),
                Some((false, _)) => out.push(format!("models.{alias}.route.{side}: '{name}' is not a chat model")),
                Some((_, true)) => {
                    out.push(format!("models.{alias}.route.{side}: '{name}' routes too; name a model with targets"))
                }
                Some(_) => {}
            }
        }
        if self.examples.len() > 1000 || self.examples.iter().any(|e| e.text.len() > 4000) {
            out.push(format!("models.{alias}.route.examples: at most 1000, each at most 4000 bytes"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[models.a]
targets = [{ provider = "p", model = "a" }]
[models.b]
targets = [{ provider = "p", model = "b" }]
[models.e]
kind = "embedding"
targets = [{ provider = "p", model = "e" }]
"#;

    fn problems(extra: &str) -> String {
        match Config::from_toml(&format!("{BASE}{extra}")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn routes_name_chat_models_with_targets() {
        assert_eq!(problems("[models.auto]\nroute = { small = \"a\", large = \"b\" }\n"), "");
        assert!(problems("[models.auto]\nroute = { small = \"a\", large = \"nope\" }\n").contains("not a model"));
        assert!(problems("[models.auto]\nroute = { small = \"e\", large = \"b\" }\n").contains("not a chat model"));
        let nested = "[models.auto]\nroute = { small = \"a\", large = \"b\" }\n[models.x]\nroute = { small = \"auto\", large = \"b\" }\n";
        assert!(problems(nested).contains("routes too"));
        let both = "[models.auto]\ntargets = [{ provider = \"p\", model = \"a\" }]\nroute = { small = \"a\", large = \"b\" }\n";
        assert!(problems(both).contains("no targets of its own"));
        assert!(problems("[models.auto]\nroute = { small = \"a\", large = \"b\", threshold = 2.0 }\n")
            .contains("threshold"));
        assert!(problems(
            "[models.auto]\nroute = { small = \"a\", large = \"b\", examples = [{ text = \"x\", size = \"huge\" }] }\n"
        )
        .contains("huge"));
    }
}
