//! The semantic cache: a tier after the exact cache that answers a question from the cached
//! answer to an earlier one asked in other words.

mod agree;
mod lexicon;

pub use agree::{agree, Disagreement};
