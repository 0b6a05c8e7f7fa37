//! Connecting to PostgreSQL and applying the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A startup failure, worded for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error(
        "cannot reach PostgreSQL at {target}: {reason}. Start PostgreSQL or set DATABASE_URL (e.g. postgres://user@127.0.0.1:5432/memberdesk)"
    )]
    Unreachable { target: String, reason: String },
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
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

impl PoolSettings {
    /// The defaults, overridden by `MEMBERDESK_DB_POOL_SIZE` and
    /// `MEMBERDESK_STATEMENT_TIMEOUT_SECONDS` where set.
    pub fn from_env() -> Self {
        let mut settings = PoolSettings::default();
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(size) = var("MEMBERDESK_DB_POOL_SIZE") {
            settings.max_connections = size.clamp(1, u32::MAX as u64) as u32;
        }
        if let Some(seconds) = var("MEMBERDESK_STATEMENT_TIMEOUT_SECONDS") {
            settings.statement_timeout = Duration::from_secs(seconds.max(1));
        }
        settings
    }
}

fn options(url: &str, settings: &PoolSettings) -> Result<PgConnectOptions, StartupError> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| StartupError::BadUrl(e.to_string()))?;
    let timeout = format!("{}ms", settings.statement_timeout.as_millis());
    Ok(opts.options([("statement_timeout", timeout.as_str())]))
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
    let unreachable = |e: sqlx::Error| StartupError::Unreachable {
        target: describe(url),
        reason: short_reason(&e),
    };
    if create_if_missing && !Postgres::database_exists(url).await.map_err(unreachable)? {
        Postgres::create_database(url).await.map_err(unreachable)?;
        tracing::info!(database = %describe(url), "created database");
    }
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options(url, settings)?)
        .await
        .map_err(unreachable)
}

pub async fn migrate(pool: &PgPool, url: &str) -> Result<(), StartupError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StartupError::Migration {
            target: describe(url),
            reason: e.to_string(),
        })
}

fn short_reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}
