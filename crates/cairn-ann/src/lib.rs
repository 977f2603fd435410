//! Approximate nearest-neighbour search for Cairn's embedded retriever.
//!
//! [`AnnIndex`] holds unit vectors under `u64` keys and answers "the `k` most similar to this
//! query among the keys a filter accepts" by cosine similarity. Small sets are scanned exactly;
//! from `Params::graph_from` vectors on, an HNSW graph ([`graph`](crate::graph)) is walked and
//! the filter applied during the walk, with an exact scan when the filter passes too few
//! vectors for the walk to settle. The whole index saves to one checksummed file and loads back
//! without rebuilding ([`AnnIndex::save`], [`AnnIndex::load`]).
//!
//! The crate has no knowledge of chunks or documents: the knowledge layer maps chunk ids to
//! keys and metadata filters to the `allow` predicate.

mod distance;
mod graph;
mod index;
mod memory;
mod persist;
mod visited;

pub use distance::{dot, normalized};
pub use index::{AnnIndex, Params, Rebuild, VectorError};
pub use persist::PersistError;
