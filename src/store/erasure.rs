//! The SQL of erasure: the audit redaction (whose rule lives in PostgreSQL,
//! migration 0006) and the requests waiting out their grace period
//! (`users.erasure_due_at`). See `domain::erasure` for why it works this way.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// Redacts every audit entry naming `user_id` (as actor or as target), who
/// must already be anonymized in this transaction or deleted; returns how
/// many entries were redacted.
///
/// The statement only names the rows: under the transaction-local setting
/// `memberdesk.erasure`, the audit trigger writes each entry's redaction
/// (`audit_entry_redacted`) whatever the statement sets, and refuses the
/// setting for anyone not erased. The setting is cleared again at once, so
/// nothing later in the transaction runs under it.
pub async fn redact_audit_entries(ex: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    sqlx::query("SELECT set_config('memberdesk.erasure', $1::bigint::text, true)")
        .bind(user_id)
        .execute(&mut *ex)
        .await?;
    // Each kept id has its index (migration 0005); PostgreSQL combines them.
    let done = sqlx::query(
        "UPDATE audit_entries SET redacted_at = now()
          WHERE actor_ref = $1 OR target_user_ref = $1",
    )
    .bind(user_id)
    .execute(&mut *ex)
    .await?;
    sqlx::query("SELECT set_config('memberdesk.erasure', '', true)")
        .execute(&mut *ex)
        .await?;
    Ok(done.rows_affected())
}

/// Sets (or with `None` clears) when a user's erasure is due.
const SET_ERASURE_DUE: &str = "UPDATE users SET erasure_due_at = $2 WHERE id = $1";

/// Schedules the erasure of `user_id` at `due` (no earlier request pending).
pub async fn schedule(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    due: DateTime<Utc>,
) -> sqlx::Result<()> {
    super::update_by_id(ex, SET_ERASURE_DUE, user_id, Some(due)).await
}

/// Ends the pending request of `user_id`.
pub async fn cancel(ex: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<()> {
    let none: Option<DateTime<Utc>> = None;
    super::update_by_id(ex, SET_ERASURE_DUE, user_id, none).await
}

/// The next due request that no other transaction is working on, its row
/// locked until this transaction ends; `skip` are ids this run already
/// failed on. `SKIP LOCKED` lets two runs work side by side: each takes
/// rows the other does not hold, and a row taken and erased by one is no
/// longer due when the other sees it, so each request is done once.
pub async fn claim_next_due(ex: &mut PgConnection, skip: &[i64]) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM users
          WHERE erasure_due_at <= now() AND NOT id = ANY($1)
          ORDER BY erasure_due_at, id LIMIT 1
            FOR UPDATE SKIP LOCKED",
    )
    .bind(skip)
    .fetch_optional(ex)
    .await
}

/// Every due request (id and when it fell due), oldest first: what a run
/// would erase now.
pub async fn due(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<(i64, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT id, erasure_due_at FROM users WHERE erasure_due_at <= now()
          ORDER BY erasure_due_at, id",
    )
    .fetch_all(ex)
    .await
}
