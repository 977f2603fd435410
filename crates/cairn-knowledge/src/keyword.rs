//! The keyword retriever: an in-memory inverted index scored with Okapi BM25 (Lucene's idf,
//! `ln(1 + (N - df + 0.5) / (df + 0.5))`). Documents are added, replaced and removed one at a
//! time; a removed document stops matching at once and its postings are dropped when enough
//! have piled up. A search takes a filter that is applied inside the scoring loop, so a
//! selective metadata filter still yields the best `k` matching documents, not the best `k`
//! overall minus those filtered out. Postings are kept in document order with a score bound
//! per block of them, so that a search skips what cannot reach the top `k` (see `topk`).

mod topk;

use std::collections::HashMap;

use crate::analyze::Analyzer;
use topk::{Allow, Term, TopK, Weigh};

pub use cairn_core::search::Bm25Params;

/// One document's occurrences of a term.
#[derive(Clone, Copy, Debug)]
struct Posting {
    slot: u32,
    tf: u32,
}

/// The owner of a removed document's slot.
const REMOVED: u32 = u32::MAX;

/// Postings per score-bound block.
const BLOCK: usize = 128;

/// The largest term frequency and the shortest document among a block of a term's postings:
/// with the average length at query time, the most any of them can score.
#[derive(Clone, Copy, Debug)]
struct Block {
    max_tf: u32,
    min_len: u32,
}

impl Block {
    /// Widens the bound to cover `tf` in a document of `len` terms.
    fn cover(&mut self, tf: u32, len: u32) {
        self.max_tf = self.max_tf.max(tf);
        self.min_len = self.min_len.min(len);
    }
}

/// An inverted index over documents identified by `u64` ids (see the module docs).
pub struct Bm25Index {
    params: Bm25Params,
    analyzer: Analyzer,
    term_ids: HashMap<String, u32>,
    /// Per term: postings in slot order (slots only grow, and compaction keeps the order).
    postings: Vec<Vec<Posting>>,
    /// Per term: a score bound per `BLOCK` postings (removed documents' bounds stay until
    /// compaction: a bound may be loose, never short).
    blocks: Vec<Vec<Block>>,
    /// Document frequency of each term among live documents.
    df: Vec<u32>,
    /// Per slot: the document's id (live while its owner is not `REMOVED`).
    ids: Vec<u64>,
    /// Per slot: the document's length (kept for removed ones until compaction), dense and
    /// apart from `docs` so that scoring a posting reads 4 bytes near the last ones it read.
    lens: Vec<u32>,
    /// Per slot: the document's owner, `REMOVED` once removed; dense for the same reason, as a
    /// filtered search asks it of every candidate that could still make the top `k`.
    owners: Vec<u32>,
    /// Per slot: the term ids of the document, to undo its postings counts on removal.
    doc_terms: Vec<Vec<u32>>,
    slot_of: HashMap<u64, u32>,
    live: u32,
    dead: u32,
    total_len: u64,
}

impl Default for Bm25Index {
    fn default() -> Self {
        Self::new(Bm25Params::default())
    }
}

impl Bm25Index {
    /// An empty index with the English analyzer.
    pub fn new(params: Bm25Params) -> Self {
        Self {
            params,
            analyzer: Analyzer::english(),
            term_ids: HashMap::new(),
            postings: Vec::new(),
            blocks: Vec::new(),
            df: Vec::new(),
            ids: Vec::new(),
            lens: Vec::new(),
            owners: Vec::new(),
            doc_terms: Vec::new(),
            slot_of: HashMap::new(),
            live: 0,
            dead: 0,
            total_len: 0,
        }
    }

    /// Live documents.
    pub fn len(&self) -> usize {
        self.live as usize
    }

    /// True when no document is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Indexes `text` as document `id`, replacing any earlier version of it.
    pub fn insert(&mut self, id: u64, text: &str) {
        self.insert_owned(id, 0, text);
    }

    /// Indexes `text` as document `id` of group `owner` (for `search_owned`), replacing any
    /// earlier version of it.
    pub fn insert_owned(&mut self, id: u64, owner: u32, text: &str) {
        self.remove(id);
        let mut tf: HashMap<u32, u32> = HashMap::new();
        let mut len = 0u32;
        for term in self.analyzer.terms(text) {
            let next = self.term_ids.len() as u32;
            let t = *self.term_ids.entry(term).or_insert(next);
            if t as usize == self.postings.len() {
                self.postings.push(Vec::new());
                self.blocks.push(Vec::new());
                self.df.push(0);
            }
            *tf.entry(t).or_default() += 1;
            len += 1;
        }
        let slot = self.ids.len() as u32;
        let mut terms = Vec::with_capacity(tf.len());
        for (t, n) in tf {
            self.add_posting(t as usize, Posting { slot, tf: n }, len);
            self.df[t as usize] += 1;
            terms.push(t);
        }
        self.ids.push(id);
        self.lens.push(len);
        self.owners.push(owner);
        self.doc_terms.push(terms);
        self.slot_of.insert(id, slot);
        self.live += 1;
        self.total_len += u64::from(len);
    }

    /// Appends a posting to term `t`'s list and widens its last block's bound.
    fn add_posting(&mut self, t: usize, posting: Posting, len: u32) {
        let list = &mut self.postings[t];
        let blocks = &mut self.blocks[t];
        if list.len().is_multiple_of(BLOCK) {
            blocks.push(Block { max_tf: posting.tf, min_len: len });
        } else if let Some(last) = blocks.last_mut() {
            last.cover(posting.tf, len);
        }
        list.push(posting);
    }

    /// Removes document `id`; false if it was not indexed.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.slot_of.remove(&id) else { return false };
        if self.owners[slot as usize] != REMOVED {
            self.owners[slot as usize] = REMOVED;
            self.live -= 1;
            self.dead += 1;
            self.total_len -= u64::from(self.lens[slot as usize]);
            for &t in &self.doc_terms[slot as usize] {
                self.df[t as usize] -= 1;
            }
            self.doc_terms[slot as usize] = Vec::new();
        }
        // Rewrite postings once removed documents make up a third of the slots.
        if self.dead > 1024 && self.dead * 3 > self.ids.len() as u32 {
            self.compact();
        }
        true
    }

    /// Drops removed documents' postings and renumbers slots.
    fn compact(&mut self) {
        let mut new_slot = vec![u32::MAX; self.ids.len()];
        let live = self.live as usize;
        let (mut ids, mut lens, mut owners) =
            (Vec::with_capacity(live), Vec::with_capacity(live), Vec::with_capacity(live));
        let mut doc_terms = Vec::with_capacity(live);
        for old in (0..self.ids.len()).filter(|&old| self.owners[old] != REMOVED) {
            new_slot[old] = ids.len() as u32;
            self.slot_of.insert(self.ids[old], ids.len() as u32);
            ids.push(self.ids[old]);
            lens.push(self.lens[old]);
            owners.push(self.owners[old]);
            doc_terms.push(std::mem::take(&mut self.doc_terms[old]));
        }
        for list in &mut self.postings {
            list.retain_mut(|p| {
                p.slot = new_slot[p.slot as usize];
                p.slot != u32::MAX
            });
        }
        for (list, blocks) in self.postings.iter().zip(&mut self.blocks) {
            *blocks = list
                .chunks(BLOCK)
                .map(|ps| {
                    let mut block = Block { max_tf: 0, min_len: u32::MAX };
                    for p in ps {
                        block.cover(p.tf, lens[p.slot as usize]);
                    }
                    block
                })
                .collect();
        }
        (self.ids, self.lens, self.owners) = (ids, lens, owners);
        self.doc_terms = doc_terms;
        self.dead = 0;
    }

    /// The best `k` live documents for `query` among those `allow` accepts, best first, with
    /// their BM25 scores. Documents matching no query term are not returned.
    pub fn search(&self, query: &str, k: usize, allow: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        self.scored(
            query,
            k,
            &Allow::BySlot(&|slot| self.owners[slot as usize] != REMOVED && allow(self.ids[slot as usize])),
            topk::max_score,
        )
    }

    /// Like `search`, with the filter asked by group (`insert_owned`'s `owner`): a caller whose
    /// filter depends on the group answers from a table instead of looking each id up.
    pub fn search_owned(&self, query: &str, k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<(u64, f32)> {
        self.scored(query, k, &Allow::ByOwner(&|slot| self.owned_by(slot, allow)), topk::max_score)
    }

    /// `search_owned` scoring every posting of every query term: the reference the pruned
    /// search is checked and benchmarked against.
    #[doc(hidden)]
    pub fn search_owned_exhaustive(&self, query: &str, k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<(u64, f32)> {
        self.scored(query, k, &Allow::ByOwner(&|slot| self.owned_by(slot, allow)), topk::exhaustive)
    }

    /// Whether slot `slot` holds a live document whose owner `allow` accepts.
    fn owned_by(&self, slot: u32, allow: &dyn Fn(u32) -> bool) -> bool {
        let owner = self.owners[slot as usize];
        owner != REMOVED && allow(owner)
    }

    /// Resolves the query's terms (once per occurrence, as BM25 sums them) and ranks with `rank`.
    fn scored(&self, query: &str, k: usize, allow: &Allow<'_>, rank: Ranker) -> Vec<(u64, f32)> {
        if k == 0 || self.live == 0 {
            return Vec::new();
        }
        let n = self.live as f32;
        let weigh = Weigh { k1: self.params.k1, b: self.params.b, avg_len: self.total_len as f32 / n };
        let terms: Vec<Term<'_>> = self
            .analyzer
            .terms(query)
            .into_iter()
            .filter_map(|term| {
                let t = *self.term_ids.get(&term)? as usize;
                let df = self.df[t] as f32;
                (df > 0.0).then(|| Term {
                    postings: &self.postings[t],
                    blocks: &self.blocks[t],
                    idf: (1.0 + (n - df + 0.5) / (df + 0.5)).ln(),
                })
            })
            .collect();
        if terms.is_empty() {
            return Vec::new();
        }
        rank(&TopK { ix: self, terms: &terms, weigh, k, allow })
    }

    /// The first slot after `slot` with another owner: a document's chunks are inserted
    /// together, so its slots run on, and a verdict by owner holds for the whole run.
    fn owner_run_end(&self, slot: u32) -> u32 {
        let owner = self.owners[slot as usize];
        let rest = &self.owners[slot as usize + 1..];
        slot + 1 + rest.iter().position(|&o| o != owner).unwrap_or(rest.len()) as u32
    }
}

/// A top-k evaluation strategy (`topk`).
type Ranker = fn(&TopK<'_>) -> Vec<(u64, f32)>;

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Bm25Index {
        let mut ix = Bm25Index::default();
        ix.insert(1, "Aspirin reduces the risk of heart attacks");
        ix.insert(2, "Statins lower cholesterol and the risk of heart disease");
        ix.insert(3, "Vitamin D and bone density in older adults");
        ix
    }

    #[test]
    fn ranks_by_bm25_and_skips_non_matches() {
        let ix = index();
        let hits = ix.search("heart attack risk", 10, &|_| true);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 2]);
        assert!(hits[0].1 > hits[1].1);
        assert!(ix.search("quantum chromodynamics", 10, &|_| true).is_empty());
        assert_eq!(ix.search("heart", 1, &|_| true).len(), 1);
    }

    #[test]
    fn filters_apply_inside_scoring() {
        let ix = index();
        // The best match is filtered out; the next one still comes back in a top-1.
        let hits = ix.search("heart attack", 1, &|id| id != 1);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn replace_and_remove_leave_no_stale_hits() {
        let mut ix = index();
        ix.insert(1, "Aspirin and stomach bleeding");
        assert_eq!(ix.len(), 3);
        assert!(ix.search("heart attack", 10, &|_| true).iter().all(|h| h.0 != 1));
        assert_eq!(ix.search("bleeding", 10, &|_| true)[0].0, 1);
        assert!(ix.remove(2) && !ix.remove(2));
        assert!(ix.search("cholesterol", 10, &|_| true).is_empty());
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn compaction_keeps_results_intact() {
        let mut ix = Bm25Index::default();
        for i in 0..5000u64 {
            ix.insert(i, &format!("document number {i} about topic{}", i % 7));
        }
        for i in 0..4000u64 {
            ix.remove(i);
        }
        assert_eq!(ix.len(), 1000);
        assert!(ix.ids.len() < 5000, "compacted");
        let hits = ix.search("topic3", 1000, &|_| true);
        assert!(!hits.is_empty() && hits.iter().all(|h| h.0 >= 4000 && h.0 % 7 == 3));
        assert_eq!(ix.search("number 4321", 1, &|_| true)[0].0, 4321);
    }

    /// A small vocabulary with a skewed distribution, so that lists run from a handful of
    /// postings to most documents, and many documents tie.
    const WORDS: [&str; 12] =
        ["cell", "cells", "protein", "tumor", "gene", "blood", "mouse", "insulin", "brain", "virus", "dose", "rare"];

    fn text(picks: &[usize]) -> String {
        picks.iter().map(|&i| WORDS[i % WORDS.len()]).collect::<Vec<_>>().join(" ")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// The pruned search returns what scoring every posting returns, ids and scores alike,
        /// with any filter, depth and history of removals (dead postings, compaction).
        #[test]
        fn pruned_search_equals_exhaustive(
            docs in proptest::collection::vec(proptest::collection::vec(0usize..40, 1..12), 1..700),
            removed in proptest::collection::vec(0usize..700, 0..400),
            run in 1usize..8,
            queries in proptest::collection::vec(proptest::collection::vec(0usize..12, 1..6), 1..8),
            k in 1usize..60,
            keep in 0u32..10,
        ) {
            let id = |i: usize| (i * 389 % 701) as u64;
            let mut ix = Bm25Index::default();
            for (i, words) in docs.iter().enumerate() {
                // Skewed: low word numbers are common, so some lists hold most documents.
                let picks: Vec<usize> = words.iter().map(|w| w * w / 130).collect();
                // Ids out of slot order, so that ties at the k-th score are decided by id.
                // Owners in runs of consecutive slots, as a document's chunks are inserted.
                ix.insert_owned(id(i), (i / run % 10) as u32, &text(&picks));
            }
            for r in removed {
                ix.remove(id(r));
            }
            for q in queries {
                let query = text(&q);
                for allow in [&(|_: u32| true) as &dyn Fn(u32) -> bool, &|owner: u32| owner < keep] {
                    let fast = ix.search_owned(&query, k, allow);
                    let slow = ix.search_owned_exhaustive(&query, k, allow);
                    proptest::prop_assert_eq!(fast, slow, "query {:?} k {}", query, k);
                }
            }
        }
    }
}
