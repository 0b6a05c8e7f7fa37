//! The append-only `audit_entries` table. There is no update or delete here:
//! PostgreSQL itself refuses them (the triggers of migrations 0001, 0005 and
//! 0006), except what the fold columns need and the redaction an erasure
//! writes (`store::erasure`).
//!
//! Each entry keeps the ids it names as plain values (`actor_ref`,
//! `target_user_ref`, filled by a trigger on insert) besides the references
//! a deletion nulls, and its snapshots folded as logins fold usernames, so
//! `auditLog` finds a person's entries by old id or by name.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};

use super::PageAfter;
use crate::domain::filters::AuditFilter;
use crate::domain::validation::username_fold;

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    pub target_user_id: Option<i64>,
    pub target_repr: String,
    pub reason: Option<String>,
    pub details: Option<serde_json::Value>,
    /// When an erasure took personal data out of the entry.
    pub redacted_at: Option<DateTime<Utc>>,
}

pub struct NewEntry<'a> {
    pub action: &'a str,
    pub actor_id: Option<i64>,
    pub actor_username: Option<&'a str>,
    pub target_user_id: Option<i64>,
    /// The id of a user whose row is already gone (the entry of their
    /// deletion); otherwise the trigger copies `target_user_id`.
    pub target_user_ref: Option<i64>,
    pub target_repr: &'a str,
    pub reason: Option<&'a str>,
    pub details: Option<serde_json::Value>,
}

pub async fn insert(ex: impl PgExecutor<'_>, e: NewEntry<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO audit_entries (action, actor_id, actor_username, target_user_id, target_repr, reason, details, \
                                    target_user_ref, actor_username_fold, target_repr_fold) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(e.action)
    .bind(e.actor_id)
    .bind(e.actor_username)
    .bind(e.target_user_id)
    .bind(e.target_repr)
    .bind(e.reason)
    .bind(e.details)
    .bind(e.target_user_ref)
    .bind(e.actor_username.map(username_fold))
    .bind(username_fold(e.target_repr))
    .fetch_one(ex)
    .await
}

/// What one entry of [`insert_many`] is about.
pub struct EntryTarget<'a> {
    pub target_user_id: Option<i64>,
    /// The id of a user whose row is already gone (see [`NewEntry`]).
    pub target_user_ref: Option<i64>,
    pub target_repr: &'a str,
    /// What only this entry says, merged over the batch's shared details.
    pub own_details: Option<&'a serde_json::Value>,
}

/// What every entry of one [`insert_many`] has in common.
pub struct SharedEntry<'a> {
    pub action: &'a str,
    pub actor_id: Option<i64>,
    pub actor_username: &'a str,
    pub reason: Option<&'a str>,
    /// Sent once and merged with each entry's own details by PostgreSQL
    /// (`||`, the entry's keys winning), so a batch of 10,000 entries is not
    /// 10,000 copies of the same document in the server's memory.
    pub details: &'a serde_json::Value,
}

/// One entry per target, in order: a bulk operation's audit trail in one
/// statement, also for targets that are no longer in the database.
pub async fn insert_many(
    ex: &mut PgConnection,
    shared: SharedEntry<'_>,
    targets: &[EntryTarget<'_>],
) -> sqlx::Result<u64> {
    let ids: Vec<Option<i64>> = targets.iter().map(|t| t.target_user_id).collect();
    let refs: Vec<Option<i64>> = targets.iter().map(|t| t.target_user_ref).collect();
    let reprs: Vec<&str> = targets.iter().map(|t| t.target_repr).collect();
    let folds: Vec<String> = reprs.iter().map(|r| username_fold(r)).collect();
    let own: Vec<Option<&serde_json::Value>> = targets.iter().map(|t| t.own_details).collect();
    let done = sqlx::query(
        "INSERT INTO audit_entries (action, actor_id, actor_username, target_user_id, target_user_ref, target_repr,
                                    reason, details, actor_username_fold, target_repr_fold)
         SELECT $1, $2, $3, d.user_id, d.user_ref, d.repr, $7, $9::jsonb || coalesce(d.own, '{}'::jsonb), $8, d.fold
           FROM unnest($4::bigint[], $5::bigint[], $6::text[], $10::jsonb[], $11::text[])
                WITH ORDINALITY AS d(user_id, user_ref, repr, own, fold, n)
          ORDER BY d.n",
    )
    .bind(shared.action)
    .bind(shared.actor_id)
    .bind(shared.actor_username)
    .bind(&ids)
    .bind(&refs)
    .bind(&reprs)
    .bind(shared.reason)
    .bind(username_fold(shared.actor_username))
    .bind(shared.details)
    .bind(&own)
    .bind(&folds)
    .execute(&mut *ex)
    .await?;
    Ok(done.rows_affected())
}

async fn write_folds(
    ex: &mut PgConnection,
    rows: &[(i64, Option<String>, String)],
) -> sqlx::Result<u64> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let actors: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.1.as_deref().map(username_fold))
        .collect();
    let targets: Vec<String> = rows.iter().map(|r| username_fold(&r.2)).collect();
    let done = sqlx::query(
        "UPDATE audit_entries a SET actor_username_fold = f.actor, target_repr_fold = f.target
           FROM unnest($1::bigint[], $2::text[], $3::text[]) AS f(id, actor, target)
          WHERE a.id = f.id",
    )
    .bind(&ids)
    .bind(&actors)
    .bind(&targets)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Folds the snapshots of every entry written without them (before
/// migration 0005, or by an older instance during an upgrade), a batch at a
/// time; cheap when there are none (an index covers the lookup). Returns how
/// many entries it folded.
pub async fn fill_folds(ex: &mut PgConnection) -> sqlx::Result<u64> {
    let mut filled = 0;
    loop {
        let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(
            "SELECT id, actor_username, target_repr FROM audit_entries
              WHERE target_repr_fold IS NULL ORDER BY id LIMIT 5000",
        )
        .fetch_all(&mut *ex)
        .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        filled += write_folds(ex, &rows).await?;
    }
}

/// The most recent export of the user's data (`USER_DATA_EXPORTED`): when,
/// and the SHA-256 its entry recorded.
pub async fn last_export(
    ex: impl PgExecutor<'_>,
    user_id: i64,
) -> sqlx::Result<Option<(DateTime<Utc>, Option<String>)>> {
    super::row_by_key(
        ex,
        "SELECT at, details->>'sha256' FROM audit_entries
          WHERE target_user_ref = $1 AND action = 'USER_DATA_EXPORTED'
          ORDER BY id DESC LIMIT 1",
        user_id,
    )
    .await
}

/// The ids are matched against the kept ones (`actor_ref`,
/// `target_user_ref`), so a deleted user's entries are found too; the
/// usernames, as typed, folded against the snapshots.
fn push_filter(qb: &mut sqlx::QueryBuilder<sqlx::Postgres>, f: &AuditFilter) {
    qb.push(" WHERE TRUE");
    if let Some(id) = f.actor_id {
        qb.push(" AND actor_ref = ").push_bind(id);
    }
    if let Some(id) = f.target_user_id {
        qb.push(" AND target_user_ref = ").push_bind(id);
    }
    if let Some(name) = &f.actor_username {
        qb.push(" AND actor_username_fold = ")
            .push_bind(username_fold(name));
    }
    if let Some(name) = &f.target_username {
        qb.push(" AND target_repr_fold = ")
            .push_bind(username_fold(name));
    }
    if let Some(action) = f.action {
        qb.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(since) = f.since {
        qb.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = f.until {
        qb.push(" AND at < ").push_bind(until);
    }
}

/// A page of the entries `f` matches, newest first (see [`PageAfter`]).
pub async fn page(
    ex: impl PgExecutor<'_>,
    f: &AuditFilter,
    page: PageAfter,
) -> sqlx::Result<Vec<AuditRow>> {
    let mut qb = sqlx::QueryBuilder::new(
        "SELECT id, at, action, actor_id, actor_username, target_user_id, target_repr, reason, details, redacted_at \
         FROM audit_entries",
    );
    push_filter(&mut qb, f);
    if let Some(id) = page.after {
        qb.push(" AND id < ").push_bind(id);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(page.limit);
    qb.build_query_as().fetch_all(ex).await
}

pub async fn count(ex: impl PgExecutor<'_>, f: &AuditFilter) -> sqlx::Result<i64> {
    let mut qb = sqlx::QueryBuilder::new("SELECT count(*) FROM audit_entries");
    push_filter(&mut qb, f);
    qb.build_query_scalar().fetch_one(ex).await
}
