//! The `memberdesk` command line. Every failure ends in one clear line on
//! stderr and a non-zero exit, never a panic or a backtrace.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::config::{self, Settings};
use crate::domain::lifecycle::DormantStaff;
use crate::domain::{Actor, accounts, lifecycle};
use crate::error::AppError;
use crate::store::users;
use crate::{db, graphql, http, logging, seed};

mod archive_tasks;
mod erasure_tasks;
mod reference;
mod scim_tasks;
mod user_tasks;

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
        /// With --demo: load it even into a database holding other users.
        #[arg(long, requires = "demo")]
        force_demo: bool,
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
        /// (1 to 36500, i.e. 100 years).
        #[arg(long, value_parser = parse_dormant_days)]
        days: u32,
        /// Only count and list the accounts; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Leave accounts with the staff flag alone (a rarely used staff
        /// account may be the one you need in an emergency).
        #[arg(long)]
        exclude_staff: bool,
        /// Users per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
    },
    /// Carry out every requested erasure whose grace period is over (for
    /// cron): each user is anonymized as `anonymizeUser` does, in its own
    /// transaction, audited with the system as actor, one line per user (by
    /// id, never by name). Two runs at once share the work; each request is
    /// done once. A request that fails stays due for the next run, and the
    /// run exits 1.
    RunErasures {
        /// Only list the due requests (user id and when it fell due); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the GraphQL schema (SDL); it equals schema.graphql.
    ExportSchema,
    /// Load demo data for a local playground (idempotent: a second run adds
    /// only what is missing).
    ///
    /// It creates the superuser `admin`, `alice` (in Editors, with a direct
    /// permission and a live session), `bob` and `carol` (who voted), `dave`
    /// (dormant since 2024), `rani-editor` (staff, Editors) and `mia-manager`
    /// (staff, User managers), two questions and their votes, all through the
    /// audited domain layer with `system` as the actor. Every demo account's
    /// password is the published `memberdesk-demo`: log in as `admin` /
    /// `memberdesk-demo`. It refuses a database holding users that are not
    /// demo users (--force-demo loads it anyway).
    SeedDemo {
        /// Load it even into a database holding users that are not demo users.
        #[arg(long)]
        force_demo: bool,
    },
    /// Set a user's password (as Django's `changepassword`): every session
    /// of the user ends, audited with `system` as the actor.
    ///
    /// The password is read from a prompt on the terminal (typed twice), or
    /// with --password-stdin from the first line of standard input. It must
    /// pass the same strength rule as `createsuperuser` and the API.
    /// Anonymized (erased) accounts are refused.
    Changepassword {
        /// Whose password (as they log in: case and width do not matter).
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users as a table: USERNAME, STATUS (active, inactive or
    /// anonymized), STAFF, SUPERUSER (yes/no) and LAST LOGIN (UTC, or
    /// `never`), sorted by username.
    Users {
        /// Only users who cannot log in (deactivated or anonymized).
        #[arg(long)]
        inactive: bool,
        /// Only users with the staff flag.
        #[arg(long)]
        staff: bool,
    },
    /// Delete for good the questions archived more than --older-than-days
    /// days ago (for cron), with their choices and votes, as `deleteQuestions` under
    /// CASCADE does: in batches, each in its own transaction, with a
    /// progress line after each, one QUESTION_DELETED audit entry per
    /// question with the system as actor. Two runs at once take different
    /// questions; each is deleted once.
    PurgeArchived(archive_tasks::PurgeArgs),
    /// Manage the bearer tokens of SCIM provisioning clients (identity
    /// providers such as Okta or Entra ID) for `/scim/v2`: `create`, `list`,
    /// `revoke`.
    ScimToken(scim_tasks::ScimTokenArgs),
    /// Print a shell completion script, e.g. `memberdesk completions bash >
    /// /etc/bash_completion.d/memberdesk`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `memberdesk man | man -l -`; the
    /// same as contrib/memberdesk.1.
    Man,
}

/// The most days `deactivate-dormant` takes: 100 years, longer than any
/// account can have been unused, and far from the dates PostgreSQL and
/// chrono cannot compute.
const MAX_DORMANT_DAYS: u32 = 36_500;

/// `--days`: a whole number from 1 to [`MAX_DORMANT_DAYS`], refused in
/// words otherwise (clap adds the argument's name and exits with 2).
fn parse_dormant_days(raw: &str) -> Result<u32, String> {
    let range = format!("a whole number of days from 1 to {MAX_DORMANT_DAYS} (100 years)");
    match raw.trim().parse::<u32>() {
        Ok(days) if (1..=MAX_DORMANT_DAYS).contains(&days) => Ok(days),
        _ => Err(format!("must be {range}")),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ExportSchema = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    if let Some(done) = reference::print(&cli.command) {
        return done;
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
        Command::Serve {
            bind,
            demo,
            force_demo,
        } => serve(&bind, demo.then_some(DemoGuard::from(force_demo))).await,
        Command::Migrate => {
            let (_, url, migrated) = open_migrated(true).await?;
            println!("{}", migrated.summary(&url));
            Ok(())
        }
        Command::Createsuperuser {
            username,
            email,
            password_stdin,
        } => createsuperuser(username, email, password_stdin).await,
        Command::DeactivateDormant {
            days,
            dry_run,
            exclude_staff,
            batch_size,
        } => {
            let (pool, _) = open(false).await?;
            let staff = match exclude_staff {
                true => DormantStaff::Exclude,
                false => DormantStaff::Include,
            };
            let scope = Dormant { days, staff };
            deactivate_dormant(&pool, scope, dry_run, batch_size).await
        }
        Command::Changepassword {
            username,
            password_stdin,
        } => user_tasks::changepassword(&username, password_stdin).await,
        Command::Users { inactive, staff } => user_tasks::list_users(inactive, staff).await,
        Command::RunErasures { dry_run } => erasure_tasks::run_erasures(dry_run).await,
        Command::PurgeArchived(args) => archive_tasks::purge_archived(args).await,
        Command::ScimToken(args) => scim_tasks::scim_token(args).await,
        Command::SeedDemo { force_demo } => {
            let settings = Settings::from_env()?;
            let (pool, _) = open(true).await?;
            let report = load_demo(&pool, &settings, DemoGuard::from(force_demo)).await?;
            println!("{report}");
            Ok(())
        }
        Command::ExportSchema | Command::Completions { .. } | Command::Man => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// `createsuperuser`: an active staff superuser, created as `system`.
async fn createsuperuser(
    username: String,
    email: String,
    password_stdin: bool,
) -> Result<(), String> {
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

/// Whether the demo may go into a database that holds other users.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DemoGuard {
    /// Only into a database holding no users but the demo's.
    DemoUsersOnly,
    /// `--force-demo`: anywhere.
    Forced,
}

impl From<bool> for DemoGuard {
    fn from(force_demo: bool) -> Self {
        if force_demo {
            DemoGuard::Forced
        } else {
            DemoGuard::DemoUsersOnly
        }
    }
}

/// Loads the demo data, unless the database holds real users and the
/// operator did not force it (the demo publishes a superuser's password).
async fn load_demo(pool: &PgPool, settings: &Settings, guard: DemoGuard) -> Result<String, String> {
    if guard == DemoGuard::DemoUsersOnly
        && let Some(why) = seed::refusal(pool).await.map_err(describe_error)?
    {
        return Err(why);
    }
    seed::seed_demo(pool, settings)
        .await
        .map_err(describe_error)
}

async fn serve(bind: &str, demo: Option<DemoGuard>) -> Result<(), String> {
    let settings = Settings::from_env()?;
    let (pool, url) = open(true).await?;
    if let Some(guard) = demo {
        let report = load_demo(&pool, &settings, guard).await?;
        tracing::info!("{report}");
    }
    crate::auth::password::warm_up().await;
    let mut server = http::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    if let Some(internal) = &settings.metrics_bind {
        server = server
            .bind_metrics(internal)
            .await
            .map_err(|e| format!("cannot listen on {internal} (MEMBERDESK_METRICS_BIND): {e}"))?;
    }
    let base = format!("http://{}", server.addr);
    if settings.playground.is_on() {
        tracing::info!(database = %db::describe(&url), "memberdesk ready: playground at {base}/ , GraphQL at {base}/graphql");
    } else {
        tracing::info!(database = %db::describe(&url), "memberdesk ready: GraphQL at {base}/graphql (playground off)");
    }
    if let Some(internal) = server.metrics_addr() {
        tracing::info!("metrics at http://{internal}/metrics");
    }
    if demo.is_some() {
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
        return read_password_line();
    }
    if let Ok(pw) = std::env::var("MEMBERDESK_PASSWORD") {
        return Ok(SecretString::from(pw));
    }
    if !std::io::stdin().is_terminal() {
        return Err("no password given: use --password-stdin, set MEMBERDESK_PASSWORD, or run on a terminal".into());
    }
    prompt_password_twice()
}

/// The first line of standard input, without its line ending.
fn read_password_line() -> Result<SecretString, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Asks on the terminal twice, so that a typo does not lock anyone out.
fn prompt_password_twice() -> Result<SecretString, String> {
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let again = rpassword::prompt_password("Password (again): ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(SecretString::from(first))
}

/// Which accounts count as dormant for `deactivate-dormant`.
#[derive(Clone, Copy)]
struct Dormant {
    days: u32,
    staff: DormantStaff,
}

async fn deactivate_dormant(
    pool: &PgPool,
    scope: Dormant,
    dry_run: bool,
    batch: i64,
) -> Result<(), String> {
    if dry_run {
        return preview_dormant(pool, scope).await;
    }
    let Dormant { days, staff } = scope;
    let run = lifecycle::deactivate_dormant(pool, &Actor::System, days, staff, batch, |run| {
        println!(
            "progress: {}/{} deactivated, {} skipped",
            run.deactivated,
            run.matched,
            run.skipped.len()
        );
    })
    .await
    .map_err(describe_error)?;
    let ids: Vec<i64> = run.skipped.iter().map(|(id, _)| *id).collect();
    let names = usernames(pool, &ids).await?;
    for (id, why) in &run.skipped {
        match names.get(id) {
            Some(name) => println!("skipped {name}: {}", why.code()),
            // Deleted while the run went on: nothing left to name it by.
            None => println!("skipped a user deleted meanwhile (id {id}): {}", why.code()),
        }
    }
    println!(
        "deactivated {} dormant account(s) (inactive for more than {days} days); {} skipped",
        run.deactivated,
        run.skipped.len()
    );
    Ok(())
}

/// `--dry-run`: how many would go and the first 20 by name; in words when
/// there are none, so a cron mail is not mistaken for a failure.
async fn preview_dormant(pool: &PgPool, Dormant { days, staff }: Dormant) -> Result<(), String> {
    let filter = lifecycle::dormant_filter(days, staff);
    let count = users::count(pool, &filter)
        .await
        .map_err(|e| describe_error(e.into()))?;
    if count == 0 {
        println!(
            "dry run: no account has been dormant for more than {days} days; nothing would be deactivated"
        );
        return Ok(());
    }
    let sample = users::matching_ids(pool, &filter, 0, 20)
        .await
        .map_err(|e| describe_error(e.into()))?;
    let found = usernames(pool, &sample).await?;
    let names: Vec<&str> = sample
        .iter()
        .filter_map(|id| found.get(id).map(String::as_str))
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
    Ok(())
}

/// The usernames of these users, by id (users deleted meanwhile are absent).
async fn usernames(
    pool: &PgPool,
    ids: &[i64],
) -> Result<std::collections::BTreeMap<i64, String>, String> {
    let found = users::find_many(pool, ids)
        .await
        .map_err(|e| describe_error(e.into()))?;
    Ok(found.into_iter().map(|u| (u.id, u.username)).collect())
}

/// A domain error as one line for the terminal.
fn describe_error(err: AppError) -> String {
    match err {
        AppError::InvalidInput { field, message } => format!("{field}: {message}"),
        AppError::Internal(inner) => format!("internal error: {inner}"),
        other => other.message(),
    }
}
