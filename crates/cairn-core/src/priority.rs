//! CPU priority for background threads: work that must never slow a request (writing and
//! exporting spans) runs on threads at a lower priority, so on a busy machine the scheduler
//! runs request threads first; with room to spare they run at full speed.

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
