//! What goes wrong before memberdesk can serve, told so that the operator
//! knows what to do next.
//!
//! A newcomer's first run is where a stack trace or a bare "connection
//! refused" loses them, so each failure names its likely cause on this
//! machine (PostgreSQL not installed, installed but stopped, no role for this
//! user, a password needed, a pooler setting) and the command that fixes it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// SQLSTATEs of a prepared statement created twice or not found.
const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
const UNKNOWN_PREPARED_STATEMENT: &str = "26000";
/// Unknown role, or no pg_hba.conf entry.
const INVALID_AUTHORIZATION: &str = "28000";
const INVALID_PASSWORD: &str = "28P01";
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// A startup failure, worded for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error(
        "DATABASE_URL is set but empty: set it to your database's URL, e.g. postgres://USER@HOST:5432/memberdesk, or unset it to use {default}",
        default = crate::config::DEFAULT_DATABASE_URL
    )]
    EmptyUrl,
    #[error(
        "DATABASE_URL names no database, so memberdesk would put its tables in the server's default database: end it with the database's name, e.g. {example}"
    )]
    NoDatabaseName { example: String },
    #[error(
        "DATABASE_URL is a libpq key/value string, but memberdesk takes a URL: write it as {url}"
    )]
    KeyValueUrl { url: String },
    #[error(
        "DATABASE_URL is a {scheme}:// URL, but memberdesk needs PostgreSQL: set it to a postgres:// URL, e.g. postgres://USER@HOST:5432/memberdesk"
    )]
    ForeignScheme { scheme: String },
    /// Something answered on the port, but not in PostgreSQL's protocol.
    #[error(
        "what answers at {} is not PostgreSQL: {}. Check the port in DATABASE_URL (PostgreSQL's default is 5432)",
        .at.target, .at.reason
    )]
    NotPostgres { at: Failure },
    /// Something accepts connections on the port but gave no PostgreSQL
    /// answer within the connect timeout.
    #[error(
        "no answer from PostgreSQL at {target} within {seconds} s: something accepts connections on that port but does not speak PostgreSQL's protocol: check the port in DATABASE_URL (PostgreSQL's default is 5432), or raise MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS for a slow server"
    )]
    SilentPort { target: String, seconds: u64 },
    /// A database setting from the environment that is not valid.
    #[error("{0}")]
    BadSetting(String),
    #[error("cannot reach PostgreSQL at {}: {}. {advice}", .at.target, .at.reason)]
    Unreachable { at: Failure, advice: String },
    #[error("PostgreSQL at {} refused memberdesk: {}. {advice}", .at.target, .at.reason)]
    Refused { at: Failure, advice: String },
    /// What PgBouncer answers to startup parameters it does not pass on.
    #[error(
        "{} refused a connection option: {}. Behind PgBouncer, set MEMBERDESK_STATEMENT_TIMEOUT_SECONDS=0 and set statement_timeout in PgBouncer's connect_query or on the role, and list extra_float_digits in its ignore_startup_parameters",
        .at.target, .at.reason
    )]
    OptionRefused { at: Failure },
    /// What a pooler in transaction mode that does not carry prepared
    /// statements between server connections leads to.
    #[error(
        "{} lost track of a prepared statement: {}. This is a connection pooler in transaction mode without prepared statement support; use PgBouncer 1.21 or later with max_prepared_statements > 0",
        .at.target, .at.reason
    )]
    PreparedStatementsUnsupported { at: Failure },
    /// The TLS connection that `sslmode` asks for could not be made: the
    /// server's certificate is not trusted or not for this host name, the
    /// server has no TLS, or a certificate file cannot be read.
    #[error(
        "PostgreSQL at {} failed the TLS check of sslmode={mode}: {}. {advice}",
        .at.target, .at.reason
    )]
    Tls {
        at: Failure,
        mode: &'static str,
        advice: String,
    },
    #[error("applying migrations to {} failed: {}", .at.target, .at.reason)]
    Migration { at: Failure },
}

/// Where a failed connection or migration was headed and what it was told
/// there: the two facts those messages all name, around their own advice.
#[derive(Debug)]
pub struct Failure {
    /// The server and database, without the password ([`describe`]).
    pub target: String,
    /// What the server or the network said, without sqlx's decorations.
    pub reason: String,
}

impl Failure {
    /// `err`, met on the way to `url`.
    pub(super) fn of(url: &str, err: &sqlx::Error) -> Failure {
        Failure {
            target: describe(url),
            reason: short_reason(err),
        }
    }
}

impl StartupError {
    /// A failure to connect to, or create, the database at `url`.
    pub(super) fn connecting(url: &str, err: &sqlx::Error) -> StartupError {
        if let Some(pooler) = pooler_error(url, err) {
            return pooler;
        }
        let at = Failure::of(url, err);
        let opts = PgConnectOptions::from_str(url).ok();
        if let Some((mode, advice)) = opts.as_ref().and_then(|o| tls_advice(o, err)) {
            return StartupError::Tls { at, mode, advice };
        }
        match (err, &opts) {
            (sqlx::Error::Database(db), Some(opts)) => {
                let advice = refusal_advice(db.code().as_deref(), &at.reason, opts);
                StartupError::Refused { at, advice }
            }
            _ if at.reason.contains("password") => StartupError::Refused {
                advice: opts.map_or_else(String::new, |o| password_advice(&o)),
                at,
            },
            (sqlx::Error::Protocol(_), _) => StartupError::NotPostgres { at },
            _ => StartupError::Unreachable {
                advice: opts.map_or_else(
                    || "Set DATABASE_URL".to_owned(),
                    |o| network_advice(&o, err),
                ),
                at,
            },
        }
    }

    /// No PostgreSQL answer from `url` within `timeout` (or the pool gave
    /// up retrying): a fresh connection tells why. Accepted: something else
    /// listens there (a Redis takes PostgreSQL's first bytes and waits for
    /// ever); refused or failed: the error it gives, told as usual.
    pub(super) async fn no_answer(url: &str, timeout: Duration) -> StartupError {
        let Ok(opts) = PgConnectOptions::from_str(url) else {
            return StartupError::BadUrl(describe(url));
        };
        // A listener accepts at once; a short probe is enough.
        match probe(&opts, timeout.min(Duration::from_secs(2))).await {
            Ok(()) => StartupError::SilentPort {
                target: describe_opts(&opts),
                seconds: timeout.as_secs(),
            },
            Err(e) => StartupError::connecting(url, &sqlx::Error::Io(e)),
        }
    }

    /// A failure while applying migrations to the database at `url`.
    pub(super) fn migrating(url: &str, err: &sqlx::Error) -> StartupError {
        pooler_error(url, err).unwrap_or_else(|| StartupError::Migration {
            at: Failure::of(url, err),
        })
    }
}

/// Where a URL points, without its password, for messages and logs.
pub fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(opts) => describe_opts(&opts),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

fn describe_opts(opts: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("(default database)")
    )
}

fn short_reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        // Debug builds of sqlx end the message with its source location.
        sqlx::Error::Protocol(message) => message
            .rsplit_once(" (sqlx")
            .map_or(message.as_str(), |(reason, _)| reason)
            .to_owned(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// The two ways a connection pooler in front of PostgreSQL shows itself at
/// startup, named so the operator knows what to change.
fn pooler_error(url: &str, err: &sqlx::Error) -> Option<StartupError> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    let at = Failure::of(url, err);
    match db.code().as_deref() {
        Some(DUPLICATE_PREPARED_STATEMENT | UNKNOWN_PREPARED_STATEMENT) => {
            Some(StartupError::PreparedStatementsUnsupported { at })
        }
        _ if at.reason.starts_with("unsupported startup parameter") => {
            Some(StartupError::OptionRefused { at })
        }
        _ => None,
    }
}

/// The `sslmode` of a failure of the TLS it asks for, and what to do about
/// it: told apart from a server that is not there, since the fix is in the
/// URL or the certificates, not in starting PostgreSQL.
fn tls_advice(opts: &PgConnectOptions, err: &sqlx::Error) -> Option<(&'static str, String)> {
    let mode = match opts.get_ssl_mode() {
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
        // Anything weaker falls back to plain connections instead of failing.
        _ => return None,
    };
    let reason = short_reason(err);
    // rustls reports a rejected certificate as invalid data on the socket.
    let handshake = match err {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    let advice = match err {
        _ if handshake && reason.contains("does not support TLS") => {
            "Turn on ssl in the server's postgresql.conf, or choose a weaker sslmode in DATABASE_URL".to_owned()
        }
        _ if handshake && reason.contains("not valid for name") => format!(
            "The server's certificate does not name host {}: connect by a name it lists, or use sslmode=verify-ca",
            opts.get_host()
        ),
        _ if handshake => "The server's certificate is not signed by a CA memberdesk trusts: set sslrootcert=/path/to/ca.crt in DATABASE_URL to the CA certificate that signed it (public web CAs are trusted without it)".to_owned(),
        // Over TCP, a file not found or not readable is one of the
        // certificate files the URL names, not the server.
        sqlx::Error::Io(io)
            if opts.get_socket().is_none()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
        {
            "A certificate file named in DATABASE_URL (sslrootcert, sslcert, sslkey) or PGSSLROOTCERT cannot be read: correct its path or its permissions".to_owned()
        }
        _ => return None,
    };
    Some((mode, advice))
}

fn refusal_advice(code: Option<&str>, reason: &str, opts: &PgConnectOptions) -> String {
    let user = opts.get_username();
    let database = opts.get_database().unwrap_or("memberdesk");
    match code {
        Some(INVALID_AUTHORIZATION) if reason.contains("does not exist") => format!(
            "Create that role with `sudo -u postgres createuser --createdb {user}`, or set DATABASE_URL to a user that exists"
        ),
        Some(INVALID_AUTHORIZATION) => format!(
            "Allow user {user} from this address in the server's pg_hba.conf, or set DATABASE_URL to a user it allows"
        ),
        Some(INVALID_PASSWORD) => password_advice(opts),
        Some(INSUFFICIENT_PRIVILEGE) => format!(
            "Create the database for it with `sudo -u postgres createdb -O {user} {database}`, or let the role create databases (`ALTER ROLE \"{user}\" CREATEDB`)"
        ),
        _ => "Check DATABASE_URL and the server's log".to_owned(),
    }
}

fn password_advice(opts: &PgConnectOptions) -> String {
    format!(
        "Put the password in DATABASE_URL: postgres://{}:PASSWORD@{}:{}/{} (or in ~/.pgpass)",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("memberdesk")
    )
}

/// Opens (and drops) a plain connection to where `opts` point: TCP, or the
/// Unix socket `<dir>/.s.PGSQL.<port>` as libpq names it.
async fn probe(opts: &PgConnectOptions, timeout: Duration) -> std::io::Result<()> {
    let socket = opts
        .get_socket()
        .map(|dir| dir.join(format!(".s.PGSQL.{}", opts.get_port())));
    let address = (opts.get_host().to_owned(), opts.get_port());
    let connect = move || -> std::io::Result<()> {
        if let Some(path) = socket {
            return std::os::unix::net::UnixStream::connect(path).map(drop);
        }
        let mut last = std::io::Error::other("the host has no address");
        for addr in std::net::ToSocketAddrs::to_socket_addrs(&address)? {
            match std::net::TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    tokio::task::spawn_blocking(connect)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// A connection that failed before PostgreSQL said anything: "start
/// PostgreSQL" only when nothing listens there (refused, or no socket file);
/// a host that does not resolve or a network that fails is not fixed by that.
fn network_advice(opts: &PgConnectOptions, err: &sqlx::Error) -> String {
    let sqlx::Error::Io(io) = err else {
        return "Check DATABASE_URL".to_owned();
    };
    let nothing_listens = io.kind() == std::io::ErrorKind::ConnectionRefused
        || (opts.get_socket().is_some() && io.kind() == std::io::ErrorKind::NotFound);
    if nothing_listens {
        unreachable_advice(opts)
    } else if io.to_string().contains("lookup address") {
        format!(
            "The host name {} does not resolve: correct the host in DATABASE_URL",
            opts.get_host()
        )
    } else {
        "Check the host and port in DATABASE_URL, and the network between here and there".to_owned()
    }
}

/// Nothing answered: on this machine, is PostgreSQL missing or stopped?
fn unreachable_advice(opts: &PgConnectOptions) -> String {
    let host = opts.get_host();
    let port = opts.get_port();
    let local =
        matches!(host, "localhost" | "::1") || host.starts_with("127.") || host.starts_with('/');
    if !local {
        return "Start PostgreSQL there, or correct DATABASE_URL".to_owned();
    }
    if let Some((version, cluster)) = debian_cluster(Path::new("/etc/postgresql")) {
        return format!(
            "PostgreSQL is installed here but not running on port {port}: start it with `sudo pg_ctlcluster {version} {cluster} start`, or set DATABASE_URL"
        );
    }
    if postgres_installed() {
        return format!(
            "PostgreSQL is installed here but not running on port {port}: start its service (or `pg_ctl -D <data folder> start`), or set DATABASE_URL"
        );
    }
    "PostgreSQL is not installed here: install it (Debian/Ubuntu: `sudo apt install postgresql`; macOS: `brew install postgresql && brew services start postgresql`), or set DATABASE_URL to a server you can reach, e.g. postgres://user@db.example:5432/memberdesk".to_owned()
}

/// The newest cluster of Debian's and Ubuntu's `postgresql-common` layout
/// (`/etc/postgresql/<version>/<cluster>`).
fn debian_cluster(root: &Path) -> Option<(String, String)> {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort_by_key(|n| {
            (
                n.split('.')
                    .map(|p| p.parse::<u32>().unwrap_or(0))
                    .collect::<Vec<_>>(),
                n.clone(),
            )
        });
        names
    };
    let version = names(root).pop()?;
    let clusters = names(&root.join(&version));
    let cluster = if clusters.iter().any(|c| c == "main") {
        "main".to_owned()
    } else {
        clusters.into_iter().next()?
    };
    Some((version, cluster))
}

/// PostgreSQL's server programs on PATH or in Debian's versioned folders.
fn postgres_installed() -> bool {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| dir.join("pg_ctl").is_file() || dir.join("postgres").is_file())
    });
    on_path
        || std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|v| v.path().join("bin/postgres").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_debian_cluster_is_named_and_main_preferred() {
        let root = std::env::temp_dir().join(format!("memberdesk-clusters-{}", std::process::id()));
        for dir in ["9.6/main", "15/other", "15/main", "13/main"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        assert_eq!(
            debian_cluster(&root),
            Some(("15".to_owned(), "main".to_owned()))
        );
        std::fs::remove_dir_all(root.join("15/main")).unwrap();
        assert_eq!(
            debian_cluster(&root),
            Some(("15".to_owned(), "other".to_owned()))
        );
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(debian_cluster(&root), None);
    }

    #[test]
    fn a_remote_server_is_not_diagnosed_from_this_machine() {
        let opts = PgConnectOptions::from_str("postgres://u@db.example:5432/m").unwrap();
        assert_eq!(
            unreachable_advice(&opts),
            "Start PostgreSQL there, or correct DATABASE_URL"
        );
    }

    #[test]
    fn tls_failures_are_named_not_taken_for_a_stopped_server() {
        let url = "postgres://u@db.example:5432/m?sslmode=require";
        let no_tls = sqlx::Error::Tls("server does not support TLS".into());
        let message = StartupError::connecting(url, &no_tls).to_string();
        assert!(
            message.contains("sslmode=require") && message.contains("Turn on ssl"),
            "{message}"
        );
        let unreadable = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::NotFound));
        let message = StartupError::connecting(url, &unreadable).to_string();
        assert!(message.contains("certificate file"), "{message}");
        // Without sslmode asking for TLS, a refused connection is what it was.
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let plain = "postgres://u@db.example:5432/m";
        assert!(matches!(
            StartupError::connecting(plain, &refused),
            StartupError::Unreachable { .. }
        ));
    }
}
