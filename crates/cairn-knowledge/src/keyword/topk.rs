//! Top-k evaluation of a BM25 query over the index's postings.
//!
//! `max_score` walks the query terms' posting lists in step, document by document (postings
//! are kept in slot order), and skips work by each term's score bound (MaxScore, Turtle and
//! Flood 1995): once the result heap holds `k` documents, the terms whose bounds together
//! cannot lift a document past the k-th score stop proposing candidates and are only probed
//! for the candidates that the other terms propose, and a candidate is dropped as soon as its
//! score plus the bounds of the terms still to probe falls short. It returns what the
//! exhaustive `exhaustive` returns, document for document and score for score (scores are
//! summed in query order, as there), at a fraction of the postings read for long lists.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Bm25Index, Posting};

/// Slack on the bounds, so that float rounding in a sum never prunes a document that the
/// exhaustive scorer would keep.
const BOUND_SLACK: f32 = 1.0 + 1e-4;

/// A scored document in a result heap (min-heap by score, so the worst is popped first; on
/// equal scores the lower id wins).
#[derive(PartialEq)]
struct Scored(f32, u64);

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

/// The best `k` of a heap, best first.
fn into_ranked(heap: BinaryHeap<Scored>) -> Vec<(u64, f32)> {
    let mut out: Vec<(u64, f32)> = heap.into_iter().map(|Scored(s, id)| (id, s)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// A query term found in the index: its postings and inverse document frequency.
pub(super) struct Term<'a> {
    pub(super) postings: &'a [Posting],
    pub(super) idf: f32,
    /// Its postings' largest term frequency and shortest document, block by block.
    pub(super) blocks: &'a [super::Block],
}

/// BM25's length-normalised term weight, computed exactly as every scorer here computes it.
#[derive(Clone, Copy)]
pub(super) struct Weigh {
    pub(super) k1: f32,
    pub(super) b: f32,
    pub(super) avg_len: f32,
}

impl Weigh {
    /// One term's contribution to a document's score.
    fn score(self, idf: f32, tf: u32, len: u32) -> f32 {
        let tf = tf as f32;
        let norm = self.k1 * (1.0 - self.b + self.b * len as f32 / self.avg_len);
        idf * tf * (self.k1 + 1.0) / (tf + norm)
    }
}

/// One query term's walk along its postings.
struct Cursor<'a> {
    list: &'a [Posting],
    pos: usize,
    idf: f32,
    /// The most this term adds to any document's score (with slack).
    bound: f32,
    /// The term's position in the query, to sum contributions in query order.
    order: usize,
}

impl Cursor<'_> {
    /// The slot of the current posting, `u32::MAX` past the end.
    fn slot(&self) -> u32 {
        self.list.get(self.pos).map_or(u32::MAX, |p| p.slot)
    }

    /// Moves to the first posting at or after `slot`: galloping, then a binary search, since
    /// probes are usually near and sometimes far.
    fn seek(&mut self, slot: u32) {
        let rest = &self.list[self.pos..];
        if rest.first().is_none_or(|p| p.slot >= slot) {
            return;
        }
        let mut hi = 1;
        while hi < rest.len() && rest[hi].slot < slot {
            hi *= 2;
        }
        let lo = hi / 2;
        let end = (hi + 1).min(rest.len());
        self.pos += lo + rest[lo..end].partition_point(|p| p.slot < slot);
    }
}

/// A search's filter, asked by slot (it passes live documents only).
pub(super) enum Allow<'a> {
    /// Its verdict may differ from slot to slot.
    BySlot(&'a dyn Fn(u32) -> bool),
    /// Its verdict depends on the slot's owner only: one refusal rules out the owner's run of
    /// consecutive slots.
    ByOwner(&'a dyn Fn(u32) -> bool),
}

impl Allow<'_> {
    /// Whether the filter passes the document in `slot`.
    fn allows(&self, slot: u32) -> bool {
        match self {
            Allow::BySlot(f) | Allow::ByOwner(f) => f(slot),
        }
    }
}

/// One top-k query over an index: its terms, their weights, the depth, and the filter.
pub(super) struct TopK<'a> {
    pub(super) ix: &'a Bm25Index,
    pub(super) terms: &'a [Term<'a>],
    pub(super) weigh: Weigh,
    pub(super) k: usize,
    pub(super) allow: &'a Allow<'a>,
}

/// The best `k` documents that `allow` accepts, by MaxScore (see the module docs).
pub(super) fn max_score(q: &TopK<'_>) -> Vec<(u64, f32)> {
    let TopK { ix, terms, weigh, k, allow } = *q;
    let mut cursors: Vec<Cursor<'_>> = terms
        .iter()
        .enumerate()
        .map(|(order, t)| {
            let best = t.blocks.iter().map(|b| weigh.score(t.idf, b.max_tf, b.min_len)).fold(0.0, f32::max);
            Cursor { list: t.postings, pos: 0, idf: t.idf, bound: best * BOUND_SLACK, order }
        })
        .collect();
    cursors.sort_by(|a, b| a.bound.total_cmp(&b.bound));
    // reach[i]: the most that cursors 0..=i add together.
    let reach: Vec<f32> = cursors
        .iter()
        .scan(0.0f32, |sum, c| {
            *sum += c.bound;
            Some(*sum * BOUND_SLACK)
        })
        .collect();
    let mut parts = vec![0.0f32; terms.len()];
    let mut heap = BinaryHeap::with_capacity(k + 1);
    // The k-th best score so far; cursors[..first] cannot make a document reach it alone.
    let mut threshold = f32::NEG_INFINITY;
    let mut first = 0;
    loop {
        let slot = cursors[first..].iter().map(Cursor::slot).min().unwrap_or(u32::MAX);
        if slot == u32::MAX {
            break;
        }
        // Score by the terms that proposed the document first: most candidates of common
        // terms fall short here, before their entry is read or the filter is asked.
        let len = ix.lens[slot as usize];
        let mut partial = 0.0f32;
        for c in &mut cursors[first..] {
            if c.slot() == slot {
                let s = weigh.score(c.idf, c.list[c.pos].tf, len);
                parts[c.order] = s;
                partial += s;
                c.pos += 1;
            }
        }
        // Whether a document scoring `partial` so far plus at most `rest` stays below the k-th.
        let short = |partial: f32, rest: f32| partial * BOUND_SLACK + rest < threshold;
        let rest = first.checked_sub(1).map_or(0.0, |i| reach[i]);
        if short(partial, rest) {
            parts.fill(0.0);
            continue;
        }
        if !allow.allows(slot) {
            parts.fill(0.0);
            if let Allow::ByOwner(_) = allow {
                // The rest of the refused document's chunks are refused too: the proposing
                // terms jump past them (the others only probe candidates, never these).
                let end = ix.owner_run_end(slot);
                cursors[first..].iter_mut().for_each(|c| c.seek(end));
            }
            continue;
        }
        let mut reachable = true;
        for i in (0..first).rev() {
            if short(partial, reach[i]) {
                reachable = false;
                break;
            }
            let c = &mut cursors[i];
            c.seek(slot);
            if c.slot() == slot {
                let s = weigh.score(c.idf, c.list[c.pos].tf, len);
                parts[c.order] = s;
                partial += s;
            }
        }
        // Summed in query order from zero, as the exhaustive scorer sums.
        let score = parts.iter().fold(0.0f32, |sum, &s| sum + s);
        parts.fill(0.0);
        if !reachable || score < threshold {
            continue;
        }
        let id = ix.ids[slot as usize];
        heap.push(Scored(score, id));
        if heap.len() > k {
            heap.pop();
        }
        if heap.len() == k {
            threshold = heap.peek().map_or(threshold, |w| w.0);
            while first < cursors.len() && reach[first] < threshold {
                first += 1;
            }
        }
    }
    into_ranked(heap)
}

/// Whether a document passes the search's filter, asked once per document and search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Unasked,
    Allowed,
    Refused,
}

/// Per-thread scoring buffers reused across exhaustive searches: a score and a verdict per
/// slot, and the slots a search touched, so that clearing costs what the search touched.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    verdict: Vec<Verdict>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// The best `k` by scoring every posting of every term, term by term: the reference that
/// `max_score` must agree with (tests and benchmarks compare the two).
pub(super) fn exhaustive(q: &TopK<'_>) -> Vec<(u64, f32)> {
    let TopK { ix, terms, weigh, k, allow } = *q;
    let mut heap = BinaryHeap::with_capacity(k + 1);
    SCRATCH.with(|scratch| {
        let s = &mut *scratch.borrow_mut();
        if s.scores.len() < ix.ids.len() {
            s.scores.resize(ix.ids.len(), 0.0);
            s.verdict.resize(ix.ids.len(), Verdict::Unasked);
        }
        for t in terms {
            for p in t.postings {
                let slot = p.slot as usize;
                match s.verdict[slot] {
                    Verdict::Refused => continue,
                    Verdict::Allowed => {}
                    Verdict::Unasked => {
                        s.touched.push(p.slot);
                        if !allow.allows(p.slot) {
                            s.verdict[slot] = Verdict::Refused;
                            continue;
                        }
                        s.verdict[slot] = Verdict::Allowed;
                    }
                }
                s.scores[slot] += weigh.score(t.idf, p.tf, ix.lens[slot]);
            }
        }
        for &slot in &s.touched {
            let slot = slot as usize;
            if s.verdict[slot] == Verdict::Allowed {
                let id = ix.ids[slot];
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
    into_ranked(heap)
}
