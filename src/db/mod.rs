//! Connecting to PostgreSQL and applying the embedded migrations.

mod startup_error;

pub use startup_error::{StartupError, describe};

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

/// The embedded migrations, without sqlx's own lock: [`migrate`] takes a
/// transaction-scoped one instead.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_locking(false);
    migrator
}

/// Key of the advisory lock that serializes instances applying migrations.
const MIGRATION_LOCK_KEY: i64 = 7263002;

/// How the pool treats the database: bounded everywhere, so a stuck database
/// or a runaway statement gives a prompt error instead of a hang.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels any statement (lock waits included) running longer.
    /// `None` sends no timeout, leaving the one set on the role, database or
    /// connection pooler: PgBouncer refuses it as a startup option.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl PoolSettings {
    /// The defaults, overridden by `MEMBERDESK_DB_POOL_SIZE` and
    /// `MEMBERDESK_STATEMENT_TIMEOUT_SECONDS` (0: leave it to the server) where set.
    pub fn from_env() -> Self {
        let mut settings = PoolSettings::default();
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(size) = var("MEMBERDESK_DB_POOL_SIZE") {
            settings.max_connections = size.clamp(1, u32::MAX as u64) as u32;
        }
        if let Some(seconds) = var("MEMBERDESK_STATEMENT_TIMEOUT_SECONDS") {
            settings.statement_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        settings
    }
}

fn options(url: &str, settings: &PoolSettings) -> Result<PgConnectOptions, StartupError> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| StartupError::BadUrl(e.to_string()))?;
    Ok(match settings.statement_timeout {
        Some(timeout) => {
            let timeout = format!("{}ms", timeout.as_millis());
            opts.options([("statement_timeout", timeout.as_str())])
        }
        None => opts,
    })
}

/// Opens a pool configured from the environment; with `create_if_missing`,
/// creates the database first.
pub async fn connect(url: &str, create_if_missing: bool) -> Result<PgPool, StartupError> {
    connect_with(url, create_if_missing, &PoolSettings::from_env()).await
}

pub async fn connect_with(
    url: &str,
    create_if_missing: bool,
    settings: &PoolSettings,
) -> Result<PgPool, StartupError> {
    let failed = |e: sqlx::Error| StartupError::connecting(url, &e);
    if create_if_missing && !Postgres::database_exists(url).await.map_err(failed)? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = %describe(url), "created database"),
            // Another instance starting at the same moment created it first
            // (PostgreSQL then answers "already exists" or, when the two
            // creations overlap, a unique violation in its catalog).
            Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(error = %e, "database created by another instance");
            }
            Err(e) => return Err(failed(e)),
        }
    }
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options(url, settings)?)
        .await
        .map_err(failed)
}

/// Applies pending migrations, all in one transaction that first takes a
/// transaction-scoped advisory lock.
///
/// Why not sqlx's own locking: it takes a session-level lock and releases it
/// at the end, and behind a transaction-pooling PgBouncer those two statements
/// can run on different server connections, leaving the lock held for ever by
/// a connection nobody owns; the next instance to start would then wait on it.
/// A transaction-scoped lock ends with its transaction wherever it ran, and one
/// transaction also means a failed migration leaves nothing half-applied.
pub async fn migrate(pool: &PgPool, url: &str) -> Result<(), StartupError> {
    let failed = |reason: String| StartupError::Migration {
        target: describe(url),
        reason,
    };
    let db_failed = |e: sqlx::Error| StartupError::migrating(url, &e);
    let mut tx = pool.begin().await.map_err(db_failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(db_failed)?;
    // `run_direct` is `run` on a connection; sqlx keeps it for callers whose
    // future must be `Send` (a spawned task), which `run` cannot be here.
    migrator()
        .run_direct(None, &mut *tx, false)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => db_failed(e),
            other => failed(other.to_string()),
        })?;
    tx.commit().await.map_err(db_failed)
}
