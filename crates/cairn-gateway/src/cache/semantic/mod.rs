//! The semantic cache: a tier after the exact cache that answers a chat question from the
//! cached answer to an earlier one asked in other words. A hit needs everything but the last
//! user turn to be the same (the semantic key: tenant, namespace, alias, system prompt, tools,
//! parameters and at most `context_messages` earlier turns), the two questions' embeddings to
//! be at least `threshold` similar, and the questions to agree (`agree`): similarity alone
//! serves near-misses ("capital of France" / "of Germany") at every threshold.

mod agree;
mod lexicon;

pub use agree::{agree, Disagreement};

use cairn_core::cache::{CacheKey, SemanticCandidate};
use cairn_core::config::SemanticCacheConfig;

/// Longest question matched by meaning, in bytes: long prompts rarely recur in other words,
/// and the agreement check's cost grows with the product of two questions' lengths.
pub(crate) const MAX_QUESTION_BYTES: usize = 2_000;

/// How many of the most similar candidates are checked for agreement.
const AGREEMENT_TRIES: usize = 8;

/// The semantic tier's part of one call's cache plan.
#[derive(Clone, Debug)]
pub(crate) struct SemanticPlan {
    /// Everything a hit must share exactly.
    pub key: CacheKey,
    /// The last user turn.
    pub question: String,
    /// The embedding alias and thresholds.
    pub config: SemanticCacheConfig,
    /// The question's embedding, once computed.
    pub vector: Option<Vec<f32>>,
}

/// The most similar of `candidates` that is at least `threshold` similar, fresh enough and
/// agrees with the question; with its similarity.
pub(crate) fn best(
    plan: &SemanticPlan,
    candidates: &[SemanticCandidate],
    fresh_since_ms: Option<i64>,
) -> Option<(CacheKey, f32)> {
    let vector = plan.vector.as_deref()?;
    let mut scored: Vec<(f32, &SemanticCandidate)> = candidates
        .iter()
        .filter(|c| fresh_since_ms.is_none_or(|since| c.created_ms >= since))
        .map(|c| (cosine(vector, &c.vector), c))
        .filter(|(s, _)| *s >= plan.config.threshold)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(AGREEMENT_TRIES)
        .find(|(_, c)| agree(&plan.question, &c.question).is_ok())
        .map(|(s, c)| (c.key.clone(), s))
}

/// Cosine similarity; 0 when either vector is empty or the lengths differ (another model).
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let n = norm(a) * norm(b);
    if n > 0.0 {
        dot / n
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(key: &str, question: &str, vector: Vec<f32>, created_ms: i64) -> SemanticCandidate {
        SemanticCandidate { key: CacheKey(key.into()), question: question.into(), vector, created_ms }
    }

    #[test]
    fn the_most_similar_agreeing_fresh_candidate_wins() {
        let plan = SemanticPlan {
            key: CacheKey("s".into()),
            question: "What is the capital of France?".into(),
            config: SemanticCacheConfig { threshold: 0.9, ..Default::default() },
            vector: Some(vec![1.0, 0.0]),
        };
        let candidates = [
            candidate("germany", "What is the capital of Germany?", vec![1.0, 0.01], 5),
            candidate("far", "What's France's capital?", vec![0.0, 1.0], 5),
            candidate("old", "What's the capital of France?", vec![1.0, 0.02], 1),
            candidate("good", "What's the capital of France?", vec![1.0, 0.05], 5),
        ];
        let (key, similarity) = best(&plan, &candidates, Some(2)).expect("a hit");
        assert_eq!(key.0, "good", "the near-miss disagrees, the dissimilar one is below the threshold, old is stale");
        assert!(similarity > 0.99);
        assert_eq!(best(&plan, &candidates[..2], None), None);
        assert_eq!(best(&SemanticPlan { vector: None, ..plan }, &candidates, None), None);
    }

    #[test]
    fn cosine_of_mismatched_vectors_is_zero() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0, 0.0]), 0.0);
        assert_eq!(cosine(&[], &[]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
    }
}
