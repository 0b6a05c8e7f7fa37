//! What a resolver can reach: the pool and settings (schema-wide), and the
//! caller and DataLoader (per request, see [`RequestContext`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::task::ArcWake;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::loaders::Loaders;
use crate::config::Settings;
use crate::domain::Actor;
use crate::domain::actor::CurrentUser;
use crate::error::AppError;

/// Who sent the request, as the `Authorization` header says.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// A token that is unknown, expired, revoked, or whose user is inactive.
    Rejected,
    User(CurrentUser),
}

/// Per-request data, built by the HTTP layer for every request.
pub struct RequestContext {
    pub caller: Caller,
    pub client_address: Option<String>,
    /// Created per request: a DataLoader shared across requests would share
    /// its batches (and any cache) across users.
    pub loader: DataLoader<Loaders>,
}

impl RequestContext {
    /// The context, and the [`LoaderTasks`] the request must run alongside.
    pub fn new(
        pool: PgPool,
        caller: Caller,
        client_address: Option<String>,
    ) -> (Self, LoaderTasks) {
        let (tx, rx) = mpsc::unbounded_channel();
        let spawner = move |task: BoxFuture<'static, ()>| {
            // Fails only once the request is over and nobody awaits the result.
            let _ = tx.send(task);
        };
        let context = RequestContext {
            caller,
            client_address,
            loader: DataLoader::new(Loaders::new(pool), spawner),
        };
        (context, LoaderTasks { queue: rx })
    }
}

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

pub trait ContextExt {
    fn pool(&self) -> &PgPool;
    fn settings(&self) -> &Settings;
    fn request(&self) -> &RequestContext;
    fn loader(&self) -> &DataLoader<Loaders> {
        &self.request().loader
    }
    /// The authenticated caller, or `UNAUTHENTICATED`.
    fn current_user(&self) -> Result<&CurrentUser, AppError> {
        match &self.request().caller {
            Caller::User(user) => Ok(user),
            Caller::Anonymous | Caller::Rejected => Err(AppError::Unauthenticated),
        }
    }
    fn actor(&self) -> Result<Actor, AppError> {
        self.current_user().map(|user| Actor::User(user.clone()))
    }
}

impl ContextExt for Context<'_> {
    fn pool(&self) -> &PgPool {
        self.data_unchecked::<PgPool>()
    }
    fn settings(&self) -> &Settings {
        self.data_unchecked::<Arc<Settings>>()
    }
    fn request(&self) -> &RequestContext {
        self.data_unchecked::<RequestContext>()
    }
}

/// Loads through the request's DataLoader, turning a database failure into
/// the one error type.
pub async fn load<K>(
    ctx: &Context<'_>,
    key: K,
) -> Result<Option<<Loaders as async_graphql::dataloader::Loader<K>>::Value>, AppError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Loaders: async_graphql::dataloader::Loader<K, Error = super::loaders::LoadError>,
{
    ctx.loader().load_one(key).await.map_err(AppError::internal)
}
