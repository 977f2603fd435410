//! Retrieval metrics over ranked result lists and graded relevance judgements (as in BEIR):
//! nDCG@k, recall@k and MRR@k, averaged over queries by the caller.

use std::collections::HashMap;

/// Relevance judgements of one query: document id to grade (0 = not relevant).
pub type Judgements = HashMap<String, u32>;

/// Normalised discounted cumulative gain at `k` (exponential gain `2^grade - 1`, as trec_eval).
pub fn ndcg_at(ranked: &[String], relevant: &Judgements, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| gain(relevant.get(d).copied().unwrap_or(0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut grades: Vec<u32> = relevant.values().copied().filter(|&g| g > 0).collect();
    grades.sort_unstable_by(|a, b| b.cmp(a));
    let ideal: f64 = grades.iter().take(k).enumerate().map(|(i, &g)| gain(g) / (i as f64 + 2.0).log2()).sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

/// The share of relevant documents found in the first `k`.
pub fn recall_at(ranked: &[String], relevant: &Judgements, k: usize) -> f64 {
    let total = relevant.values().filter(|&&g| g > 0).count();
    if total == 0 {
        return 0.0;
    }
    let found = ranked.iter().take(k).filter(|d| relevant.get(*d).is_some_and(|&g| g > 0)).count();
    found as f64 / total as f64
}

/// Reciprocal rank of the first relevant document within the first `k` (0 if none).
pub fn mrr_at(ranked: &[String], relevant: &Judgements, k: usize) -> f64 {
    ranked.iter().take(k).position(|d| relevant.get(d).is_some_and(|&g| g > 0)).map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

fn gain(grade: u32) -> f64 {
    2f64.powi(grade as i32) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn perfect_and_partial_rankings() {
        let rel: Judgements = [("a".to_string(), 1), ("b".to_string(), 1)].into();
        assert!((ndcg_at(&ids(&["a", "b", "c"]), &rel, 10) - 1.0).abs() < 1e-12);
        // One relevant at rank 2 of two relevant: DCG = 1/log2(3), IDCG = 1 + 1/log2(3).
        let expected = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&ids(&["c", "a"]), &rel, 10) - expected).abs() < 1e-12);
        assert_eq!(recall_at(&ids(&["c", "a"]), &rel, 1), 0.0);
        assert_eq!(recall_at(&ids(&["c", "a"]), &rel, 2), 0.5);
        assert_eq!(mrr_at(&ids(&["c", "a"]), &rel, 10), 0.5);
        assert_eq!(mrr_at(&ids(&["c"]), &rel, 10), 0.0);
    }
}
