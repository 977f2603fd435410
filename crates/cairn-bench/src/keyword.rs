//! `cairn-bench keyword`: the embedded keyword index alone at a given number of chunks, its
//! pruned top-k search (MaxScore over block bounds) beside the exhaustive scorer it replaced,
//! in the same run on the same index (each over all the queries in turn): p50 and p99 per
//! depth (10, a keyword search's; `FUSION_DEPTH`, hybrid's candidates) and filter (none; 30%
//! of chunks by document), the speed-up as a ratio, and a check that both return the same
//! results.
//!
//! The chunks are those of `cairn-bench search` (SciFact sentences, documents of 100 chunks,
//! ten metadata groups); queries are the SciFact claims.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::Bm25Index;

use crate::load::percentile;
use crate::search::{chunk_text, sentences, PER_DOC};

/// Builds the index and prints a Markdown table.
pub fn run(dataset: &Path, chunks: usize) -> Result<()> {
    let data = BeirDataset::load(dataset)?;
    let sentences = sentences(&data);
    let start = Instant::now();
    let mut index = Bm25Index::default();
    for i in 0..chunks {
        index.insert_owned(i as u64, (i / PER_DOC) as u32, &chunk_text(&sentences, i));
    }
    println!("## Keyword index (cairn-bench keyword, {chunks} chunks)\n");
    println!("Built in {:.1} s (one thread).\n", start.elapsed().as_secs_f64());
    println!("| depth | filter | pruned p50 / p99 | exhaustive p50 / p99 | speed-up at p50 / p99 | same results |");
    println!("|---|---|---|---|---|---|");
    // Groups 0-2 of 10, by document, as `cairn-bench search`'s filter.
    let thirty = |owner: u32| owner % 10 < 3;
    let all = |_: u32| true;
    for depth in [10, cairn_knowledge::retrieve::FUSION_DEPTH] {
        for (name, allow) in [("none", &all as &dyn Fn(u32) -> bool), ("30% of chunks", &thirty)] {
            // Each strategy over all the queries in turn: interleaved, one would warm the
            // caches for the other.
            let timed = |search: &dyn Fn(&str) -> Vec<(u64, f32)>| {
                let mut times = Vec::new();
                let found: Vec<_> = data
                    .queries
                    .iter()
                    .map(|(_, query)| {
                        let t = Instant::now();
                        let found = search(query);
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        found
                    })
                    .collect();
                (times, found)
            };
            let (mut fast, a) = timed(&|q| index.search_owned(q, depth, allow));
            let (mut slow, b) = timed(&|q| index.search_owned_exhaustive(q, depth, allow));
            let same = a.iter().zip(&b).filter(|(a, b)| a == b).count();
            fast.sort_by(f64::total_cmp);
            slow.sort_by(f64::total_cmp);
            let (f50, f99) = (percentile(&fast, 0.5), percentile(&fast, 0.99));
            let (s50, s99) = (percentile(&slow, 0.5), percentile(&slow, 0.99));
            println!(
                "| {depth} | {name} | {f50:.2} / {f99:.2} ms | {s50:.2} / {s99:.2} ms | {:.1}x / {:.1}x | {same} of {} |",
                s50 / f50,
                s99 / f99,
                data.queries.len()
            );
        }
    }
    Ok(())
}
