//! `memberdesk run-erasures`: the cron side of `requestErasure`. It names
//! people by id only (`user 42`): a cron mail about erasures must not be one
//! more copy of the names being erased.

use sqlx::PgPool;

use super::{describe_error, open};
use crate::domain::erasure::{self, Step};

/// `memberdesk run-erasures [--dry-run]`.
pub(super) async fn run_erasures(dry_run: bool) -> Result<(), String> {
    let (pool, _) = open(false).await?;
    if dry_run {
        return preview(&pool).await;
    }
    let run = erasure::run_due_erasures(&pool, report_progress)
        .await
        .map_err(describe_error)?;
    if run.erased.is_empty() && run.failed.is_empty() {
        println!("no erasure is due");
        return Ok(());
    }
    println!(
        "erased {} user(s) whose requested erasure was due",
        run.erased.len()
    );
    if run.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = run
        .failed
        .iter()
        .map(|(id, err)| format!("user {id} ({})", err.message()))
        .collect();
    Err(format!(
        "{} erasure(s) failed and stay due for the next run: {}",
        run.failed.len(),
        failed.join(", ")
    ))
}

/// One line per request, as each is done (or fails).
fn report_progress(step: Step<'_>) {
    match step {
        Step::Erased(receipt) => println!(
            "erased {} as {}: {} audit entries redacted, {} session(s) revoked",
            user_label(&receipt.pseudonym),
            receipt.pseudonym,
            receipt.audit_entries_redacted,
            receipt.sessions_revoked
        ),
        Step::Failed(id, err) => println!("failed user {id}: {}", err.message()),
    }
}

/// `user 42` for `deleted-user-42`.
fn user_label(pseudonym: &str) -> String {
    let id = pseudonym.rsplit('-').next().unwrap_or(pseudonym);
    format!("user {id}")
}

/// `--dry-run`: what a run would erase now, changing nothing.
async fn preview(pool: &PgPool) -> Result<(), String> {
    let due = erasure::due_erasures(pool).await.map_err(describe_error)?;
    if due.is_empty() {
        println!("dry run: no erasure is due; nothing would be erased");
        return Ok(());
    }
    let listed: Vec<String> = due
        .iter()
        .map(|(id, at)| format!("user {id} (due {})", at.format("%Y-%m-%d %H:%M UTC")))
        .collect();
    println!(
        "dry run: {} erasure(s) due would be carried out: {}",
        due.len(),
        listed.join(", ")
    );
    Ok(())
}
