//! What the cost router reads in a request: its size, code, reasoning and maths cues, tools,
//! turns and structure, and how close its meaning is to labelled easy and hard requests.

use std::sync::LazyLock;

use cairn_core::config::ModelSize;
use cairn_core::openai::{ChatRequest, ChatRole};
use regex::Regex;

/// How many features there are.
pub const WIDTH: usize = 10;

/// Words that ask for work in several steps.
static REASONING: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:prove|proof|derive|step[- ]by[- ]step|explain (?:why|how)|analy[sz]e|compare|design|implement|refactor|optimi[sz]e|debug|trade-?offs?|architecture|plan|evaluate|critically|reason|strateg(?:y|ies)|justify|in[- ]depth|detailed|walk (?:me )?through|threat model|migrat(?:e|ion))\b",
    )
    .ok()
});
/// Signs of code.
static CODE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"```|\b(?:fn|def|class|function|return|import|SELECT|struct|impl|async|await|const|let|var)\b|[{};]\s*$|=>|::|\w+\(\)|\b(?:Python|Rust|Java(?:Script)?|TypeScript|Go|C\+\+|SQL|bash|regex|Kubernetes|Docker)\b",
    )
    .ok()
});
/// Signs of mathematics.
static MATH: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)\d\s*[-+*/^=<>]\s*\d|\b(?:equation|integral|derivative|matrix|probability|theorem|induction|expected (?:value|number))\b|[∑∫√π]").ok()
});

fn count(re: &LazyLock<Option<Regex>>, text: &str) -> usize {
    re.as_ref().map_or(0, |r| r.find_iter(text).count())
}

/// The text the router reads: the last user turn (what is asked now).
pub fn asked(req: &ChatRequest) -> String {
    req.messages.iter().rev().find(|m| m.role == ChatRole::User).map(|m| m.text_content()).unwrap_or_default()
}

/// The features of `req`, with `similarity` the meaning feature (see `similarity`).
pub fn features(req: &ChatRequest, text: &str, similarity: f32) -> [f32; WIDTH] {
    let words = text.split_whitespace().count() as f32;
    let sentences = text.split(['.', '?', '!', '\n']).filter(|s| s.split_whitespace().count() > 2).count() as f32;
    let clauses = (text.matches(',').count() + text.matches(" and ").count()) as f32;
    [
        (1.0 + words).ln() / 5.0,
        (count(&CODE, text) as f32).min(4.0) / 4.0,
        (count(&REASONING, text) as f32).min(3.0) / 3.0,
        (count(&MATH, text) as f32).min(3.0) / 3.0,
        f32::from(req.tools.as_ref().is_some_and(|t| !t.is_empty())),
        ((req.messages.len().saturating_sub(1)) as f32 / 10.0).min(1.0),
        f32::from(req.response_format.is_some()),
        (clauses / 6.0).min(1.0),
        (sentences / 5.0).min(1.0),
        similarity,
    ]
}

/// Labelled requests, as vectors.
#[derive(Default)]
pub struct Examples(pub Vec<(Vec<f32>, ModelSize)>);

impl Examples {
    /// How much closer `v` is to the hard examples than to the easy ones: the mean cosine of
    /// its three nearest large examples minus that of its three nearest small ones (vectors
    /// are normalised). Exact matches are skipped, so an example does not vouch for itself.
    pub fn similarity(&self, v: &[f32]) -> f32 {
        let nearest = |size: ModelSize| {
            let mut sims: Vec<f32> = self
                .0
                .iter()
                .filter(|(_, s)| *s == size)
                .map(|(e, _)| e.iter().zip(v).map(|(a, b)| a * b).sum::<f32>())
                .filter(|s| *s < 0.9999)
                .collect();
            sims.sort_by(|a, b| b.total_cmp(a));
            let top = &sims[..sims.len().min(3)];
            if top.is_empty() {
                0.0
            } else {
                top.iter().sum::<f32>() / top.len() as f32
            }
        };
        nearest(ModelSize::Large) - nearest(ModelSize::Small)
    }
}
