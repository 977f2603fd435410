//! `cairn-bench ann`: the embedded HNSW index (`cairn-ann`) against FAISS's `IndexHNSWFlat` and
//! hnswlib on the same vectors, same `m`, `ef_construction` and `ef_search`, one thread each.
//!
//! The vectors are generated, seeded: points spread widely around 100 cluster centres in a 32-dimensional latent
//! space, projected to `dim` dimensions by a fixed random matrix, plus a little noise in every
//! dimension, so that like sentence embeddings they have a low intrinsic dimension inside a high
//! ambient one. Queries are drawn the same way. The exact top 10 of each query (the ground
//! truth) is computed here by exact scan on every core. The vectors, queries and ground truth
//! are written as raw little-endian files the peer script (`scripts/bench_ann_peers.py`) reads.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_ann::{AnnIndex, Params};
use rand::{Rng, SeedableRng};

/// The latent space's dimension.
const LATENT: usize = 32;
/// Cluster centres in the latent space (each cluster as wide as the space between centres).
const CLUSTERS: usize = 100;
/// Results compared per query.
const K: usize = 10;
/// Each row is timed this many times and the fastest pass kept (as the peer script does): one
/// pass can be slowed by a neighbour on a shared host, the best is what the code can do.
const PASSES: usize = 3;

/// Generates the data, benchmarks `cairn-ann` and prints a Markdown table; the peers are run
/// by the script on the files left in `dir`.
pub fn run(dir: &Path, n: usize, queries: usize, dim: usize, p: Params, efs: &[usize], keep: bool) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let kept_data = if keep { read_kept(dir, n, queries, dim) } else { None };
    let Data { base, query, truth, filtered_truth } = match kept_data {
        Some(data) => data,
        None => {
            let start = Instant::now();
            let data = generate_data(n, queries, dim);
            eprintln!("[ann] generated {n} vectors and their ground truth in {:.1} s", start.elapsed().as_secs_f64());
            write_f32(&dir.join("base.f32"), &data.base)?;
            write_f32(&dir.join("queries.f32"), &data.query)?;
            write_tops(&dir.join("truth.u32"), &data.truth)?;
            write_tops(&dir.join("truth-30.u32"), &data.filtered_truth)?;
            data
        }
    };

    let file = dir.join("cairn.ann");
    let kept = if keep { AnnIndex::load(&file).ok().filter(|i| same_build(i, n, dim, p)) } else { None };
    let (mut index, built) = match kept {
        Some(index) => {
            eprintln!("[ann] reusing the index kept in {}", file.display());
            (index, None)
        }
        None => {
            let (index, build) = build(&base, dim, p, &file)?;
            (index, Some(build))
        }
    };
    let (build, memory) = match &built {
        Some(b) => (format!("{:.1} s", b.build_s), format!("{:.0} MB", b.memory_mb)),
        None => ("kept".to_owned(), "kept".to_owned()),
    };
    // One untimed pass first: the loaded index is cold (its pages not yet touched), while the
    // peers search the graphs they have just built.
    measure(&index, &query, &truth, dim, None)?;
    println!("| library | build (1 thread) | memory | ef_search | recall@10 | QPS (1 thread) |");
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &ef in efs {
        index = index.with_ef_search(ef);
        let (recall, qps) = measure(&index, &query, &truth, dim, None)?;
        println!("| cairn-ann | {build} | {memory} | {ef} | {recall:.4} | {qps:.0} |");
        rows.push(serde_json::json!({"ef": ef, "recall": recall, "qps": qps}));
    }
    let summary = serde_json::json!({
        "build_s": built.as_ref().map(|b| b.build_s),
        "memory_mb": built.as_ref().map(|b| b.memory_mb),
        "rows": rows,
    });
    std::fs::write(dir.join("cairn.json"), summary.to_string())?;
    // The filtered walk: a filter passing 30% of the vectors, against the exact filtered top 10.
    for &ef in efs {
        index = index.with_ef_search(ef);
        let (recall, qps) = measure(&index, &query, &filtered_truth, dim, Some(&thirty_percent))?;
        println!("| cairn-ann, 30% filter | | | {ef} | {recall:.4} | {qps:.0} |");
    }
    if let Some(b) = built {
        println!("\nindex file: {:.0} MB, saved in {:.1} s, loaded in {:.2} s", b.file_mb, b.save_s, b.load_s);
    }
    if !keep {
        std::fs::remove_file(&file)?;
    }
    Ok(())
}

/// The filter of the filtered rows: passes 30% of the vectors.
fn thirty_percent(key: u64) -> bool {
    key % 10 < 3
}

/// The benchmark's vectors, queries and the exact top 10 of each query, without and with the
/// filter (row-major, `K` per query).
struct Data {
    base: Vec<f32>,
    query: Vec<f32>,
    truth: Vec<Vec<usize>>,
    filtered_truth: Vec<Vec<usize>>,
}

/// Generates the vectors and computes the ground truth (see the module docs).
fn generate_data(n: usize, queries: usize, dim: usize) -> Data {
    let (base, query) = generate(n, queries, dim);
    let truth = ground_truth(&base, &query, dim, &|_| true);
    let filtered_truth = ground_truth(&base, &query, dim, &|i| thirty_percent(i as u64));
    Data { base, query, truth, filtered_truth }
}

/// The data an earlier run with `--keep-index` left in `dir`, when its files have this run's
/// sizes (they are generated from a fixed seed, so equal sizes mean equal data).
fn read_kept(dir: &Path, n: usize, queries: usize, dim: usize) -> Option<Data> {
    let floats = |name: &str, len: usize| {
        Some(read_words(&dir.join(name), len)?.into_iter().map(f32::from_bits).collect::<Vec<f32>>())
    };
    let tops = |name: &str| {
        let ids = read_words(&dir.join(name), queries * K)?;
        Some(ids.chunks_exact(K).map(|top| top.iter().map(|&i| i as usize).collect()).collect::<Vec<_>>())
    };
    let data = Data {
        base: floats("base.f32", n * dim)?,
        query: floats("queries.f32", queries * dim)?,
        truth: tops("truth.u32")?,
        filtered_truth: tops("truth-30.u32")?,
    };
    eprintln!("[ann] reusing the vectors and ground truth kept in {}", dir.display());
    Some(data)
}

/// What building, saving and loading the index cost.
struct Built {
    build_s: f64,
    memory_mb: f64,
    save_s: f64,
    load_s: f64,
    file_mb: f64,
}

/// Builds the index over `base` one vector at a time, saves it to `file` and returns it as
/// loaded back from there.
fn build(base: &[f32], dim: usize, p: Params, file: &Path) -> Result<(AnnIndex, Built)> {
    let rss_before = rss_mb();
    let start = Instant::now();
    let mut index = AnnIndex::new(dim, p);
    for (i, v) in base.chunks_exact(dim).enumerate() {
        index.insert(i as u64, v)?;
    }
    let build_s = start.elapsed().as_secs_f64();
    let memory_mb = rss_mb() - rss_before;
    let start = Instant::now();
    index.save(file)?;
    let save_s = start.elapsed().as_secs_f64();
    drop(index);
    let start = Instant::now();
    let index = AnnIndex::load(file).context("loading the saved index")?;
    let load_s = start.elapsed().as_secs_f64();
    let file_mb = std::fs::metadata(file)?.len() as f64 / 1e6;
    Ok((index, Built { build_s, memory_mb, save_s, load_s, file_mb }))
}

/// True when a kept index holds the `n` vectors this run generates, built with `p`.
fn same_build(index: &AnnIndex, n: usize, dim: usize, p: Params) -> bool {
    let q = index.params();
    index.len() == n && index.dim() == dim && q.m == p.m && q.ef_construction == p.ef_construction
}

/// Recall@10 against the ground truth and queries per second (the best of `PASSES`), one
/// query at a time.
fn measure(
    index: &AnnIndex,
    query: &[f32],
    truth: &[Vec<usize>],
    dim: usize,
    filter: Option<&dyn Fn(u64) -> bool>,
) -> Result<(f64, f64)> {
    let mut best = 0f64;
    let mut hit = 0;
    for _ in 0..PASSES {
        let start = Instant::now();
        hit = 0;
        for (q, want) in query.chunks_exact(dim).zip(truth) {
            let got = index.search(q, K, filter)?;
            hit += got.iter().filter(|(k, _)| want.contains(&(*k as usize))).count();
        }
        best = best.max(truth.len() as f64 / start.elapsed().as_secs_f64());
    }
    Ok((hit as f64 / (truth.len() * K) as f64, best))
}

/// `n` vectors and `queries` queries (see the module docs), row-major, unit length.
pub(crate) fn generate(n: usize, queries: usize, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let projection: Vec<f32> = (0..LATENT * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let centres: Vec<f32> = (0..CLUSTERS * LATENT).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let point = |rng: &mut rand::rngs::StdRng, out: &mut Vec<f32>| {
        let c = rng.gen_range(0..CLUSTERS) * LATENT;
        let z: Vec<f32> = (0..LATENT).map(|i| centres[c + i] + rng.gen_range(-1.0..1.0)).collect();
        for d in 0..dim {
            let x: f32 = (0..LATENT).map(|i| z[i] * projection[i * dim + d]).sum();
            out.push(x + rng.gen_range(-0.3..0.3));
        }
    };
    let mut base = Vec::with_capacity(n * dim);
    for _ in 0..n {
        point(&mut rng, &mut base);
    }
    let mut query = Vec::with_capacity(queries * dim);
    for _ in 0..queries {
        point(&mut rng, &mut query);
    }
    for v in base.chunks_exact_mut(dim).chain(query.chunks_exact_mut(dim)) {
        let norm = cairn_ann::dot(v, v).sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    (base, query)
}

/// The exact top 10 of every query among the rows `allow` passes, the queries split over every
/// core.
fn ground_truth(base: &[f32], query: &[f32], dim: usize, allow: &(dyn Fn(usize) -> bool + Sync)) -> Vec<Vec<usize>> {
    let rows: Vec<&[f32]> = query.chunks_exact(dim).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(|q| exact_top(base, q, dim, allow)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// The exact top 10 of `q` among the rows `allow` passes.
fn exact_top(base: &[f32], q: &[f32], dim: usize, allow: &dyn Fn(usize) -> bool) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(K + 1);
    for (i, v) in base.chunks_exact(dim).enumerate() {
        if !allow(i) {
            continue;
        }
        let s = cairn_ann::dot(q, v);
        if best.len() < K || s > best[K - 1].0 {
            let at = best.partition_point(|b| b.0 >= s);
            best.insert(at, (s, i));
            best.truncate(K);
        }
    }
    best.into_iter().map(|b| b.1).collect()
}

/// Writes 32-bit words little-endian, the raw format the peer script reads (`<f4`, `<u4`).
fn write_words(path: &Path, words: impl IntoIterator<Item = u32>) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for w in words {
        f.write_all(&w.to_le_bytes())?;
    }
    Ok(f.flush()?)
}

/// Reads what `write_words` wrote, when the file holds exactly `len` words.
fn read_words(path: &Path, len: usize) -> Option<Vec<u32>> {
    let bytes = std::fs::read(path).ok().filter(|b| b.len() == len * 4)?;
    Some(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Each query's top `K`, row-major.
fn write_tops(path: &Path, tops: &[Vec<usize>]) -> Result<()> {
    write_words(path, tops.iter().flatten().map(|&i| i as u32))
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    write_words(path, values.iter().map(|v| v.to_bits()))
}

/// This process's resident memory in MB.
fn rss_mb() -> f64 {
    crate::rss_mb(std::process::id())
}
