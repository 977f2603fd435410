//! The index file: one [`AnnIndex`] (vectors, keys, liveness and graph) written so start-up
//! reads it back instead of rebuilding the graph from every vector.
//!
//! Layout (little-endian): the magic `CAIRNANN`, a format version, the header (dimension,
//! parameters, slot count, graph flag, entry and top layer), then the keys, the liveness bytes,
//! the vectors, and with a graph each slot's level, layer 0's links and each upper node's
//! links; a CRC-32 of everything before it ends the file. Reading checks the checksum and every
//! size and link against the header, so a truncated, corrupt or foreign file is refused (the
//! caller rebuilds) rather than trusted. Writes go to a temporary file renamed over the old
//! one, readable by its owner only.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::graph::{Graph, MAX_LEVEL, MAX_M};
use crate::index::{AnnIndex, Params};
use crate::memory::advise_huge;

const MAGIC: &[u8; 8] = b"CAIRNANN";
const VERSION: u32 = 1;

/// Why an index file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file system refused.
    #[error("index file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not an index this version wrote, or it is damaged.
    #[error("index file is not usable: {0}")]
    Invalid(&'static str),
}

/// Hashes everything written or read through it.
struct Crc<T> {
    inner: T,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

impl AnnIndex {
    /// Writes the index to `path` atomically (a temporary file renamed over it), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), PersistError> {
        let tmp = path.with_extension("tmp");
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp)?;
        let mut w = Crc { inner: BufWriter::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
        self.write_body(&mut w)?;
        let sum = w.crc.clone().finalize();
        let mut inner = w.inner;
        inner.write_all(&sum.to_le_bytes())?;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Reads an index `save` wrote; refuses a file that fails any check (see the module docs).
    pub fn load(path: &Path) -> Result<AnnIndex, PersistError> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut r = Crc { inner: BufReader::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
        let index = read_body(&mut r, size)?;
        let sum = r.crc.clone().finalize();
        let mut tail = [0u8; 4];
        r.inner.read_exact(&mut tail)?;
        if u32::from_le_bytes(tail) != sum {
            return Err(PersistError::Invalid("checksum mismatch"));
        }
        if r.inner.read(&mut [0u8; 1])? != 0 {
            return Err(PersistError::Invalid("trailing bytes"));
        }
        Ok(index)
    }

    fn write_body(&self, w: &mut impl Write) -> Result<(), PersistError> {
        let p = self.params;
        w.write_all(MAGIC)?;
        for v in [VERSION, self.dim as u32, p.m as u32, p.ef_construction as u32, p.ef_search as u32] {
            w.write_all(&v.to_le_bytes())?;
        }
        w.write_all(&(p.graph_from as u64).to_le_bytes())?;
        w.write_all(&(self.keys.len() as u64).to_le_bytes())?;
        let (has, entry, top) = self.graph.as_ref().map_or((0u8, 0u32, 0u8), |g| (1, g.entry, g.top));
        w.write_all(&[has, top])?;
        w.write_all(&entry.to_le_bytes())?;
        write_le(w, &self.keys)?;
        w.write_all(&self.alive.iter().map(|&a| a as u8).collect::<Vec<u8>>())?;
        write_le(w, &self.vectors)?;
        if let Some(g) = &self.graph {
            w.write_all(&g.levels)?;
            write_le(w, &g.links0)?;
            for links in g.upper.iter().filter(|l| !l.is_empty()) {
                write_le(w, links)?;
            }
        }
        Ok(())
    }
}

/// Writes plain numbers as their little-endian bytes.
fn write_le<T: bytemuck::Pod>(w: &mut impl Write, values: &[T]) -> std::io::Result<()> {
    // Every supported target is little-endian (checked at compile time below).
    w.write_all(bytemuck::cast_slice(values))
}

#[cfg(not(target_endian = "little"))]
compile_error!("the index file format assumes a little-endian target");

/// Reads `n` plain numbers, refusing more than `budget` bytes (the file's size) up front so a
/// forged header cannot make the reader allocate without bound.
fn read_le<T: bytemuck::Pod + Default + Clone>(r: &mut impl Read, n: u64, budget: u64) -> Result<Vec<T>, PersistError> {
    let bytes = n.checked_mul(std::mem::size_of::<T>() as u64).ok_or(PersistError::Invalid("size overflow"))?;
    if bytes > budget {
        return Err(PersistError::Invalid("sizes exceed the file"));
    }
    let mut out = vec![T::default(); n as usize];
    advise_huge(&out);
    r.read_exact(bytemuck::cast_slice_mut(&mut out))?;
    Ok(out)
}

fn read_u32(r: &mut impl Read) -> Result<u32, PersistError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, PersistError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_body(r: &mut impl Read, size: u64) -> Result<AnnIndex, PersistError> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(PersistError::Invalid("not an index file"));
    }
    if read_u32(r)? != VERSION {
        return Err(PersistError::Invalid("written by another format version"));
    }
    let dim = read_u32(r)? as usize;
    let (m, ef_construction, ef_search) = (read_u32(r)? as usize, read_u32(r)? as usize, read_u32(r)? as usize);
    let graph_from = read_u64(r)? as usize;
    let n = read_u64(r)?;
    let mut flags = [0u8; 2];
    r.read_exact(&mut flags)?;
    let entry = read_u32(r)?;
    if !(2..=MAX_M).contains(&m) || n > u32::MAX as u64 {
        return Err(PersistError::Invalid("header out of range"));
    }
    let keys: Vec<u64> = read_le(r, n, size)?;
    let alive: Vec<u8> = read_le(r, n, size)?;
    let vectors: Vec<f32> = read_le(r, n.saturating_mul(dim as u64), size)?;
    let params = Params { m, ef_construction, ef_search, graph_from };
    let mut index = AnnIndex::new(dim, params);
    if index.params() != params || alive.iter().any(|&a| a > 1) {
        return Err(PersistError::Invalid("header out of range"));
    }
    for (slot, (&key, &a)) in keys.iter().zip(&alive).enumerate() {
        if a == 1 && index.slot_of.insert(key, slot as u32).is_some() {
            return Err(PersistError::Invalid("a key is live twice"));
        }
    }
    index.keys = keys;
    index.alive = alive.into_iter().map(|a| a == 1).collect();
    index.vectors = vectors;
    if flags[0] == 1 {
        index.graph = Some(read_graph(r, n, m, entry, flags[1], size)?);
    } else if flags[0] != 0 || (index.len() >= graph_from && n > 0) {
        return Err(PersistError::Invalid("graph flag out of range"));
    }
    Ok(index)
}

fn read_graph(r: &mut impl Read, n: u64, m: usize, entry: u32, top: u8, size: u64) -> Result<Graph, PersistError> {
    let levels: Vec<u8> = read_le(r, n, size)?;
    let links0: Vec<u32> = read_le(r, n * (2 * m as u64 + 1), size)?;
    let mut upper = Vec::with_capacity(n as usize);
    for &level in &levels {
        if level > top || level > MAX_LEVEL {
            return Err(PersistError::Invalid("a node above the top layer"));
        }
        upper.push(if level == 0 { Vec::new() } else { read_le(r, level as u64 * (m as u64 + 1), size)? });
    }
    let graph = Graph { m, links0, upper, levels, entry, top };
    if n > 0 && (entry as u64 >= n || graph.levels[entry as usize] != top) {
        return Err(PersistError::Invalid("entry point out of range"));
    }
    // Every count within its capacity and every link to an existing slot: the walk indexes by
    // them without further checks.
    for slot in 0..n as u32 {
        for level in 0..=graph.levels[slot as usize] {
            let list = graph.list(slot, level);
            if list[0] as usize >= list.len() {
                return Err(PersistError::Invalid("a node with too many links"));
            }
            if graph.links(slot, level).iter().any(|&t| t as u64 >= n || graph.levels[t as usize] < level) {
                return Err(PersistError::Invalid("a link to a missing node"));
            }
        }
    }
    Ok(graph)
}
