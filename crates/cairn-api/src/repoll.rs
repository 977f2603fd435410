//! `Repoll`: runs a connection's future so that a wake it gives itself while being polled
//! polls it again at once, instead of going back through Tokio's scheduler.
//!
//! Why: hyper wakes a connection's own task on every request with a body (the handler taking
//! the body wakes the body's sender, which is the same task). Tokio treats a task woken during
//! its own poll as one that yielded: it queues it and wakes a parked sibling worker to steal
//! it. The sibling finds nothing worth stealing and sleeps again, so every request paid a
//! second task poll through the scheduler and two context switches on another core (a perf
//! profile of a cache hit: about one sibling wake-up per request; see `docs/BENCHMARKS.md`).
//!
//! Wakes from elsewhere (another thread, a timer, or anything after the poll) go to the task's
//! own waker as before. A future that keeps waking itself is polled again at most
//! `REPOLLS` times, and not at all once the task's cooperative budget is spent: then it
//! yields to the scheduler as it would have without this wrapper.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// Polls in one scheduler turn at most, before yielding like any task.
const REPOLLS: usize = 4;

/// The inner future is being polled (a wake now is noted, not forwarded).
const POLLING: u8 = 1;
/// A wake arrived while it was being polled.
const WOKEN: u8 = 2;

/// What the inner future wakes: notes wakes during a poll, forwards the others.
struct Signal {
    task: AtomicWaker,
    state: AtomicU8,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // One atomic read-modify-write against the poller's own: either it sees `WOKEN` when
        // its poll ends, or this sees that no poll is running and wakes the task.
        if self.state.fetch_or(WOKEN, Ordering::AcqRel) & POLLING == 0 {
            self.task.wake();
        }
    }
}

/// A future polled again at once when it wakes itself during a poll (see the module docs).
pub(crate) struct Repoll<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

impl<F: Future> Repoll<F> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: F) -> Self {
        let signal = Arc::new(Signal { task: AtomicWaker::new(), state: AtomicU8::new(0) });
        let waker = Waker::from(signal.clone());
        Self { inner: Box::pin(inner), signal, waker }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.signal.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..REPOLLS {
            // A wake since the last poll was forwarded already; only this poll's count.
            this.signal.state.store(POLLING, Ordering::Release);
            let polled = this.inner.as_mut().poll(&mut inner_cx);
            let state = this.signal.state.swap(0, Ordering::AcqRel);
            if polled.is_ready() || state & WOKEN == 0 {
                return polled;
            }
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        // Still waking itself: let the scheduler run others first, as it would have.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts the wakes the task (the outer waker) receives.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakes itself on each of its first `selfish` polls, then is ready.
    struct WakesItself {
        selfish: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.selfish {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn outer() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        (count, waker)
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again_in_the_same_turn() {
        let (count, waker) = outer();
        let mut f = Repoll::new(WakesItself { selfish: 2, polls: 0 });
        let polled = Pin::new(&mut f).poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "the task was never woken");
    }

    #[test]
    fn one_that_keeps_waking_itself_yields_to_the_scheduler() {
        let (count, waker) = outer();
        let mut f = Repoll::new(WakesItself { selfish: usize::MAX, polls: 0 });
        assert!(Pin::new(&mut f).poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(f.inner.polls, REPOLLS);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once, to be polled later");
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        /// Pending until `ready` is set; keeps the waker it was polled with.
        struct Later {
            ready: bool,
            waker: Option<Waker>,
        }
        impl Future for Later {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                if self.ready {
                    return Poll::Ready(());
                }
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
        let (count, waker) = outer();
        let mut f = Repoll::new(Later { ready: false, waker: None });
        assert!(Pin::new(&mut f).poll(&mut Context::from_waker(&waker)).is_pending());
        let stored = f.inner.waker.take().expect("the future kept a waker");
        std::thread::spawn(move || stored.wake()).join().expect("the waking thread ran");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        f.inner.ready = true;
        assert_eq!(Pin::new(&mut f).poll(&mut Context::from_waker(&waker)), Poll::Ready(()));
    }
}
