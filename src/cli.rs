//! The `memberdesk` command line. Every failure ends in one clear line on
//! stderr and a non-zero exit, never a panic or a backtrace.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::config::{self, Settings};
use crate::domain::{Actor, accounts, lifecycle};
use crate::error::AppError;
use crate::store::users;
use crate::{db, graphql, http, logging, seed};

#[derive(Parser)]
#[command(
    name = "memberdesk",
    version,
    about = "Administer the members and staff of an application, safely."
)]
#[command(
    long_about = "Administer the members and staff of an application over GraphQL: deactivate, \
reactivate, policy-aware delete and anonymize, all audited.\n\nThe database comes from DATABASE_URL \
(default postgres://localhost/memberdesk)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as human-readable text or as JSON objects (one per line):
    /// text or json.
    #[arg(long, global = true, env = "MEMBERDESK_LOG_FORMAT", default_value = "text", value_parser = logging::parse_format)]
    log_format: logging::Format,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (creates the database and applies migrations first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MEMBERDESK_BIND", default_value = config::DEFAULT_BIND)]
        bind: String,
        /// Load the demo data first (as `seed-demo` does) and print how to log in.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Create an active staff superuser.
    Createsuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (else from
        /// MEMBERDESK_PASSWORD, else a prompt on the terminal).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Deactivate accounts nobody has used for DAYS days (for cron): login
    /// blocked, groups and direct permissions removed and remembered, each
    /// audited with the system as actor.
    DeactivateDormant {
        /// Accounts whose last login (or joining, if never) is older than this
        /// (1 to 1000000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_DORMANT_DAYS))]
        days: u32,
        /// Only count and list the accounts; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Users per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
    },
    /// Print the GraphQL schema (SDL); it equals schema.graphql.
    ExportSchema,
    /// Load the demo data (idempotent): an `admin` superuser, `rani-editor` in
    /// group Editors, some questions and votes.
    SeedDemo,
}

/// The most days `deactivate-dormant` takes (about 2,700 years): further
/// back lies before the earliest date PostgreSQL holds (4713 BC) and, further
/// still, before the earliest chrono can compute.
const MAX_DORMANT_DAYS: i64 = 1_000_000;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ExportSchema = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    if let Err(message) = logging::init(cli.log_format) {
        return fail(message);
    }
    for warning in
        config::unknown_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()))
    {
        tracing::warn!("{warning}");
    }
    crate::auth::password::return_hash_memory_to_the_system();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Opens the database (refusing a `DATABASE_URL` that leads nowhere meant)
/// and applies pending migrations, logging those it applied.
async fn open(create_if_missing: bool) -> Result<(PgPool, String), String> {
    let (pool, url, migrated) = open_migrated(create_if_missing).await?;
    if !migrated.applied.is_empty() {
        tracing::info!("{}", migrated.summary(&url));
    }
    Ok((pool, url))
}

async fn open_migrated(create_if_missing: bool) -> Result<(PgPool, String, db::Migrated), String> {
    let url = config::database_url();
    let pool = db::connect(&url, create_if_missing)
        .await
        .map_err(|e| e.to_string())?;
    let migrated = db::migrate(&pool, &url).await.map_err(|e| e.to_string())?;
    Ok((pool, url, migrated))
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { bind, demo } => serve(&bind, demo).await,
        Command::Migrate => {
            let (_, url, migrated) = open_migrated(true).await?;
            println!("{}", migrated.summary(&url));
            Ok(())
        }
        Command::Createsuperuser {
            username,
            email,
            password_stdin,
        } => {
            let policy = Settings::from_env()?.password_policy;
            let password = read_password(password_stdin)?;
            let (pool, _) = open(true).await?;
            let input = accounts::NewUserInput {
                username,
                email,
                password,
                first_name: String::new(),
                last_name: String::new(),
                is_staff: true,
                is_superuser: true,
            };
            let user = accounts::create_user(&pool, &Actor::System, input, &policy)
                .await
                .map_err(describe_error)?;
            println!("superuser '{}' created", user.username);
            Ok(())
        }
        Command::DeactivateDormant {
            days,
            dry_run,
            batch_size,
        } => {
            let (pool, _) = open(false).await?;
            deactivate_dormant(&pool, days, dry_run, batch_size).await
        }
        Command::SeedDemo => {
            let policy = Settings::from_env()?.password_policy;
            let (pool, _) = open(true).await?;
            let report = seed::seed_demo(&pool, &policy)
                .await
                .map_err(describe_error)?;
            println!("{report}");
            Ok(())
        }
        Command::ExportSchema => unreachable!("handled before the runtime starts"),
    }
}

async fn serve(bind: &str, demo: bool) -> Result<(), String> {
    let settings = Settings::from_env()?;
    let (pool, url) = open(true).await?;
    if demo {
        let report = seed::seed_demo(&pool, &settings.password_policy)
            .await
            .map_err(describe_error)?;
        tracing::info!("{report}");
    }
    crate::auth::password::warm_up().await;
    let server = http::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let base = format!("http://{}", server.addr);
    tracing::info!(database = %db::describe(&url), "memberdesk ready: playground at {base}/ , GraphQL at {base}/graphql");
    if demo {
        tracing::info!("log in from the playground with: {}", seed::DEMO_LOGIN_HINT);
    }
    server
        .serve(pool, settings, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn read_password(from_stdin: bool) -> Result<SecretString, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        return Ok(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    if let Ok(pw) = std::env::var("MEMBERDESK_PASSWORD") {
        return Ok(SecretString::from(pw));
    }
    if !std::io::stdin().is_terminal() {
        return Err("no password given: use --password-stdin, set MEMBERDESK_PASSWORD, or run on a terminal".into());
    }
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let again = rpassword::prompt_password("Password (again): ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(SecretString::from(first))
}

/// A domain error as one line for the terminal.
async fn deactivate_dormant(
    pool: &PgPool,
    days: u32,
    dry_run: bool,
    batch: i64,
) -> Result<(), String> {
    if dry_run {
        let filter = lifecycle::dormant_filter(days);
        let count = users::count(pool, &filter)
            .await
            .map_err(|e| describe_error(e.into()))?;
        let sample = users::matching_ids(pool, &filter, 0, 20)
            .await
            .map_err(|e| describe_error(e.into()))?;
        let names: Vec<String> = users::find_many(pool, &sample)
            .await
            .map_err(|e| describe_error(e.into()))?
            .into_iter()
            .map(|u| u.username)
            .collect();
        let more = if count > names.len() as i64 {
            ", …"
        } else {
            ""
        };
        println!(
            "dry run: {count} dormant account(s) would be deactivated: {}{more}",
            names.join(", ")
        );
        return Ok(());
    }
    let run = lifecycle::deactivate_dormant(pool, &Actor::System, days, batch, |run| {
        println!(
            "progress: {}/{} deactivated, {} skipped",
            run.deactivated,
            run.matched,
            run.skipped.len()
        );
    })
    .await
    .map_err(describe_error)?;
    for (id, why) in &run.skipped {
        println!("skipped user {id}: {}", why.code());
    }
    println!(
        "deactivated {} dormant account(s) (inactive for more than {days} days); {} skipped",
        run.deactivated,
        run.skipped.len()
    );
    Ok(())
}

fn describe_error(err: AppError) -> String {
    match err {
        AppError::InvalidInput { field, message } => format!("{field}: {message}"),
        AppError::Internal(inner) => format!("internal error: {inner}"),
        other => other.message(),
    }
}
