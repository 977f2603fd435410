//! The log's writer: lines reach stderr from a thread of their own, through a bounded queue.
//!
//! A write to stderr blocks whenever its reader (a pipe to a log shipper, a container runtime,
//! journald under its rate limit) falls behind. Written on the thread that logged, that froze
//! every request once the pipe's buffer (64 KiB on Linux) filled: each request logs an access
//! line. Here the logging thread only queues its line; a full queue drops the line and counts it
//! (`cairn_log_lines_dropped_total`), as the span queue does, so the log can never stall a
//! request. The writer thread batches what has queued into one write.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tracing_subscriber::fmt::MakeWriter;

/// Lines the queue holds before it drops (at a few hundred bytes each, a few MiB).
pub(crate) const QUEUE_LINES: usize = 16_384;

/// How long a [`LogGuard`] waits, when dropped, for the queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Lines dropped by the process's log queue (the log is global, so is its count).
static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The process's count of log lines dropped because the queue was full.
pub(crate) fn lines_dropped() -> Counter {
    DROPPED.clone()
}

/// What the writer thread is handed.
enum Msg {
    /// One formatted event.
    Line(Vec<u8>),
    /// Write out everything queued before this, then answer.
    Flush(mpsc::Sender<()>),
}

/// The logging side: queues each event's bytes without ever blocking.
pub(crate) struct QueuedWriter {
    tx: SyncSender<Msg>,
    dropped: Counter,
}

impl Write for &QueuedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tx.try_send(Msg::Line(buf.to_vec())).is_err() {
            self.dropped.inc();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueuedWriter {
    type Writer = &'a QueuedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Writes out the queued lines when dropped (waiting at most [`FLUSH_WAIT`]): hold it until
/// the process is done logging.
#[must_use = "dropping the guard ends the wait for queued log lines"]
pub struct LogGuard {
    /// None when lines are written unqueued (the thread could not start).
    tx: Option<SyncSender<Msg>>,
}

impl LogGuard {
    /// A guard with nothing to wait for.
    pub(crate) fn unqueued() -> Self {
        Self { tx: None }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let deadline = Instant::now() + FLUSH_WAIT;
        let (ack, acked) = mpsc::channel();
        let mut msg = Msg::Flush(ack);
        // The queue may be full behind a stalled reader: retry until the deadline rather than
        // block on it.
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = acked.recv_timeout(wait);
    }
}

/// Starts the writer thread over `sink` with room for `capacity` lines; drops are counted in
/// `dropped`. Fails only when the thread cannot start.
pub(crate) fn start(
    sink: impl Write + Send + 'static,
    capacity: usize,
    dropped: Counter,
) -> io::Result<(QueuedWriter, LogGuard)> {
    let (tx, rx) = mpsc::sync_channel(capacity);
    std::thread::Builder::new().name("cairn-log".into()).spawn(move || drain(rx, sink))?;
    Ok((QueuedWriter { tx: tx.clone(), dropped }, LogGuard { tx: Some(tx) }))
}

/// The writer thread: writes each run of queued lines with one flush, until every sender is
/// gone. A failing sink loses lines; there is nowhere left to report that.
fn drain(rx: Receiver<Msg>, sink: impl Write) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, sink);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        let _ = out.flush();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex};

    use super::*;

    /// A sink that blocks every write until opened, like a pipe nobody reads.
    #[derive(Clone, Default)]
    struct Gate {
        state: Arc<(Mutex<GateState>, Condvar)>,
    }

    #[derive(Default)]
    struct GateState {
        open: bool,
        /// A write has reached the gate (and waits there unless it is open).
        reached: bool,
        written: Vec<u8>,
    }

    impl Gate {
        fn open(&self) {
            self.state.0.lock().unwrap().open = true;
            self.state.1.notify_all();
        }

        fn wait_reached(&self) {
            let (lock, changed) = &*self.state;
            drop(changed.wait_while(lock.lock().unwrap(), |s| !s.reached).unwrap());
        }

        fn written(&self) -> String {
            String::from_utf8(self.state.0.lock().unwrap().written.clone()).unwrap()
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (lock, changed) = &*self.state;
            let mut state = lock.lock().unwrap();
            state.reached = true;
            changed.notify_all();
            let mut state = changed.wait_while(state, |s| !s.open).unwrap();
            state.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_reader_costs_dropped_lines_never_a_blocked_caller() {
        let gate = Gate::default();
        let dropped = Counter::default();
        let (writer, guard) = start(gate.clone(), 8, dropped.clone()).unwrap();
        let log = |line: String| (&mut writer.make_writer()).write_all(line.as_bytes()).unwrap();
        log("line 0\n".into());
        gate.wait_reached();
        // The writer thread is stuck in the sink with line 0: the queue keeps the next 8 and
        // every later write returns at once, dropped and counted.
        for i in 1..100 {
            log(format!("line {i}\n"));
        }
        assert_eq!(dropped.get(), 100 - 9);
        gate.open();
        drop(guard);
        let expected: String = (0..9).map(|i| format!("line {i}\n")).collect();
        assert_eq!(gate.written(), expected);
    }

    #[test]
    fn the_guard_writes_out_what_was_queued() {
        let gate = Gate::default();
        gate.open();
        let dropped = Counter::default();
        let (writer, guard) = start(gate.clone(), QUEUE_LINES, dropped.clone()).unwrap();
        for i in 0..1_000 {
            (&mut writer.make_writer()).write_all(format!("{i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        assert_eq!(gate.written().lines().count(), 1_000);
        assert_eq!(dropped.get(), 0);
    }
}
