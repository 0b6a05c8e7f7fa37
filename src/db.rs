//! Connecting to PostgreSQL and applying the embedded migrations.

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

/// SQLSTATEs of a prepared statement created twice or not found.
const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
const UNKNOWN_PREPARED_STATEMENT: &str = "26000";

/// Key of the advisory lock that serializes instances applying migrations.
const MIGRATION_LOCK_KEY: i64 = 7263002;

/// A startup failure, worded for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error(
        "cannot reach PostgreSQL at {target}: {reason}. Start PostgreSQL or set DATABASE_URL (e.g. postgres://user@127.0.0.1:5432/memberdesk)"
    )]
    Unreachable { target: String, reason: String },
    /// What PgBouncer answers to startup parameters it does not pass on.
    #[error(
        "{target} refused a connection option: {reason}. Behind PgBouncer, set MEMBERDESK_STATEMENT_TIMEOUT_SECONDS=0 and set statement_timeout in PgBouncer's connect_query or on the role, and list extra_float_digits in its ignore_startup_parameters"
    )]
    OptionRefused { target: String, reason: String },
    /// What a pooler in transaction mode that does not carry prepared
    /// statements between server connections leads to.
    #[error(
        "{target} lost track of a prepared statement: {reason}. This is a connection pooler in transaction mode without prepared statement support; use PgBouncer 1.21 or later with max_prepared_statements > 0"
    )]
    PreparedStatementsUnsupported { target: String, reason: String },
    #[error("applying migrations to {target} failed: {reason}")]
    Migration { target: String, reason: String },
}

/// Where a URL points, without its password, for messages and logs.
pub fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(opts) => format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("(default database)")
        ),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

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
    let unreachable = |e: sqlx::Error| {
        pooler_error(url, &e).unwrap_or_else(|| StartupError::Unreachable {
            target: describe(url),
            reason: short_reason(&e),
        })
    };
    if create_if_missing && !Postgres::database_exists(url).await.map_err(unreachable)? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = %describe(url), "created database"),
            // Another instance starting at the same moment created it first
            // (PostgreSQL then answers "already exists" or, when the two
            // creations overlap, a unique violation in its catalog).
            Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(error = %e, "database created by another instance");
            }
            Err(e) => return Err(unreachable(e)),
        }
    }
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options(url, settings)?)
        .await
        .map_err(unreachable)
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
    let db_failed = |e: sqlx::Error| pooler_error(url, &e).unwrap_or_else(|| failed(short_reason(&e)));
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

/// The two ways a connection pooler in front of PostgreSQL shows itself at
/// startup, named so the operator knows what to change.
fn pooler_error(url: &str, err: &sqlx::Error) -> Option<StartupError> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    let (target, reason) = (describe(url), db.message().to_owned());
    match db.code().as_deref() {
        Some(DUPLICATE_PREPARED_STATEMENT | UNKNOWN_PREPARED_STATEMENT) => {
            Some(StartupError::PreparedStatementsUnsupported { target, reason })
        }
        _ if reason.starts_with("unsupported startup parameter") => {
            Some(StartupError::OptionRefused { target, reason })
        }
        _ => None,
    }
}

fn short_reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}
