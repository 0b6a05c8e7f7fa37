//! The DataLoader scheduler: when a request's batched fetches run.
//!
//! Why not async-graphql's own spawner: see [`LoaderTasks`]. In short, a
//! fetch that starts on a timer races the execution, so a page of 100 users
//! became several batches; here a fetch starts only once the execution is
//! idle, so a page costs the same number of statements whatever its size
//! (`tests/statements.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::task::ArcWake;
use tokio::sync::mpsc;

/// Runs a request's DataLoader fetches on the request's own task, and only
/// when the execution is waiting on them.
///
/// async-graphql's loader waits a short delay after the first key of a batch,
/// then fetches whatever keys have arrived. On a spawned task that timer races
/// the executor, and the executor pauses itself now and then (its list
/// resolution yields to stay fair), so on a busy or unoptimized server a page
/// of 100 users became several batches. Here a fetch starts only when the
/// execution is idle, that is after it registered every key it could, so a
/// page costs the same number of statements whatever its size.
pub struct LoaderTasks {
    queue: mpsc::UnboundedReceiver<BoxFuture<'static, ()>>,
}

impl LoaderTasks {
    /// The fetches the request's DataLoader sends to `queue`.
    pub fn new(queue: mpsc::UnboundedReceiver<BoxFuture<'static, ()>>) -> Self {
        LoaderTasks { queue }
    }

    /// Drives `work` (the execution) and the loader fetches it triggers
    /// together; returns when `work` is done.
    pub async fn run_alongside<F: Future>(mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        let mut running = FuturesUnordered::new();
        std::future::poll_fn(|cx| {
            let progress = Arc::new(SelfWake {
                woken: AtomicBool::new(false),
                task: cx.waker().clone(),
            });
            let waker = futures_util::task::waker(progress.clone());
            let mut work_cx = std::task::Context::from_waker(&waker);
            if let Poll::Ready(output) = work.as_mut().poll(&mut work_cx) {
                return Poll::Ready(output);
            }
            while let Poll::Ready(Some(task)) = self.queue.poll_recv(cx) {
                running.push(task);
            }
            // Woken during its own poll: it paused with more to do (and more
            // keys to register), so the loaders wait for the next round.
            if !progress.woken.load(Ordering::Acquire) {
                while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
            }
            Poll::Pending
        })
        .await
    }
}

/// The waker the execution sees: notes that it was woken, then wakes the task.
struct SelfWake {
    woken: AtomicBool,
    task: Waker,
}

impl ArcWake for SelfWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Release);
        arc_self.task.wake_by_ref();
    }
}
