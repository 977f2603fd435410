//! Cairn as a library: the composition root (`compose`), which the binary, its process tests
//! and the other crates' tests build their services with.

mod agent_ports;
pub mod compose;
