//! What a resolver can reach: the pool and settings (schema-wide), and the
//! caller and DataLoader (per request, see [`RequestContext`]).

use std::sync::Arc;

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;
use futures_util::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::loader_tasks::LoaderTasks;
use super::loaders::Loaders;
use crate::config::Settings;
use crate::domain::actor::CurrentUser;
use crate::domain::validation::Reason;
use crate::domain::{Actor, Mode};
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
        (context, LoaderTasks::new(rx))
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
    /// The `reason` argument of an operation that removes access or data,
    /// held to the deployment's [`crate::config::ReasonPolicy`]
    /// (`MEMBERDESK_REQUIRE_REASON`); in `mode` [`Mode::Preview`] none is needed.
    fn reason(&self, given: Option<String>, mode: Mode) -> Result<Reason, AppError> {
        Reason::given(given.as_deref(), self.settings().reason_policy, mode)
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

/// A list through the DataLoader, each row wrapped as the API shows it; a
/// key that owns nothing is an empty list.
pub async fn load_list<K, R, T>(
    ctx: &Context<'_>,
    key: K,
    wrap: impl FnMut(R) -> T,
) -> Result<Vec<T>, AppError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Loaders:
        async_graphql::dataloader::Loader<K, Value = Vec<R>, Error = super::loaders::LoadError>,
{
    Ok(wrap_all(load(ctx, key).await?.unwrap_or_default(), wrap))
}

/// Rows as the API shows them, each wrapped (`Group`, `Permission`, …).
pub fn wrap_all<R, T>(rows: Vec<R>, wrap: impl FnMut(R) -> T) -> Vec<T> {
    rows.into_iter().map(wrap).collect()
}

/// A count through the DataLoader; zero for a key with no rows.
pub async fn load_count<K>(ctx: &Context<'_>, key: K) -> Result<i64, AppError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Loaders: async_graphql::dataloader::Loader<K, Value = i64, Error = super::loaders::LoadError>,
{
    Ok(load(ctx, key).await?.unwrap_or(0))
}
