//! The HNSW graph (Malkov & Yashunin, 2016): every vector is a node on layer 0 and, with
//! probability falling by a factor of `m` per layer, on the layers above; each node keeps up to
//! `m` neighbours per upper layer and `2m` on layer 0, chosen by the paper's heuristic (a
//! candidate is kept only if it is closer to the node than to every neighbour kept before it),
//! which keeps the graph navigable across clusters. A search descends greedily from the top
//! entry point, then walks layer 0 keeping the `ef` best nodes found.
//!
//! Nodes are addressed by slot (their insertion order); the caller owns the vectors and the
//! mapping from slots to keys. Removed nodes stay in the graph as waypoints: the walk passes
//! through them, the caller's `accept` keeps them out of results.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::distance::{dot, dot4, prefetch};
use crate::memory::extend_huge;
use crate::visited::Visited;

/// A node and its similarity to the query; ordered by similarity (ties by lower slot first),
/// so a `BinaryHeap<Near>` pops the most similar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Near {
    pub sim: f32,
    pub slot: u32,
}

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim.total_cmp(&other.sim).then(other.slot.cmp(&self.slot))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Row-major unit vectors addressed by slot.
#[derive(Clone, Copy)]
pub(crate) struct Space<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

impl<'a> Space<'a> {
    /// The vector in `slot`.
    pub fn row(&self, slot: u32) -> &'a [f32] {
        let start = slot as usize * self.dim;
        &self.data[start..start + self.dim]
    }

    fn sim(&self, q: &[f32], slot: u32) -> f32 {
        dot(q, self.row(slot))
    }

    /// `q`'s similarity to each of `slots` into `sims`, four vectors per pass.
    pub fn score(&self, q: &[f32], slots: &[u32], sims: &mut [f32]) {
        let mut groups = slots.chunks_exact(4);
        let mut out = sims.chunks_exact_mut(4);
        for (g, o) in (&mut groups).zip(&mut out) {
            o.copy_from_slice(&dot4(q, [self.row(g[0]), self.row(g[1]), self.row(g[2]), self.row(g[3])]));
        }
        for (&slot, o) in groups.remainder().iter().zip(out.into_remainder()) {
            *o = self.sim(q, slot);
        }
    }
}

/// The graph's links (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graph {
    /// Neighbours per node on the upper layers; `2m` on layer 0.
    pub m: usize,
    /// Layer 0: for each slot, a count then `2m` neighbour slots.
    pub links0: Vec<u32>,
    /// Layers above 0: for each slot, per layer from 1 to its level, a count then `m` slots.
    pub upper: Vec<Vec<u32>>,
    /// Each slot's top layer.
    pub levels: Vec<u8>,
    /// The node the walk starts from (on the top layer).
    pub entry: u32,
    /// The top layer.
    pub top: u8,
}

/// The most neighbours per node and upper layer (`m`); layer 0 holds twice as many.
pub(crate) const MAX_M: usize = 64;

/// The highest layer a node may reach: bounds the per-node storage whatever the coin flips.
pub(crate) const MAX_LEVEL: u8 = 16;

impl Graph {
    /// An empty graph of `m` neighbours per node and layer.
    pub fn new(m: usize) -> Self {
        Self { m, links0: Vec::new(), upper: Vec::new(), levels: Vec::new(), entry: 0, top: 0 }
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    fn width(&self, level: u8) -> usize {
        if level == 0 {
            2 * self.m + 1
        } else {
            self.m + 1
        }
    }

    /// The stored list of `slot` on `level`: its count, then room for every neighbour.
    pub fn list(&self, slot: u32, level: u8) -> &[u32] {
        let w = self.width(level);
        if level == 0 {
            &self.links0[slot as usize * w..][..w]
        } else {
            &self.upper[slot as usize][(level as usize - 1) * w..][..w]
        }
    }

    /// The neighbours of `slot` on `level`.
    pub fn links(&self, slot: u32, level: u8) -> &[u32] {
        let list = self.list(slot, level);
        &list[1..1 + list[0] as usize]
    }

    fn set_links(&mut self, slot: u32, level: u8, to: &[u32]) {
        let w = self.width(level);
        let (list, start) = if level == 0 {
            (&mut self.links0, slot as usize * w)
        } else {
            (&mut self.upper[slot as usize], (level as usize - 1) * w)
        };
        list[start] = to.len() as u32;
        list[start + 1..start + 1 + to.len()].copy_from_slice(to);
    }

    /// Adds the node in the next slot at `level` and links it; `space` must hold its vector.
    pub fn insert(&mut self, space: Space<'_>, level: u8, ef_construction: usize, visited: &mut Visited) {
        let slot = self.levels.len() as u32;
        self.levels.push(level);
        let width = self.width(0);
        extend_huge(&mut self.links0, &[0; 2 * MAX_M + 1][..width]);
        self.upper.push(vec![0; level as usize * self.width(1)]);
        if slot == 0 {
            self.entry = 0;
            self.top = level;
            return;
        }
        let q = space.row(slot);
        let mut ep = Near { sim: space.sim(q, self.entry), slot: self.entry };
        for l in (level + 1..=self.top).rev() {
            ep = self.greedy(space, q, ep, l);
        }
        for l in (0..=level.min(self.top)).rev() {
            visited.reset(self.len());
            let mut unbounded = u64::MAX;
            let found = self.walk(space, q, ep, ef_construction, l, |_| true, &mut unbounded, visited);
            let mut candidates: Vec<Near> =
                found.map(|r| r.into_iter().map(|Reverse(n)| n).collect()).unwrap_or_default();
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let chosen = select(space, &candidates, self.m);
            self.set_links(slot, l, &chosen);
            for &n in &chosen {
                self.connect(space, n, slot, l);
            }
            if let Some(best) = candidates.first() {
                ep = *best;
            }
        }
        if level > self.top {
            self.entry = slot;
            self.top = level;
        }
    }

    /// Adds `new` to the neighbours of `node` on `level`, pruning by the heuristic when full.
    fn connect(&mut self, space: Space<'_>, node: u32, new: u32, level: u8) {
        let cap = if level == 0 { 2 * self.m } else { self.m };
        let current = self.links(node, level);
        if current.contains(&new) {
            return;
        }
        if current.len() < cap {
            let mut grown = current.to_vec();
            grown.push(new);
            self.set_links(node, level, &grown);
            return;
        }
        let base = space.row(node);
        let mut candidates: Vec<Near> =
            current.iter().chain([&new]).map(|&s| Near { sim: space.sim(base, s), slot: s }).collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = select(space, &candidates, cap);
        self.set_links(node, level, &chosen);
    }

    /// Greedy descent on one upper layer: moves to a more similar neighbour until none is.
    pub fn greedy(&self, space: Space<'_>, q: &[f32], mut at: Near, level: u8) -> Near {
        loop {
            let mut moved = false;
            for &n in self.links(at.slot, level) {
                let sim = space.sim(q, n);
                if sim > at.sim {
                    at = Near { sim, slot: n };
                    moved = true;
                }
            }
            if !moved {
                return at;
            }
        }
    }

    /// The walk of one layer from `entry`: returns the best `ef` nodes `accept` takes (as a
    /// min-heap), or `None` once it has scored `budget` vectors without settling. Nodes
    /// `accept` refuses are still walked through, so a filter does not cut the graph.
    #[allow(clippy::too_many_arguments)]
    pub fn walk(
        &self,
        space: Space<'_>,
        q: &[f32],
        entry: Near,
        ef: usize,
        level: u8,
        mut accept: impl FnMut(u32) -> bool,
        budget: &mut u64,
        visited: &mut Visited,
    ) -> Option<BinaryHeap<Reverse<Near>>> {
        let mut candidates = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef + 1);
        visited.insert(entry.slot);
        candidates.push(entry);
        if accept(entry.slot) {
            results.push(Reverse(entry));
        }
        let mut fresh = [0u32; 2 * MAX_M];
        let mut sims = [0f32; 2 * MAX_M];
        while let Some(c) = candidates.pop() {
            let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.sim);
            if results.len() >= ef && c.sim < worst {
                break;
            }
            let links = self.links(c.slot, level);
            *budget = budget.checked_sub(links.len() as u64)?;
            // The unvisited neighbours first, their vectors requested all at once, then scored
            // four at a time: the memory loads overlap instead of waiting one after another.
            let mut count = 0;
            for &n in links {
                if visited.insert(n) {
                    // A vector of 384 floats spans 24 cache lines: the first few start its
                    // product, the hardware prefetcher follows the rest.
                    prefetch(space.row(n), 4);
                    fresh[count] = n;
                    count += 1;
                }
            }
            // The list the walk most likely reads next, the best candidate's, while scoring.
            if let Some(next) = candidates.peek() {
                prefetch(self.list(next.slot, level), 3);
            }
            space.score(q, &fresh[..count], &mut sims[..count]);
            for (&n, &sim) in fresh[..count].iter().zip(&sims[..count]) {
                let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.sim);
                if results.len() < ef || sim > worst {
                    candidates.push(Near { sim, slot: n });
                    if accept(n) {
                        results.push(Reverse(Near { sim, slot: n }));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        Some(results)
    }
}

/// The paper's neighbour heuristic over `candidates` (best first): keeps a candidate only if it
/// is more similar to the base than to every one kept so far, up to `max`.
fn select(space: Space<'_>, candidates: &[Near], max: usize) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(max);
    for c in candidates {
        if kept.len() >= max {
            break;
        }
        let row = space.row(c.slot);
        if kept.iter().all(|&k| space.sim(row, k) < c.sim) {
            kept.push(c.slot);
        }
    }
    kept
}
