//! The HNSW index against exact search: recall with and without filters, removal, rebuilds,
//! and the index file (round trip, damage, forged sizes).

use cairn_ann::{AnnIndex, Params, PersistError, VectorError};
use rand::{Rng, SeedableRng};

/// `n` vectors around `centres` random centres (as embeddings cluster by topic), the first
/// `n - queries` to index and the rest to query with.
fn clustered(n: usize, dim: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centre: Vec<Vec<f32>> = (0..centres).map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
    (0..n)
        .map(|_| {
            let c = &centre[rng.gen_range(0..centres)];
            c.iter().map(|x| x + rng.gen_range(-0.6..0.6)).collect()
        })
        .collect()
}

/// Indexed vectors and queries from the same clusters.
fn corpus(n: usize, queries: usize, dim: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut all = clustered(n + queries, dim, 50, seed);
    let q = all.split_off(n);
    (all, q)
}

fn params(graph_from: usize) -> Params {
    Params { m: 16, ef_construction: 100, ef_search: 64, graph_from }
}

/// Mean share of the exact top 10 the index finds, over `queries`.
fn recall(ann: &AnnIndex, exact: &AnnIndex, queries: &[Vec<f32>], filter: Option<&dyn Fn(u64) -> bool>) -> f64 {
    let mut hit = 0;
    for q in queries {
        let want: Vec<u64> = exact.search(q, 10, filter).unwrap().into_iter().map(|h| h.0).collect();
        let got: Vec<u64> = ann.search(q, 10, filter).unwrap().into_iter().map(|h| h.0).collect();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().all(|k| filter.is_none_or(|allow| allow(*k))), "a result the filter refuses");
        hit += got.iter().filter(|k| want.contains(k)).count();
    }
    hit as f64 / (queries.len() * 10) as f64
}

fn build(vectors: &[Vec<f32>], graph_from: usize) -> AnnIndex {
    let mut ix = AnnIndex::new(vectors[0].len(), params(graph_from));
    for (i, v) in vectors.iter().enumerate() {
        ix.insert(i as u64, v).unwrap();
    }
    ix
}

#[test]
fn the_graph_recalls_exact_search_with_and_without_filters() {
    let (data, queries) = corpus(20_000, 100, 64, 1);
    let ann = build(&data, 1000);
    let exact = build(&data, usize::MAX);
    assert!(ann.has_graph() && !exact.has_graph());
    let all = recall(&ann, &exact, &queries, None);
    let thirty = recall(&ann, &exact, &queries, Some(&|k| k % 10 < 3));
    // A filter passing 0.5%: the walk gives up and the filtered vectors are scanned exactly.
    let rare = recall(&ann, &exact, &queries, Some(&|k| k % 200 == 0));
    assert!(all >= 0.95, "recall@10 {all}");
    assert!(thirty >= 0.95, "recall@10 under a 30% filter {thirty}");
    assert_eq!(rare, 1.0, "recall@10 under a 0.5% filter");
    // Fewer pass than asked for: every one of them, not an empty or short page of the graph.
    let few = ann.search(&queries[0], 10, Some(&|k| k < 4)).unwrap();
    assert_eq!(few.iter().map(|h| h.0).collect::<std::collections::BTreeSet<_>>(), (0..4).collect());
}

#[test]
fn removed_vectors_leave_results_and_the_graph_is_rebuilt_when_most_are_gone() {
    let data = clustered(3000, 32, 10, 3);
    let mut ix = build(&data, 500);
    for k in 0..1000u64 {
        assert!(ix.remove(k));
    }
    assert!(!ix.remove(5));
    assert_eq!(ix.len(), 2000);
    let q = &data[10];
    let hits = ix.search(q, 50, None).unwrap();
    assert_eq!(hits.len(), 50);
    assert!(hits.iter().all(|h| h.0 >= 1000));
    // Replacing a key's vector: the new one is found, once.
    ix.insert(2500, q).unwrap();
    let hits = ix.search(q, 5, None).unwrap();
    assert_eq!(hits[0].0, 2500);
    assert!((hits[0].1 - 1.0).abs() < 1e-5);
    assert_eq!(hits.iter().filter(|h| h.0 == 2500).count(), 1);
    // Past half dead, the index drops the dead and rebuilds; results stay right.
    ix.retain(|k| k >= 2400);
    assert_eq!(ix.len(), 600);
    let exact = {
        let mut e = AnnIndex::new(32, params(usize::MAX));
        for k in 2400..3000u64 {
            let v = if k == 2500 { q } else { &data[k as usize] };
            e.insert(k, v).unwrap();
        }
        e
    };
    assert!(recall(&ix, &exact, &data[..50], None) >= 0.95);
    ix.retain(|k| k < 2450);
    assert!(ix.len() == 50 && !ix.has_graph(), "small again: searched exactly");
    assert_eq!(ix.search(q, 100, None).unwrap().len(), 50);
}

#[test]
fn bad_vectors_and_queries_are_refused() {
    let mut ix = AnnIndex::new(4, params(2));
    assert_eq!(ix.insert(1, &[1.0]), Err(VectorError::Dimension { want: 4, got: 1 }));
    assert_eq!(ix.insert(1, &[f32::NAN, 0.0, 0.0, 0.0]), Err(VectorError::NotFinite));
    assert_eq!(ix.insert(1, &[f32::MAX; 4]), Err(VectorError::NotFinite));
    ix.insert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    ix.insert(2, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    ix.insert(3, &[0.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(ix.has_graph());
    assert!(ix.search(&[1.0, 2.0], 1, None).is_err());
    assert!(ix.search(&[f32::INFINITY, 0.0, 0.0, 0.0], 1, None).is_err());
    assert!(ix.search(&[1.0, 0.0, 0.0, 0.0], 0, None).unwrap().is_empty());
    // A zero query scores everything 0: still an answer, not an error.
    assert_eq!(ix.search(&[0.0; 4], 10, None).unwrap().len(), 3);
    assert_eq!(ix.similarity(1, &[2.0, 0.0, 0.0, 0.0]), Some(1.0));
    assert_eq!(ix.similarity(1, &[0.0; 4]), None);
    assert_eq!(ix.similarity(9, &[1.0, 0.0, 0.0, 0.0]), None);
    assert!(ix.holds(1, &[5.0, 0.0, 0.0, 0.0]) && !ix.holds(1, &[0.0, 1.0, 0.0, 0.0]) && !ix.holds(9, &[1.0; 4]));
}

#[test]
fn the_index_file_round_trips_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ann");
    let data = clustered(3000, 24, 10, 4);
    let mut ix = build(&data, 1000);
    ix.remove(7);
    ix.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let back = AnnIndex::load(&path).unwrap();
    assert_eq!(back, ix);
    assert_eq!(back.search(&data[3], 10, None).unwrap(), ix.search(&data[3], 10, None).unwrap());

    let bytes = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("damaged.ann");
    for at in [0, 12, 60, bytes.len() / 2, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        std::fs::write(&damaged, &b).unwrap();
        assert!(AnnIndex::load(&damaged).is_err(), "a flipped byte at {at} was accepted");
    }
    for len in [0, 7, 40, bytes.len() - 4, bytes.len() - 1] {
        std::fs::write(&damaged, &bytes[..len]).unwrap();
        assert!(AnnIndex::load(&damaged).is_err(), "a file cut at {len} was accepted");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&damaged, &longer).unwrap();
    assert!(matches!(AnnIndex::load(&damaged), Err(PersistError::Invalid(_))));
    // A forged header asking for 2^32 slots of 2^31 dimensions: refused before allocating.
    let mut forged = bytes[..64].to_vec();
    forged[12..16].copy_from_slice(&(1u32 << 31).to_le_bytes());
    forged[36..44].copy_from_slice(&(u32::MAX as u64).to_le_bytes());
    std::fs::write(&damaged, &forged).unwrap();
    assert!(matches!(AnnIndex::load(&damaged), Err(PersistError::Invalid(_))));
    // An empty index round-trips too.
    let empty = AnnIndex::new(8, params(10));
    empty.save(&path).unwrap();
    assert_eq!(AnnIndex::load(&path).unwrap(), empty);
}

#[test]
fn a_rebuild_made_away_from_the_index_catches_up_with_changes_made_meanwhile() {
    let (data, queries) = corpus(4000, 20, 32, 5);
    let mut ix = build(&data[..3000], 500);
    for k in 0..2000u64 {
        ix.remove(k);
    }
    assert!(ix.needs_rebuild());
    let plan = ix.rebuild_plan();
    // Meanwhile: more removed, new ones, and one replaced.
    for k in 2000..2100u64 {
        ix.remove(k);
    }
    for (k, v) in data.iter().enumerate().skip(3000) {
        ix.insert(k as u64, v).unwrap();
    }
    ix.insert(2500, &queries[0]).unwrap();
    let mut rebuilt = plan.build();
    assert!(rebuilt.has_graph() && !rebuilt.needs_rebuild());
    rebuilt.catch_up_with(&ix);
    assert_eq!(rebuilt.len(), ix.len());
    assert_eq!(rebuilt.len(), 900 + 1000);
    for k in (0..4000u64).filter(|k| *k != 2500) {
        assert_eq!(rebuilt.holds(k, &data[k as usize]), ix.holds(k, &data[k as usize]), "key {k}");
    }
    assert!(rebuilt.holds(2500, &queries[0]));
    let exact = {
        let mut e = AnnIndex::new(32, params(usize::MAX));
        for k in (2100..4000u64).filter(|k| *k != 2500) {
            e.insert(k, &data[k as usize]).unwrap();
        }
        e.insert(2500, &queries[0]).unwrap();
        e
    };
    assert!(recall(&rebuilt, &exact, &queries, None) >= 0.95);
    assert_eq!(rebuilt.search(&queries[0], 1, None).unwrap()[0].0, 2500);
}
