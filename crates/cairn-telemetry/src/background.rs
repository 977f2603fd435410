//! Background work that must never slow a request (writing spans, exporting them): a thread of
//! its own with a single-threaded Tokio runtime, at a lower CPU priority
//! (`cairn_core::priority`). A span batch's encoding then never holds one of the request
//! runtime's few worker threads, and on a busy machine the scheduler runs request threads
//! first; when the machine has room the thread runs at full speed.

use std::future::Future;

/// Runs `work` to completion on a new background thread named `name`.
pub(crate) fn spawn<F>(name: &str, work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, name, "no runtime for a background thread; running on the server's");
            tokio::spawn(work);
            return;
        }
    };
    let started = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        if !cairn_core::priority::lower_this_thread() {
            tracing::debug!("could not lower a background thread's priority");
        }
        runtime.block_on(work);
    });
    if let Err(e) = started {
        // The queue's receiver is gone with the closure: submits count as drops, flushes end.
        tracing::error!(error = %e, name, "cannot start a background thread; its spans are dropped");
    }
}
