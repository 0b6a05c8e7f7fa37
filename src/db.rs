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

fn options(url: &str) -> Result<PgConnectOptions, StartupError> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| StartupError::BadUrl(e.to_string()))?;
    // A runaway statement must not hold a connection forever.
    Ok(opts.options([("statement_timeout", "30s")]))
}

/// Opens a pool; with `create_if_missing`, creates the database first.
pub async fn connect(url: &str, create_if_missing: bool) -> Result<PgPool, StartupError> {
    let unreachable = |e: sqlx::Error| StartupError::Unreachable {
        target: describe(url),
        reason: short_reason(&e),
    };
    if create_if_missing && !Postgres::database_exists(url).await.map_err(unreachable)? {
        Postgres::create_database(url).await.map_err(unreachable)?;
        tracing::info!(database = %describe(url), "created database");
    }
    let pool_size = std::env::var("MEMBERDESK_DB_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options(url)?)
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
