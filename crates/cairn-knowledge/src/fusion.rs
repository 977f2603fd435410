//! Hybrid ranking: merges the keyword and vector result lists into one. Two methods:
//! reciprocal rank fusion (uses ranks only, robust to incomparable scores) and a convex
//! combination of scores normalised per list (uses how much better one hit is than the next).

use std::collections::HashMap;

/// How to fuse two ranked lists.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fusion {
    /// `sum(w / (k + rank))` over the lists a document is in.
    Rrf {
        /// The rank constant (60 is customary).
        k: f32,
        /// Weight of the keyword list; the vector list gets `1 - keyword_weight`.
        keyword_weight: f32,
    },
    /// `w * norm(keyword) + (1 - w) * norm(vector)`, each list min-max normalised to [0, 1];
    /// a document missing from a list gets 0 for it.
    Convex {
        /// Weight of the keyword list.
        keyword_weight: f32,
    },
}

/// Fuses `keyword` and `vector` (each best first, with scores) and returns the best `k`.
pub fn fuse(fusion: Fusion, keyword: &[(u64, f32)], vector: &[(u64, f32)], k: usize) -> Vec<(u64, f32)> {
    let mut scores: HashMap<u64, f32> = HashMap::new();
    match fusion {
        Fusion::Rrf { k: c, keyword_weight: w } => {
            for (list, weight) in [(keyword, w), (vector, 1.0 - w)] {
                for (rank, (id, _)) in list.iter().enumerate() {
                    *scores.entry(*id).or_default() += weight / (c + rank as f32 + 1.0);
                }
            }
        }
        Fusion::Convex { keyword_weight: w } => {
            for (list, weight) in [(keyword, w), (vector, 1.0 - w)] {
                let (lo, hi) = list.iter().fold((f32::MAX, f32::MIN), |(lo, hi), (_, s)| (lo.min(*s), hi.max(*s)));
                let span = if hi > lo { hi - lo } else { 1.0 };
                for (id, s) in list {
                    *scores.entry(*id).or_default() += weight * (s - lo) / span;
                }
            }
        }
    }
    let mut out: Vec<(u64, f32)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let kw = [(1, 9.0), (2, 5.0), (3, 1.0)];
        let vec = [(4, 0.9), (2, 0.8), (3, 0.7)];
        let out = fuse(Fusion::Rrf { k: 60.0, keyword_weight: 0.5 }, &kw, &vec, 10);
        assert_eq!(out[0].0, 2, "in both lists near the top");
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn convex_uses_score_gaps_and_weights() {
        let kw = [(1, 10.0), (2, 1.0)];
        let vec = [(2, 0.9), (1, 0.1)];
        assert_eq!(fuse(Fusion::Convex { keyword_weight: 0.8 }, &kw, &vec, 1)[0].0, 1);
        assert_eq!(fuse(Fusion::Convex { keyword_weight: 0.2 }, &kw, &vec, 1)[0].0, 2);
        assert!(fuse(Fusion::Convex { keyword_weight: 0.5 }, &[], &[], 5).is_empty());
    }
}
