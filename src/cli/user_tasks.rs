//! User tasks an operator runs from a shell, as Django's `manage.py` offers
//! them: `changepassword` (the way back into an account) and `users` (who is
//! there, and who can log in).

use std::io::IsTerminal;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use super::{describe_error, open, prompt_password_twice, read_password_line};
use crate::config::Settings;
use crate::domain::accounts;
use crate::domain::filters::UserFlagFilter;
use crate::error::AppError;
use crate::store::users::{self, UserFilter, UserRow};

/// `memberdesk changepassword <username> [--password-stdin]`.
pub(super) async fn changepassword(username: &str, from_stdin: bool) -> Result<(), String> {
    let policy = Settings::from_env()?.password_policy;
    let (pool, _) = open(false).await?;
    // Refuse an unknown or erased account before asking for a password.
    let user = accounts::find_by_username(&pool, username)
        .await
        .map_err(describe_error)?;
    let user = user.ok_or_else(|| unknown_user(username))?;
    if user.anonymized_at.is_some() {
        return Err(anonymized(&user.username));
    }
    let password = new_password(&user.username, from_stdin)?;
    let reset = accounts::reset_password_as_system(&pool, &policy, username, password)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => unknown_user(username),
            AppError::Anonymized => anonymized(&user.username),
            other => describe_error(other),
        })?;
    println!(
        "password of '{}' changed; {} session(s) revoked",
        reset.user.username, reset.sessions_revoked
    );
    Ok(())
}

fn unknown_user(username: &str) -> String {
    format!("no user named '{username}' (`memberdesk users` lists them)")
}

fn anonymized(username: &str) -> String {
    format!("'{username}' is anonymized (erased): its password cannot be set")
}

/// From standard input with the flag, else from a prompt on the terminal;
/// never from the environment, where a value left for `createsuperuser`
/// would silently become this user's password.
fn new_password(username: &str, from_stdin: bool) -> Result<SecretString, String> {
    if from_stdin {
        return read_password_line();
    }
    if !std::io::stdin().is_terminal() {
        return Err("no password given: use --password-stdin or run on a terminal".into());
    }
    eprintln!("Changing the password of '{username}'");
    prompt_password_twice()
}

/// The users the listing reads per statement.
const BATCH: i64 = 1000;

/// `memberdesk users [--inactive] [--staff]`: a table sorted by username.
pub(super) async fn list_users(inactive: bool, staff: bool) -> Result<(), String> {
    let (pool, _) = open(false).await?;
    let filter = UserFilter {
        flags: UserFlagFilter {
            is_active: inactive.then_some(false),
            is_staff: staff.then_some(true),
            ..UserFlagFilter::default()
        },
        ..UserFilter::default()
    };
    let mut found = all_matching(&pool, &filter).await?;
    found.sort_by(|a, b| a.username.cmp(&b.username));
    print!("{}", users_table(&found));
    Ok(())
}

async fn all_matching(pool: &PgPool, filter: &UserFilter) -> Result<Vec<UserRow>, String> {
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let ids = users::matching_ids(pool, filter, after, BATCH)
            .await
            .map_err(|e| describe_error(e.into()))?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let rows = users::find_many(pool, &ids)
            .await
            .map_err(|e| describe_error(e.into()))?;
        found.extend(rows);
    }
    Ok(found)
}

const HEADER: [&str; 5] = ["USERNAME", "STATUS", "STAFF", "SUPERUSER", "LAST LOGIN"];

/// The table as printed: a header, one line per user, columns padded to
/// their widest cell (usernames counted in characters); `(no users)` when
/// there are none.
pub(super) fn users_table(found: &[UserRow]) -> String {
    let rows: Vec<[String; 5]> = found.iter().map(user_cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = table_line(&HEADER.map(String::from), &widths);
    for row in &rows {
        out.push_str(&table_line(row, &widths));
    }
    if rows.is_empty() {
        out.push_str("(no users)\n");
    }
    out
}

fn user_cells(user: &UserRow) -> [String; 5] {
    let status = match (user.anonymized_at, user.is_active) {
        (Some(_), _) => "anonymized",
        (None, true) => "active",
        (None, false) => "inactive",
    };
    [
        user.username.clone(),
        status.to_owned(),
        yes_no(user.is_staff),
        yes_no(user.is_superuser),
        last_login(user.last_login),
    ]
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

fn last_login(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".to_owned())
}

fn table_line(cells: &[String; 5], widths: &[usize; 5]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        line.push_str(cell);
        if i + 1 < cells.len() {
            let pad = width - cell.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line.push('\n');
    line
}
