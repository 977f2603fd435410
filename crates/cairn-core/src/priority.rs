//! CPU priority for background threads: work that must never slow a request (writing and
//! exporting spans) runs on threads at a lower priority, so on a busy machine the scheduler
//! runs request threads first; with room to spare they run at full speed. Such work gets a
//! thread of its own with a single-threaded Tokio runtime (`spawn_background`), so it never
//! holds one of the request runtime's few worker threads either.

use std::future::Future;

/// How much lower than the process background threads run (`nice` steps).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority by `BACKGROUND_NICE`. On Linux a nice value
/// belongs to a thread (`setpriority(PRIO_PROCESS, 0, ..)` sets the caller's) and threads it
/// creates inherit it; elsewhere nothing changes. Returns whether it was lowered.
pub fn lower_this_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority reads only its integer arguments and touches no memory of ours.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) == 0 }
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
