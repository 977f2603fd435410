//! The usage journal against a real SQLite file and real locks: journaled records need no
//! wait and are released once committed; a dead process's journal is replayed once, a live
//! one's never; a torn tail, an unreadable frame and a full journal each do what is documented.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::store::Store;
use cairn_core::usage::Settlement;
use cairn_telemetry::Metrics;

use super::{decode, encode, replay, Replayed, Segment, UsageJournal, END, HEADER};
use crate::accounting::tests::{record, stored};
use crate::accounting::{Urgency, UsageRecorder};

async fn store(dir: &Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join("cairn.db").display());
    cairn_store::open(&url, 2).await.expect("store")
}

fn settlement(id: &str, request: &str) -> Settlement {
    Settlement { record: record(id, request), reservation_id: None }
}

/// One record's frame alone, without the end mark written after it.
fn frame(s: &Settlement) -> Vec<u8> {
    let mut bytes = encode(s).unwrap();
    assert!(bytes.ends_with(&END));
    bytes.truncate(bytes.len() - HEADER);
    bytes
}

/// A journal file's bytes up to its end mark, as the next write finds them.
fn frames_of(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(bytes.ends_with(&END), "a written journal ends with its end mark");
    bytes.truncate(bytes.len() - HEADER);
    bytes
}

/// The journal files in `dir` with extension `ext`.
fn files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == ext)).count())
        .unwrap_or(0)
}

/// A journal in `at` holding calls `ids` of request `request`, left by a process that died;
/// its file.
fn dead_journal(at: &Path, ids: &[&str], request: &str) -> std::path::PathBuf {
    let journal = UsageJournal::create(at).unwrap();
    for id in ids {
        assert_eq!(journal.append(&settlement(id, request)), Some(Segment(0)));
    }
    journal.paths[0].clone() // dropped here: its locks go with it, the files stay
}

#[tokio::test]
async fn a_journaled_record_needs_no_wait_and_is_released_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let journal = UsageJournal::create(&dir.path().join("usage")).unwrap();
    let rec = UsageRecorder::start(store.clone(), Arc::new(Metrics::new()), Duration::from_secs(1), Some(journal));
    for i in 0..3 {
        let wait = rec.record(record(&format!("call-{i}"), "req-j"), None, Urgency::Awaited);
        assert!(wait.is_none(), "a journaled record is durable already");
    }
    rec.flush().await;
    assert_eq!(stored(&*store, "req-j").await, vec!["call-0", "call-1", "call-2"]);
    let journal = rec.journal().expect("journal");
    assert_eq!(journal.len(), 0, "emptied once everything in it is committed");
}

#[tokio::test]
async fn the_journal_is_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("usage");
    let journal = UsageJournal::create(&at).unwrap();
    assert!(journal.append(&settlement("c", "r")).is_some());
    assert_eq!(std::fs::metadata(&at).unwrap().permissions().mode() & 0o777, 0o700);
    for path in &journal.paths {
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_dead_processs_journal_is_replayed_once_and_a_live_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let at = dir.path().join("usage");
    let dead = UsageJournal::create(&at).unwrap();
    let live = UsageJournal::create(&at).unwrap();
    for i in 0..3 {
        assert!(dead.append(&settlement(&format!("dead-{i}"), "req-d")).is_some());
        assert!(live.append(&settlement(&format!("live-{i}"), "req-l")).is_some());
    }
    // One of the dead process's records was committed just before it died.
    store.insert_usage(&[settlement("dead-0", "req-d")]).await.unwrap();
    drop(dead); // its lock goes with it, as with a killed process; the file stays

    let replayed = replay(&at, &*store).await.unwrap();
    assert_eq!(replayed, Replayed { journals: 2, records: 3, unreadable: 0 });
    assert_eq!(stored(&*store, "req-d").await, vec!["dead-0", "dead-1", "dead-2"]);
    assert!(stored(&*store, "req-l").await.is_empty(), "a live process's journal is its own");
    assert_eq!(files(&at, "journal"), 2, "the replayed journal is removed, the live one kept");
    assert_eq!(replay(&at, &*store).await.unwrap(), Replayed::default());
    assert_eq!(live.len() as usize + HEADER, std::fs::metadata(&live.paths[0]).unwrap().len() as usize);
}

#[tokio::test]
async fn a_torn_tail_is_ignored_and_what_precedes_it_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let at = dir.path().join("usage");
    let path = dead_journal(&at, &["a", "b"], "req-t");
    // A third frame cut short, as an OS crash mid-write leaves it (over the end mark).
    let third = frame(&settlement("c", "req-t"));
    let mut bytes = frames_of(&path);
    bytes.extend_from_slice(&third[..third.len() - 3]);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(decode(&bytes).torn_bytes, third.len() - 3);
    assert_eq!(replay(&at, &*store).await.unwrap().records, 2);
    assert_eq!(stored(&*store, "req-t").await, vec!["a", "b"]);
}

#[test]
fn a_frame_failing_its_checksum_ends_the_journal() {
    let mut bytes = frame(&settlement("a", "r"));
    let second = bytes.len();
    bytes.extend(frame(&settlement("b", "r")));
    bytes.extend(frame(&settlement("c", "r")));
    bytes[second + HEADER + 2] ^= 1;
    let frames = decode(&bytes);
    assert_eq!(frames.records.iter().map(|s| s.record.id.as_str()).collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(frames.torn_bytes, bytes.len() - second);
}

#[tokio::test]
async fn an_undecodable_frame_is_skipped_and_its_journal_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let at = dir.path().join("usage");
    let path = dead_journal(&at, &["a"], "req-u");
    // A frame with a valid checksum whose payload is not a record (another version's).
    let payload = br#"{"not":"a record"}"#;
    let mut bytes = frames_of(&path);
    bytes.extend((payload.len() as u32).to_le_bytes());
    bytes.extend(crc32fast::hash(payload).to_le_bytes());
    bytes.extend(payload);
    bytes.extend(encode(&settlement("b", "req-u")).unwrap());
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(replay(&at, &*store).await.unwrap(), Replayed { journals: 2, records: 2, unreadable: 1 });
    assert_eq!(stored(&*store, "req-u").await, vec!["a", "b"]);
    assert_eq!((files(&at, "journal"), files(&at, "unreadable")), (0, 1));
}

#[tokio::test]
async fn a_full_journal_makes_the_caller_wait_for_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let one = encode(&settlement("call-0", "req-f")).unwrap().len() as u64;
    let journal = UsageJournal::with_capacity(&dir.path().join("usage"), one + 10).unwrap();
    let rec = UsageRecorder::start(store.clone(), Arc::new(Metrics::new()), Duration::from_secs(1), Some(journal));
    assert!(rec.record(record("call-0", "req-f"), None, Urgency::Awaited).is_none());
    let wait = rec.record(record("call-1", "req-f"), None, Urgency::Awaited).expect("the journal is full");
    wait.await.expect("committed");
    rec.flush().await;
    assert_eq!(stored(&*store, "req-f").await, vec!["call-0", "call-1"]);
    assert_eq!(rec.journal().unwrap().len(), 0);
}

#[test]
fn costs_come_back_from_the_journal_to_the_last_bit() {
    // Exact money: every f64 must decode to the same bits (serde_json's `float_roundtrip`).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut s = settlement(&format!("c{i}"), "r");
        s.record.cost_usd = (x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((i % 9) - 6);
        s.record.output_tokens_per_s = Some(f64::from_bits(x & 0x7FEF_FFFF_FFFF_FFFF));
        let back = decode(&encode(&s).unwrap()).records.pop().expect("decoded");
        assert_eq!(back.record.cost_usd.to_bits(), s.record.cost_usd.to_bits(), "{}", s.record.cost_usd);
        assert_eq!(back.record.output_tokens_per_s.map(f64::to_bits), s.record.output_tokens_per_s.map(f64::to_bits));
        assert_eq!(back, s);
    }
}

#[tokio::test]
async fn a_running_process_replays_the_journal_of_one_that_died_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let at = dir.path().join("usage");
    let ours = UsageJournal::create(&at).unwrap().adopting_every(Duration::from_millis(20));
    let rec = UsageRecorder::start(store.clone(), Arc::new(Metrics::new()), Duration::from_secs(1), Some(ours));
    // Another process (a worker) journals two calls and dies.
    dead_journal(&at, &["w-0", "w-1"], "req-w");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored(&*store, "req-w").await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never replayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored(&*store, "req-w").await, vec!["w-0", "w-1"]);
    assert!(rec.journal().is_some());
}

#[test]
fn under_steady_load_the_two_files_take_turns_and_each_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let frame = encode(&settlement("c-000", "r")).unwrap().len() as u64;
    let journal = UsageJournal::create(&dir.path().join("usage")).unwrap().switching_at(1);
    // One record is always written and not yet committed: a single file would never empty.
    let mut pending = vec![journal.append(&settlement("c-000", "r")).unwrap()];
    for i in 1..200 {
        pending.push(journal.append(&settlement(&format!("c-{i:03}"), "r")).expect("room"));
        let mut counts = [0; 2];
        counts[pending.remove(0).index()] += 1;
        journal.committed(counts);
        assert!(journal.len() <= 2 * frame, "after {i} records the journal holds {} bytes", journal.len());
    }
}

#[tokio::test]
async fn an_emptied_file_is_reused_in_place_and_its_earlier_frames_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let at = dir.path().join("usage");
    let journal = UsageJournal::create(&at).unwrap();
    for i in 0..3 {
        assert_eq!(journal.append(&settlement(&format!("old-{i}"), "req-old")), Some(Segment(0)));
    }
    let size = std::fs::metadata(&journal.paths[0]).unwrap().len();
    journal.committed([3, 0]);
    assert_eq!(journal.len(), 0);
    assert_eq!(std::fs::metadata(&journal.paths[0]).unwrap().len(), size, "emptied in place, not truncated");
    assert!(decode(&std::fs::read(&journal.paths[0]).unwrap()).records.is_empty());
    // A shorter round over the longer one, then the process dies with it outstanding.
    assert_eq!(journal.append(&settlement("new-0", "req-new")), Some(Segment(0)));
    let path = journal.paths[0].clone();
    drop(journal);
    let frames = decode(&std::fs::read(&path).unwrap());
    assert_eq!(frames.records.iter().map(|s| s.record.id.as_str()).collect::<Vec<_>>(), vec!["new-0"]);
    assert_eq!(frames.torn_bytes, 0, "an end mark is no torn write");
    assert_eq!(replay(&at, &*store).await.unwrap().records, 1);
    assert_eq!(stored(&*store, "req-new").await, vec!["new-0"]);
    assert!(stored(&*store, "req-old").await.is_empty(), "the earlier round's frames lie past the end mark");
}

#[test]
fn a_file_that_grew_while_storage_lagged_is_truncated_when_it_empties() {
    let dir = tempfile::tempdir().unwrap();
    let frame_len = frame(&settlement("c-0", "r")).len() as u64;
    let journal = UsageJournal::create(&dir.path().join("usage")).unwrap().switching_at(frame_len);
    // The first file is past the switch size: appends move to the second, which then grows
    // past it while the first still waits for storage.
    assert_eq!(journal.append(&settlement("c-0", "r")), Some(Segment(0)));
    for i in 1..4 {
        assert_eq!(journal.append(&settlement(&format!("c-{i}"), "r")), Some(Segment(1)));
    }
    journal.committed([0, 3]);
    assert_eq!(std::fs::metadata(&journal.paths[1]).unwrap().len(), 0, "past twice the switch size: truncated");
    journal.committed([1, 0]);
    assert_eq!(std::fs::metadata(&journal.paths[0]).unwrap().len(), frame_len + HEADER as u64, "kept in place");
    assert_eq!(journal.len(), 0);
}
