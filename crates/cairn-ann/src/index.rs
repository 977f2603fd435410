//! [`AnnIndex`]: vectors identified by `u64` keys, searched exactly while the set is small and
//! through an HNSW graph ([`crate::graph`]) once it holds `Params::graph_from` vectors. Exact
//! search scores every vector (perfect recall, cost linear in the set); the graph scores a few
//! thousand whatever the size. A filtered graph search that has to score more than half the
//! set's vectors without settling (a filter that passes few vectors) stops and scores the
//! vectors the filter passes exactly instead, so selective filters cost at most an exact scan
//! and a half, and always return `k` results when `k` pass.
//!
//! Removal marks a slot dead: the graph keeps it as a waypoint and results skip it. When more
//! than half of the slots are dead the graph should be rebuilt from the live vectors
//! ([`AnnIndex::needs_rebuild`]); the rebuild can run away from the index
//! ([`AnnIndex::rebuild_plan`], [`Rebuild::build`]) while it keeps answering, and the result
//! then catches up with what changed meanwhile ([`AnnIndex::catch_up_with`]).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::distance::{dot, normalized};
use crate::graph::{Graph, Near, Space, MAX_LEVEL, MAX_M};
use crate::memory::{advise_huge, extend_huge};
use crate::visited::Visited;

/// How the index is built and searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Neighbours per node on the upper layers (twice as many on layer 0).
    pub m: usize,
    /// Candidates kept while linking a new node (more: better graph, slower inserts).
    pub ef_construction: usize,
    /// Candidates kept while searching, at least `k` (more: better recall, slower queries).
    pub ef_search: usize,
    /// The size from which a graph is kept; smaller sets are searched exactly.
    pub graph_from: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self { m: 16, ef_construction: 100, ef_search: 64, graph_from: 10_000 }
    }
}

/// Why a vector was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum VectorError {
    /// The vector's length is not the index's dimension.
    #[error("the vector has {got} dimensions; this index holds {want}")]
    Dimension {
        /// The index's dimension.
        want: usize,
        /// The vector's.
        got: usize,
    },
    /// NaN or infinite components (or a norm too large for `f32`).
    #[error("the vector has non-finite components")]
    NotFinite,
}

/// Vectors of one dimension under `u64` keys (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct AnnIndex {
    pub(crate) dim: usize,
    pub(crate) params: Params,
    /// Unit vectors, row-major by slot.
    pub(crate) vectors: Vec<f32>,
    /// Each slot's key.
    pub(crate) keys: Vec<u64>,
    /// Whether each slot is live (not removed).
    pub(crate) alive: Vec<bool>,
    pub(crate) slot_of: HashMap<u64, u32>,
    pub(crate) graph: Option<Graph>,
}

thread_local! {
    /// Each thread's visit marks, reused across searches.
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

impl AnnIndex {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize, params: Params) -> Self {
        let params = Params { m: params.m.clamp(2, MAX_M), ef_construction: params.ef_construction.max(1), ..params };
        Self {
            dim,
            params,
            vectors: Vec::new(),
            keys: Vec::new(),
            alive: Vec::new(),
            slot_of: HashMap::new(),
            graph: None,
        }
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The parameters.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Live vectors held.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// True when no vector is live.
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// The same index searched with `ef_search` candidates.
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.params.ef_search = ef_search;
        self
    }

    /// True when searches walk a graph rather than scanning.
    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// True when `key` is held with exactly `vector`'s direction (as `insert` would store it).
    pub fn holds(&self, key: u64, vector: &[f32]) -> bool {
        let Some(&slot) = self.slot_of.get(&key) else { return false };
        vector.len() == self.dim && normalized(vector).is_some_and(|v| v == self.row(slot))
    }

    /// Stores `vector` (normalised here) as `key`, replacing any earlier one.
    pub fn insert(&mut self, key: u64, vector: &[f32]) -> Result<(), VectorError> {
        if vector.len() != self.dim {
            return Err(VectorError::Dimension { want: self.dim, got: vector.len() });
        }
        let unit = normalized(vector).ok_or(VectorError::NotFinite)?;
        self.insert_unit(key, unit);
        Ok(())
    }

    /// Stores the unit vector `unit` as `key`, replacing any earlier one.
    fn insert_unit(&mut self, key: u64, unit: Vec<f32>) {
        self.remove(key);
        let slot = self.keys.len() as u32;
        self.keys.push(key);
        self.alive.push(true);
        extend_huge(&mut self.vectors, &unit);
        self.slot_of.insert(key, slot);
        if let Some(graph) = &mut self.graph {
            let level = level_for(key, self.params.m);
            let space = Space { data: &self.vectors, dim: self.dim };
            VISITED.with(|v| graph.insert(space, level, self.params.ef_construction, &mut v.borrow_mut()));
        } else if self.len() >= self.params.graph_from {
            self.rebuild();
        }
    }

    /// Removes `key`; false if absent.
    pub fn remove(&mut self, key: u64) -> bool {
        let Some(slot) = self.slot_of.remove(&key) else { return false };
        if self.graph.is_none() {
            // No graph refers to slots: move the last vector into the hole.
            let last = self.keys.len() - 1;
            let s = slot as usize;
            if s != last {
                self.vectors.copy_within(last * self.dim..(last + 1) * self.dim, s * self.dim);
                self.keys[s] = self.keys[last];
                self.slot_of.insert(self.keys[s], slot);
            }
            self.keys.pop();
            self.alive.pop();
            self.vectors.truncate(last * self.dim);
            return true;
        }
        self.alive[slot as usize] = false;
        true
    }

    /// Keeps only the keys `keep` accepts, rebuilding the graph if most of it is then dead.
    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let gone: Vec<u64> = self.slot_of.keys().copied().filter(|k| !keep(*k)).collect();
        for key in gone {
            self.remove(key);
        }
        if self.needs_rebuild() {
            self.rebuild();
        }
    }

    /// True when more than half of the graph's nodes are removed ones.
    pub fn needs_rebuild(&self) -> bool {
        self.graph.is_some() && self.keys.len() - self.len() > self.len()
    }

    /// The live vectors, copied, to rebuild the index from without holding it.
    pub fn rebuild_plan(&self) -> Rebuild {
        let vectors = Vec::with_capacity(self.len() * self.dim);
        advise_huge(&vectors);
        let mut plan = Rebuild { dim: self.dim, params: self.params, keys: Vec::new(), vectors };
        for (slot, &key) in self.keys.iter().enumerate() {
            if self.alive[slot] {
                plan.keys.push(key);
                plan.vectors.extend_from_slice(self.row(slot as u32));
            }
        }
        plan
    }

    /// Brings this index (rebuilt from an earlier state of `current`) to `current`'s vectors:
    /// inserts those it lacks or holds differently, removes those `current` no longer holds.
    pub fn catch_up_with(&mut self, current: &AnnIndex) {
        for (&key, &slot) in &current.slot_of {
            let row = current.row(slot);
            if self.slot_of.get(&key).is_none_or(|&mine| self.row(mine) != row) {
                self.insert_unit(key, row.to_vec());
            }
        }
        let gone: Vec<u64> = self.slot_of.keys().copied().filter(|k| !current.slot_of.contains_key(k)).collect();
        for key in gone {
            self.remove(key);
        }
    }

    /// Cosine similarity of the vector under `key` to `query`; `None` when `key` is absent,
    /// the query's size is wrong or it is zero or not finite.
    pub fn similarity(&self, key: u64, query: &[f32]) -> Option<f32> {
        let slot = *self.slot_of.get(&key)?;
        if query.len() != self.dim {
            return None;
        }
        let norm = dot(query, query).sqrt();
        (norm > 0.0 && norm.is_finite()).then(|| dot(query, self.row(slot)) / norm)
    }

    /// The `k` vectors most similar to `query`, best first: among the keys `filter` accepts
    /// when there is one (`None` searches every vector, without a call per candidate).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, VectorError> {
        if query.len() != self.dim {
            return Err(VectorError::Dimension { want: self.dim, got: query.len() });
        }
        let q = normalized(query).ok_or(VectorError::NotFinite)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let found = match &self.graph {
            Some(graph) => self.walk(graph, &q, k, filter).unwrap_or_else(|| self.exact(&q, k, filter)),
            None => self.exact(&q, k, filter),
        };
        let mut out: Vec<(u64, f32)> = found.into_iter().map(|n| (self.keys[n.slot as usize], n.sim)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        Ok(out)
    }

    /// The graph search; `None` when it gives up (see the module docs) or finds fewer than
    /// `k`, which may mean fewer pass the filter.
    fn walk(&self, graph: &Graph, q: &[f32], k: usize, filter: Option<&dyn Fn(u64) -> bool>) -> Option<Vec<Near>> {
        let space = self.space();
        let mut at = Near { sim: dot(q, space.row(graph.entry)), slot: graph.entry };
        for level in (1..=graph.top).rev() {
            at = graph.greedy(space, q, at, level);
        }
        let mut budget = (self.keys.len() as u64 / 2).max(1);
        let ef = self.params.ef_search.max(k);
        let all_live = self.keys.len() == self.len();
        let results = VISITED.with(|v| {
            let mut visited = v.borrow_mut();
            visited.reset(graph.len());
            let (visited, budget) = (&mut *visited, &mut budget);
            // One walk per kind of test, each compiled with its test inlined.
            match filter {
                None if all_live => graph.walk(space, q, at, ef, 0, |_| true, budget, visited),
                None => graph.walk(space, q, at, ef, 0, |slot| self.alive[slot as usize], budget, visited),
                Some(allow) => {
                    let accept = |slot: u32| self.alive[slot as usize] && allow(self.keys[slot as usize]);
                    graph.walk(space, q, at, ef, 0, accept, budget, visited)
                }
            }
        })?;
        (results.len() >= k).then(|| results.into_iter().map(|r| r.0).collect())
    }

    /// Scores every live vector `filter` accepts, four at a time.
    fn exact(&self, q: &[f32], k: usize, filter: Option<&dyn Fn(u64) -> bool>) -> Vec<Near> {
        let mut heap: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(k + 1);
        let mut offer = |slots: &[u32], sims: &[f32]| {
            for (&slot, &sim) in slots.iter().zip(sims) {
                if heap.len() == k && heap.peek().is_some_and(|w| sim <= w.0.sim) {
                    continue;
                }
                heap.push(Reverse(Near { sim, slot }));
                if heap.len() > k {
                    heap.pop();
                }
            }
        };
        let space = self.space();
        let (mut batch, mut sims, mut held) = ([0u32; 4], [0f32; 4], 0);
        for slot in 0..self.keys.len() {
            if !self.alive[slot] || filter.is_some_and(|allow| !allow(self.keys[slot])) {
                continue;
            }
            batch[held] = slot as u32;
            held += 1;
            if held == 4 {
                space.score(q, &batch, &mut sims);
                offer(&batch, &sims);
                held = 0;
            }
        }
        space.score(q, &batch[..held], &mut sims[..held]);
        offer(&batch[..held], &sims[..held]);
        heap.into_iter().map(|r| r.0).collect()
    }

    /// The vectors, addressed by slot.
    fn space(&self) -> Space<'_> {
        Space { data: &self.vectors, dim: self.dim }
    }

    fn row(&self, slot: u32) -> &[f32] {
        let start = slot as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Drops dead slots and, when the set is large enough, builds the graph over the rest.
    fn rebuild(&mut self) {
        *self = self.rebuild_plan().build();
    }
}

/// The live vectors of an index, to rebuild it from (see [`AnnIndex::rebuild_plan`]).
pub struct Rebuild {
    dim: usize,
    params: Params,
    keys: Vec<u64>,
    vectors: Vec<f32>,
}

impl Rebuild {
    /// Builds the index: a graph over the vectors when there are enough of them.
    pub fn build(self) -> AnnIndex {
        let mut fresh = AnnIndex::new(self.dim, self.params);
        fresh.slot_of = self.keys.iter().enumerate().map(|(slot, &key)| (key, slot as u32)).collect();
        fresh.alive = vec![true; self.keys.len()];
        fresh.keys = self.keys;
        fresh.vectors = self.vectors;
        if fresh.len() >= fresh.params.graph_from {
            let mut graph = Graph::new(fresh.params.m);
            let space = fresh.space();
            VISITED.with(|v| {
                let mut visited = v.borrow_mut();
                for &key in &fresh.keys {
                    graph.insert(space, level_for(key, fresh.params.m), fresh.params.ef_construction, &mut visited);
                }
            });
            fresh.graph = Some(graph);
        }
        fresh
    }
}

/// A node's top layer: geometric with ratio `1/m` (the paper's `mL = 1/ln m`), drawn from a
/// hash of its key so the same vectors build the same graph.
fn level_for(key: u64, m: usize) -> u8 {
    // splitmix64: a well-mixed hash of the key.
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // A uniform draw in (0, 1] from the top 53 bits.
    let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let level = (-u.ln() / (m as f64).ln()).floor();
    level.min(MAX_LEVEL as f64) as u8
}
