//! Connecting to PostgreSQL and applying the embedded migrations.

mod startup_error;
mod url_check;
mod username_keys;

pub use startup_error::{Failure, StartupError, describe};
pub use username_keys::grandfathered_key;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::whole_number;

/// The embedded migrations, without sqlx's own lock: [`migrate`] takes a
/// transaction-scoped one instead.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_locking(false);
    migrator
}

/// Key of the advisory lock that serializes instances applying migrations.
const MIGRATION_LOCK_KEY: i64 = 7263002;

/// The longest statement timeout PostgreSQL accepts: `i32::MAX` milliseconds.
const MAX_STATEMENT_TIMEOUT_SECONDS: u64 = i32::MAX as u64 / 1000;

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
    /// How long opening a connection may take before startup gives up: a
    /// port where something other than PostgreSQL listens otherwise hangs.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl PoolSettings {
    /// The defaults, overridden by `MEMBERDESK_DB_POOL_SIZE`,
    /// `MEMBERDESK_STATEMENT_TIMEOUT_SECONDS` (0: leave it to the server) and
    /// `MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS` where set; a bad value is an
    /// error naming the variable.
    pub fn from_env() -> Result<Self, String> {
        PoolSettings::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut settings = PoolSettings::default();
        if let Some(size) = whole_number(&lookup, "MEMBERDESK_DB_POOL_SIZE", 1)? {
            settings.max_connections = size as u32;
        }
        let timeout = "MEMBERDESK_STATEMENT_TIMEOUT_SECONDS";
        if let Some(seconds) = whole_number(&lookup, timeout, 0)? {
            // PostgreSQL takes the timeout in milliseconds, as a 32-bit number.
            if seconds > MAX_STATEMENT_TIMEOUT_SECONDS {
                return Err(format!(
                    "{timeout} must be at most {MAX_STATEMENT_TIMEOUT_SECONDS} (PostgreSQL's limit), not '{seconds}'"
                ));
            }
            settings.statement_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        if let Some(seconds) = whole_number(&lookup, "MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS", 1)? {
            settings.connect_timeout = Duration::from_secs(seconds);
        }
        Ok(settings)
    }
}

fn options(url: &str, settings: &PoolSettings) -> Result<PgConnectOptions, StartupError> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| StartupError::BadUrl(e.to_string()))?;
    let opts = plain_on_this_machine(url, opts);
    Ok(match settings.statement_timeout {
        Some(timeout) => {
            let timeout = format!("{}ms", timeout.as_millis());
            opts.options([("statement_timeout", timeout.as_str())])
        }
        None => opts,
    })
}

/// Without an `sslmode` in the URL or `PGSSLMODE`, a connection to this
/// machine (loopback or a Unix socket) is made without TLS instead of
/// libpq's default `prefer`.
///
/// TLS to yourself protects nothing, and it costs: sqlx leaves Nagle's
/// algorithm on, so a statement written as several TLS records waits for
/// the server's delayed ACK (40 ms for a bulk audit insert of 200 rows,
/// measured; reads lost 15 % of their throughput). An explicit `sslmode`
/// is always honoured.
fn plain_on_this_machine(url: &str, opts: PgConnectOptions) -> PgConnectOptions {
    let explicit = url.contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    let host = opts.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match !explicit && local {
        true => opts.ssl_mode(sqlx::postgres::PgSslMode::Disable),
        false => opts,
    }
}

/// Opens a pool configured from the environment; with `create_if_missing`,
/// creates the database first.
pub async fn connect(url: &str, create_if_missing: bool) -> Result<PgPool, StartupError> {
    let settings = PoolSettings::from_env().map_err(StartupError::BadSetting)?;
    connect_with(url, create_if_missing, &settings).await
}

pub async fn connect_with(
    url: &str,
    create_if_missing: bool,
    settings: &PoolSettings,
) -> Result<PgPool, StartupError> {
    url_check::check(url)?;
    let timeout = settings.connect_timeout;
    if create_if_missing && !within(url, timeout, Postgres::database_exists(url)).await? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = %describe(url), "created database"),
            // Another instance starting at the same moment created it first
            // (PostgreSQL then answers "already exists" or, when the two
            // creations overlap, a unique violation in its catalog).
            Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(error = %e, "database created by another instance");
            }
            Err(e) => return Err(StartupError::connecting(url, &e)),
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options(url, settings)?);
    within(url, timeout, pool).await
}

/// One step of connecting, given at most `timeout`: past it (or when the
/// pool gave up waiting for a first connection) the error says who answered.
async fn within<T>(
    url: &str,
    timeout: Duration,
    step: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StartupError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
            Err(StartupError::no_answer(url, timeout).await)
        }
        Ok(Err(e)) => Err(StartupError::connecting(url, &e)),
    }
}

/// What [`migrate`] did: the migrations it applied, by description, and how
/// many the database now has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub applied: Vec<String>,
    pub total: usize,
}

impl Migrated {
    /// One line for the operator: what was applied, or that nothing was.
    pub fn summary(&self, url: &str) -> String {
        let target = describe(url);
        match self.applied.len() {
            0 => format!("{target} is already up to date ({} migrations)", self.total),
            1 => format!("applied 1 migration to {target}: {}", self.applied[0]),
            n => format!(
                "applied {n} migrations to {target}: {}",
                self.applied.join(", ")
            ),
        }
    }
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
pub async fn migrate(pool: &PgPool, url: &str) -> Result<Migrated, StartupError> {
    let failed = |reason: String| StartupError::Migration {
        at: Failure {
            target: describe(url),
            reason,
        },
    };
    let db_failed = |e: sqlx::Error| StartupError::migrating(url, &e);
    let mut tx = pool.begin().await.map_err(db_failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(db_failed)?;
    let before = applied_versions(&mut tx).await.map_err(db_failed)?;
    let migrator = migrator();
    // `run_direct` is `run` on a connection; sqlx keeps it for callers whose
    // future must be `Send` (a spawned task), which `run` cannot be here.
    migrator
        .run_direct(None, &mut *tx, false)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => db_failed(e),
            other => failed(other.to_string()),
        })?;
    username_keys::recompute(&mut tx).await.map_err(db_failed)?;
    crate::store::audit::fill_folds(&mut tx)
        .await
        .map_err(db_failed)?;
    tx.commit().await.map_err(db_failed)?;
    let shipped: Vec<_> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    Ok(Migrated {
        applied: shipped
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| m.description.to_string())
            .collect(),
        total: shipped.len(),
    })
}

/// The versions of the migrations already applied (none on a new database,
/// which has no migrations table yet).
async fn applied_versions(conn: &mut sqlx::PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await?;
    if table.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(conn)
        .await
}

#[cfg(test)]
mod tests {

    #[test]
    fn tls_is_left_out_only_on_this_machine_and_only_when_not_asked_for() {
        use sqlx::postgres::PgSslMode;
        use std::mem::discriminant;
        let mode = |url: &str| {
            let opts = PgConnectOptions::from_str(url).unwrap();
            plain_on_this_machine(url, opts).get_ssl_mode()
        };
        for (url, expected) in [
            ("postgres://u@127.0.0.1/m", PgSslMode::Disable),
            ("postgres://u@localhost/m", PgSslMode::Disable),
            ("postgres://u@[::1]/m", PgSslMode::Disable),
            (
                "postgres://u@127.0.0.1/m?sslmode=require",
                PgSslMode::Require,
            ),
            ("postgres://u@db.example/m", PgSslMode::Prefer),
        ] {
            // PgSslMode has no PartialEq: compare the variants.
            let got = mode(url);
            assert_eq!(
                discriminant(&got),
                discriminant(&expected),
                "{url}: {got:?}"
            );
        }
    }

    use super::*;

    fn from(name: &'static str, value: &'static str) -> Result<PoolSettings, String> {
        PoolSettings::from_lookup(move |n| (n == name).then(|| value.to_owned()))
    }

    #[test]
    fn pool_settings_come_from_the_environment_and_bad_values_are_named() {
        let timeout = "MEMBERDESK_STATEMENT_TIMEOUT_SECONDS";
        assert_eq!(
            from(timeout, "7").unwrap().statement_timeout,
            Some(Duration::from_secs(7))
        );
        assert_eq!(from(timeout, "0").unwrap().statement_timeout, None);
        assert!(from(timeout, "off").unwrap_err().contains(timeout));
        assert!(from(timeout, "2147483").is_ok());
        assert!(from(timeout, "2147484").unwrap_err().contains(timeout));
        let size = "MEMBERDESK_DB_POOL_SIZE";
        assert_eq!(from(size, "3").unwrap().max_connections, 3);
        assert!(from(size, "0").unwrap_err().contains(size));
        assert_eq!(
            from("UNRELATED", "x").unwrap().statement_timeout,
            PoolSettings::default().statement_timeout
        );
        let connect = "MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS";
        assert_eq!(
            PoolSettings::default().connect_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            from(connect, "2").unwrap().connect_timeout,
            Duration::from_secs(2)
        );
        assert!(from(connect, "0").unwrap_err().contains(connect));
    }
}
