//! CPU priority for background threads: work that must never slow a request (writing and
//! exporting spans) runs on threads the scheduler runs only when nothing else wants the CPU,
//! so on a busy machine request threads run first; with room to spare background work runs at
//! full speed. Such work gets a thread of its own with a single-threaded Tokio runtime
//! (`spawn_background`), so it never holds one of the request runtime's few worker threads
//! either.
//!
//! On Linux the thread is put in the `SCHED_IDLE` class rather than merely niced: under the
//! fair scheduler (EEVDF) a niced thread that is running keeps its CPU until its slice ends
//! (about a millisecond and a half on two cores) before a request thread that just woke gets
//! it, which is a request's whole latency budget; a waking normal thread always preempts a
//! `SCHED_IDLE` one at once. When the machine is saturated, background work then waits: a
//! span queue that fills drops spans and counts them, and never slows a request.

use std::future::Future;

/// How much lower than the process background threads run (`nice` steps) where the idle class
/// is refused.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority: to `SCHED_IDLE` on Linux (falling back to
/// `BACKGROUND_NICE` steps of nice if refused). Both belong to the thread, and threads it
/// creates inherit them; elsewhere nothing changes. Returns whether it was lowered.
pub fn lower_this_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: both calls read only their arguments (`param` lives across the call) and
        // apply to the calling thread (id 0).
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0
                || libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Runs `work` to completion on a new thread named `name`, at background priority, with a
/// single-threaded Tokio runtime of its own. Threads it starts (SQLite's connection threads)
/// inherit the priority. An error means nothing started (`work` is dropped).
pub fn spawn_background<F>(name: &str, work: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        if !lower_this_thread() {
            tracing::debug!("could not lower a background thread's priority");
        }
        runtime.block_on(work);
    })?;
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn background_threads_and_their_children_run_in_the_idle_class() {
        // SAFETY: sched_getscheduler reads nothing but the thread id (0: the caller).
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_background("test-background", async move {
            let child = std::thread::spawn(policy).join().unwrap();
            tx.send((policy(), child)).unwrap();
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), (libc::SCHED_IDLE, libc::SCHED_IDLE));
        assert_eq!(policy(), libc::SCHED_OTHER, "the caller's own class is unchanged");
    }
}
