//! The keyword retriever: an in-memory inverted index scored with Okapi BM25 (Lucene's idf,
//! `ln(1 + (N - df + 0.5) / (df + 0.5))`). Documents are added, replaced and removed one at a
//! time; a removed document stops matching at once and its postings are dropped when enough
//! have piled up. A search takes a filter that is applied inside the scoring loop, so a
//! selective metadata filter still yields the best `k` matching documents, not the best `k`
//! overall minus those filtered out.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::analyze::Analyzer;

pub use cairn_core::search::Bm25Params;

/// One document's occurrences of a term.
#[derive(Clone, Copy, Debug)]
struct Posting {
    slot: u32,
    tf: u32,
}

/// A live document.
#[derive(Clone, Copy, Debug)]
struct Doc {
    id: u64,
    len: u32,
    /// The caller's group of this entry (the live index: its source document).
    owner: u32,
}

/// An inverted index over documents identified by `u64` ids (see the module docs).
pub struct Bm25Index {
    params: Bm25Params,
    analyzer: Analyzer,
    term_ids: HashMap<String, u32>,
    postings: Vec<Vec<Posting>>,
    /// Document frequency of each term among live documents.
    df: Vec<u32>,
    /// Per slot: the document, or `None` once removed.
    docs: Vec<Option<Doc>>,
    /// Per slot: the term ids of the document, to undo its postings counts on removal.
    doc_terms: Vec<Vec<u32>>,
    slot_of: HashMap<u64, u32>,
    live: u32,
    dead: u32,
    total_len: u64,
}

/// Whether a document passes the search's filter, asked once per document and search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Unasked,
    Allowed,
    Refused,
}

/// Per-thread scoring buffers reused across searches: a score and a verdict per slot, and the
/// slots a search touched, so that clearing costs what the search touched (not a map's
/// hashing per posting, nor a sweep of every slot).
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    verdict: Vec<Verdict>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// A scored document in a result heap (min-heap by score, so the worst is popped first).
#[derive(PartialEq)]
pub(crate) struct Scored(pub(crate) f32, pub(crate) u64);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we keep the best k by popping the worst.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
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
            df: Vec::new(),
            docs: Vec::new(),
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
                self.df.push(0);
            }
            *tf.entry(t).or_default() += 1;
            len += 1;
        }
        let slot = self.docs.len() as u32;
        let mut terms = Vec::with_capacity(tf.len());
        for (t, n) in tf {
            self.postings[t as usize].push(Posting { slot, tf: n });
            self.df[t as usize] += 1;
            terms.push(t);
        }
        self.docs.push(Some(Doc { id, len, owner }));
        self.doc_terms.push(terms);
        self.slot_of.insert(id, slot);
        self.live += 1;
        self.total_len += u64::from(len);
    }

    /// Removes document `id`; false if it was not indexed.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.slot_of.remove(&id) else { return false };
        if let Some(doc) = self.docs[slot as usize].take() {
            self.live -= 1;
            self.dead += 1;
            self.total_len -= u64::from(doc.len);
            for &t in &self.doc_terms[slot as usize] {
                self.df[t as usize] -= 1;
            }
            self.doc_terms[slot as usize] = Vec::new();
        }
        // Rewrite postings once removed documents make up a third of the slots.
        if self.dead > 1024 && self.dead * 3 > self.docs.len() as u32 {
            self.compact();
        }
        true
    }

    /// Drops removed documents' postings and renumbers slots.
    fn compact(&mut self) {
        let mut new_slot = vec![u32::MAX; self.docs.len()];
        let mut docs = Vec::with_capacity(self.live as usize);
        let mut doc_terms = Vec::with_capacity(self.live as usize);
        for (old, d) in self.docs.iter().enumerate() {
            if let Some(d) = d {
                new_slot[old] = docs.len() as u32;
                self.slot_of.insert(d.id, docs.len() as u32);
                docs.push(Some(*d));
                doc_terms.push(std::mem::take(&mut self.doc_terms[old]));
            }
        }
        for list in &mut self.postings {
            list.retain_mut(|p| {
                p.slot = new_slot[p.slot as usize];
                p.slot != u32::MAX
            });
        }
        self.docs = docs;
        self.doc_terms = doc_terms;
        self.dead = 0;
    }

    /// The best `k` live documents for `query` among those `allow` accepts, best first, with
    /// their BM25 scores. Documents matching no query term are not returned.
    pub fn search(&self, query: &str, k: usize, allow: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        self.scored(query, k, &|d: Doc| allow(d.id))
    }

    /// Like `search`, with the filter asked by group (`insert_owned`'s `owner`): a caller whose
    /// filter depends on the group answers from a table instead of looking each id up.
    pub fn search_owned(&self, query: &str, k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<(u64, f32)> {
        self.scored(query, k, &|d: Doc| allow(d.owner))
    }

    fn scored(&self, query: &str, k: usize, allow: &dyn Fn(Doc) -> bool) -> Vec<(u64, f32)> {
        if k == 0 || self.live == 0 {
            return Vec::new();
        }
        let n = self.live as f32;
        let avg_len = self.total_len as f32 / n;
        let Bm25Params { k1, b } = self.params;
        let mut heap = BinaryHeap::with_capacity(k + 1);
        SCRATCH.with(|scratch| {
            let s = &mut *scratch.borrow_mut();
            if s.scores.len() < self.docs.len() {
                s.scores.resize(self.docs.len(), 0.0);
                s.verdict.resize(self.docs.len(), Verdict::Unasked);
            }
            for term in self.analyzer.terms(query) {
                let Some(&t) = self.term_ids.get(&term) else { continue };
                let df = self.df[t as usize] as f32;
                if df == 0.0 {
                    continue;
                }
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                for p in &self.postings[t as usize] {
                    let slot = p.slot as usize;
                    let Some(doc) = self.docs[slot] else { continue };
                    match s.verdict[slot] {
                        Verdict::Refused => continue,
                        Verdict::Allowed => {}
                        Verdict::Unasked => {
                            s.touched.push(p.slot);
                            if !allow(doc) {
                                s.verdict[slot] = Verdict::Refused;
                                continue;
                            }
                            s.verdict[slot] = Verdict::Allowed;
                        }
                    }
                    let tf = p.tf as f32;
                    let norm = k1 * (1.0 - b + b * doc.len as f32 / avg_len);
                    s.scores[slot] += idf * tf * (k1 + 1.0) / (tf + norm);
                }
            }
            for &slot in &s.touched {
                let slot = slot as usize;
                if s.verdict[slot] == Verdict::Allowed {
                    let id = self.docs[slot].map_or(0, |d| d.id);
                    heap.push(Scored(s.scores[slot], id));
                    if heap.len() > k {
                        heap.pop();
                    }
                }
                s.scores[slot] = 0.0;
                s.verdict[slot] = Verdict::Unasked;
            }
            s.touched.clear();
        });
        let mut out: Vec<(u64, f32)> = heap.into_iter().map(|Scored(s, id)| (id, s)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

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
        assert!(ix.docs.len() < 5000, "compacted");
        let hits = ix.search("topic3", 1000, &|_| true);
        assert!(!hits.is_empty() && hits.iter().all(|h| h.0 >= 4000 && h.0 % 7 == 3));
        assert_eq!(ix.search("number 4321", 1, &|_| true)[0].0, 4321);
    }
}
