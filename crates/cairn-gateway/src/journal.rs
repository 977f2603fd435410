//! The usage journal: how a finished call's usage record is durable before its answer leaves
//! without the answer waiting for a database commit (SQLite, `usage_commit = "before_answer"`).
//!
//! Each process appends the records it finishes to files of its own in the journal folder
//! beside the database (`NAME-usage/`), one positioned `write` each, before the answer is sent;
//! the usage writer then commits them in batches, as it does records nobody waits for, and
//! empties a file once everything written to it is committed. A process has two files that
//! take turns (`SWITCH_AT`), so one drains while the other takes new records. A written page lives in
//! the OS page cache, so a record survives its process being killed, exactly as a SQLite commit
//! with `synchronous = NORMAL` does (an OS crash can lose the last few of either).
//!
//! A process holds its file with an exclusive `flock` while it lives. A process starting on the
//! database replays every file nobody holds (a dead process's) before it serves, then deletes
//! it, and a running one looks for such files every `ADOPT_EVERY` (a worker that died and was
//! not restarted beside a server that runs on); inserts are idempotent by call id, so a record committed just before a crash is not
//! counted twice, and its budget is settled once (the settling trigger fires on insert only).
//!
//! A frame is `length: u32 LE, crc32: u32 LE, payload` (the record as JSON). Replay stops at the
//! first frame that is cut short or fails its checksum: only a write torn by an OS crash leaves
//! one, and nothing after it was acknowledged.
//!
//! A file is emptied by writing an end mark (`END`) at its start, not by truncating it, and
//! each frame is written with an end mark after it: the file keeps its blocks and cached pages,
//! so a record is one overwrite inside the file. Appending to a truncated file made the kernel
//! allocate a page, its buffers and a block reservation and log the file's new size in the
//! filesystem's journal for each write: about a tenth of a cache hit's time on the request's
//! thread. Frames of earlier rounds beyond the end mark are never read.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_core::store::Store;
use cairn_core::usage::{Settlement, UsageRecord};
use parking_lot::Mutex;

/// How large each of a journal's two files may grow while storage takes none of their records
/// (32 MiB, about 75,000 records); past it, answers wait for their commit again.
const CAPACITY: u64 = 32 << 20;
/// How large the file taking appends may grow before appends move to the other one (once that
/// one is empty). Under steady load there is always a record not yet committed, so a single
/// file would never be emptied; two take turns, and the one not written to drains.
const SWITCH_AT: u64 = 1 << 20;
/// Bytes before each frame's payload: its length and checksum.
const HEADER: usize = 8;
/// Where a file's frames end: a header whose length no frame can have.
const END: [u8; HEADER] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
/// A file whose frames ran past this many times `switch_at` (storage fell behind) is
/// truncated when it empties rather than kept at that size.
const KEEP_FACTOR: u64 = 2;
/// The extension of a live or orphaned journal.
const LIVE: &str = "journal";
/// The extension of a journal being created (locked, not yet named `LIVE`).
const STAGING: &str = "new";
/// The extension a replayed journal is renamed to when some of its frames could not be read.
const UNREADABLE: &str = "unreadable";
/// Records per replay transaction.
const REPLAY_BATCH: usize = 1_000;
/// How often a running process replays the journals of processes that died since.
const ADOPT_EVERY: Duration = Duration::from_secs(30);

/// This process's usage journal: two files written on the request's thread, emptied by the
/// usage writer.
pub struct UsageJournal {
    paths: [PathBuf; 2],
    capacity: u64,
    switch_at: u64,
    /// How often the journals of processes that died since are replayed.
    adopt_every: Duration,
    state: Mutex<State>,
}

/// Which of a journal's two files a record went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment(usize);

impl Segment {
    /// 0 or 1.
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// The open files, what they hold, and which one takes appends.
struct State {
    files: [SegmentFile; 2],
    active: usize,
}

/// One of the journal's files.
struct SegmentFile {
    file: File,
    /// Bytes of frames: where the next frame goes (an end mark lies there).
    len: u64,
    /// The file's size: frames of earlier rounds may lie past `len`.
    size: u64,
    /// Records written and not yet committed.
    outstanding: u64,
}

impl UsageJournal {
    /// Creates this process's journal in `dir` (an owner-only folder, made if missing) and
    /// holds it locked for the life of the process.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        Self::with_capacity(dir, CAPACITY)
    }

    /// `create`, each file holding at most `capacity` bytes.
    pub(crate) fn with_capacity(dir: &Path, capacity: u64) -> std::io::Result<Self> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let name = uuid::Uuid::now_v7().simple().to_string();
        let open = |i: usize| -> std::io::Result<(PathBuf, SegmentFile)> {
            let staging = dir.join(format!("{name}-{i}.{STAGING}"));
            let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&staging)?;
            // Locked before it takes the name replayers look for, so none of them can take a
            // live journal for a dead process's.
            file.try_lock().map_err(lock_error)?;
            let path = dir.join(format!("{name}-{i}.{LIVE}"));
            std::fs::rename(&staging, &path)?;
            Ok((path, SegmentFile { file, len: 0, size: 0, outstanding: 0 }))
        };
        let ((first_path, first), (second_path, second)) = (open(0)?, open(1)?);
        Ok(Self {
            paths: [first_path, second_path],
            capacity,
            switch_at: SWITCH_AT,
            adopt_every: ADOPT_EVERY,
            state: Mutex::new(State { files: [first, second], active: 0 }),
        })
    }

    /// The same journal, looking for dead processes' journals every `every` (tests).
    #[cfg(test)]
    pub(crate) fn adopting_every(mut self, every: Duration) -> Self {
        self.adopt_every = every;
        self
    }

    /// The same journal, moving appends to the other file past `bytes` (tests).
    #[cfg(test)]
    pub(crate) fn switching_at(mut self, bytes: u64) -> Self {
        self.switch_at = bytes;
        self
    }

    /// Writes `settlement` to the journal: the file it went to; none, with nothing written,
    /// when the journal is full or the write failed (the caller then waits for the commit).
    pub(crate) fn append(&self, settlement: &Settlement) -> Option<Segment> {
        let frame = match encode(settlement) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(error = %e, "a usage record could not be encoded for the journal");
                return None;
            }
        };
        let mut state = self.state.lock();
        let other = 1 - state.active;
        if state.files[state.active].len >= self.switch_at && state.files[other].len == 0 {
            state.active = other;
        }
        let i = state.active;
        let segment = &mut state.files[i];
        let at = segment.len;
        if at + frame.len() as u64 > self.capacity {
            return None;
        }
        match segment.file.write_all_at(&frame, at) {
            Ok(()) => {
                let written = (frame.len() - HEADER) as u64;
                segment.len += written;
                segment.size = segment.size.max(at + frame.len() as u64);
                segment.outstanding += 1;
                Some(Segment(i))
            }
            Err(e) => {
                // A partly written frame would fail its checksum, and a cut end mark would let
                // an earlier round's frames be read: end the file where this frame began.
                if segment.file.write_all_at(&END, at).is_err() {
                    let _ = segment.file.set_len(at);
                }
                tracing::error!(error = %e, "writing the usage journal failed; the answer waits for the commit");
                None
            }
        }
    }

    /// Notes that `counts[i]` records of file `i` are committed; empties each file once all of
    /// its records are.
    pub(crate) fn committed(&self, counts: [u64; 2]) {
        if counts == [0, 0] {
            return;
        }
        let mut state = self.state.lock();
        for (segment, n) in state.files.iter_mut().zip(counts) {
            segment.outstanding = segment.outstanding.saturating_sub(n);
            if segment.outstanding == 0 && segment.len > 0 {
                let emptied = if segment.size > KEEP_FACTOR * self.switch_at {
                    segment.file.set_len(0).map(|()| segment.size = 0)
                } else {
                    segment.file.write_all_at(&END, 0)
                };
                match emptied {
                    Ok(()) => segment.len = 0,
                    Err(e) => tracing::warn!(error = %e, "emptying the usage journal failed; it keeps growing"),
                }
            }
        }
    }

    /// Bytes the journal holds now.
    pub fn len(&self) -> u64 {
        self.state.lock().files.iter().map(|f| f.len).sum()
    }

    /// Whether everything written to the journal is committed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for UsageJournal {
    fn drop(&mut self) {
        // Everything committed: nothing to replay. Otherwise the files stay for the next start.
        if self.state.get_mut().files.iter().all(|f| f.outstanding == 0) {
            for path in &self.paths {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Replays, every `adopt_every`, the journals beside `journal` that no live process holds;
/// ends when the journal is dropped.
pub(crate) async fn adopt(journal: Weak<UsageJournal>, store: Arc<dyn Store>) {
    let Some(every) = journal.upgrade().map(|j| j.adopt_every) else { return };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(dir) = journal.upgrade().and_then(|j| j.paths[0].parent().map(Path::to_path_buf)) else { return };
        if let Err(e) = replay(&dir, &*store).await {
            tracing::warn!(error = %e, "replaying stopped processes' usage journals failed; will retry");
        }
    }
}

/// What replaying a folder's journals did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Journals of dead processes read and removed (or set aside).
    pub journals: usize,
    /// Records written to storage (those already stored are skipped there).
    pub records: usize,
    /// Frames with a valid checksum that did not decode (their journal is kept as `.unreadable`).
    pub unreadable: usize,
}

/// Writes every record in `dir`'s journals that no live process holds to `store`, then removes
/// those journals. A folder that does not exist holds none.
pub async fn replay(dir: &Path, store: &dyn Store) -> Result<Replayed, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(format!("reading the usage journals in {}: {e}", dir.display())),
    };
    let mut done = Replayed::default();
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path();
        let kind = path.extension().and_then(|e| e.to_str());
        if kind != Some(LIVE) && kind != Some(STAGING) {
            continue;
        }
        // Gone meanwhile: another process replayed it first.
        let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else { continue };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue, // its process is alive
            Err(TryLockError::Error(e)) => return Err(format!("locking {}: {e}", path.display())),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let frames = decode(&bytes);
        for chunk in frames.records.chunks(REPLAY_BATCH) {
            store.insert_usage(chunk).await.map_err(|e| format!("replaying {}: {e}", path.display()))?;
        }
        if frames.torn_bytes > 0 {
            tracing::warn!(journal = %path.display(), bytes = frames.torn_bytes, "usage journal ends in a torn write; its tail was never acknowledged");
        }
        let gone = if frames.unreadable > 0 {
            tracing::error!(journal = %path.display(), frames = frames.unreadable, "usage journal frames could not be decoded; the journal is kept aside");
            std::fs::rename(&path, path.with_extension(UNREADABLE))
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| format!("removing replayed {}: {e}", path.display()))?;
        done.journals += 1;
        done.records += frames.records.len();
        done.unreadable += frames.unreadable;
    }
    if done.records > 0 {
        tracing::info!(
            records = done.records,
            journals = done.journals,
            "replayed the usage journals of stopped processes"
        );
    }
    Ok(done)
}

/// How many records the journal file at `path` holds: its readable frames before its end (an
/// emptied file keeps its size and holds none).
pub fn records_in(path: &Path) -> std::io::Result<usize> {
    let frames = decode(&std::fs::read(path)?);
    Ok(frames.records.len() + frames.unreadable)
}

/// One record as a frame, followed by an end mark (written with it, overwritten by the next).
fn encode(s: &Settlement) -> serde_json::Result<Vec<u8>> {
    let mut frame = vec![0u8; HEADER];
    serde_json::to_writer(&mut frame, &(&s.record, &s.reservation_id))?;
    let len = u32::try_from(frame.len() - HEADER).map_err(serde::ser::Error::custom)?;
    if len == u32::MAX {
        return Err(serde::ser::Error::custom("a usage record too large for the journal"));
    }
    let crc = crc32fast::hash(&frame[HEADER..]);
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(&END);
    Ok(frame)
}

/// A journal's frames, read back.
#[derive(Debug, Default)]
struct Frames {
    records: Vec<Settlement>,
    unreadable: usize,
    torn_bytes: usize,
}

/// Reads frames until the bytes end, an end mark, or one cut short or failing its checksum.
fn decode(mut bytes: &[u8]) -> Frames {
    let mut out = Frames::default();
    while !bytes.is_empty() {
        let Some((header, rest)) = bytes.split_first_chunk::<HEADER>() else { break };
        if *header == END {
            return out;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = rest.get(..len).filter(|p| crc32fast::hash(p) == crc) else { break };
        match serde_json::from_slice::<(UsageRecord, Option<String>)>(payload) {
            Ok((record, reservation_id)) => out.records.push(Settlement { record, reservation_id }),
            Err(_) => out.unreadable += 1,
        }
        bytes = &rest[len..];
    }
    out.torn_bytes = bytes.len();
    out
}

/// A lock refused on a file nobody else has seen yet is an I/O error like any other.
fn lock_error(e: TryLockError) -> std::io::Error {
    match e {
        TryLockError::Error(e) => e,
        TryLockError::WouldBlock => std::io::Error::new(ErrorKind::WouldBlock, "journal locked by another process"),
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
