//! The append-only `audit_entries` table. There is no update or delete here:
//! PostgreSQL itself refuses them (see the trigger in the first migration).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

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
}

pub struct NewEntry<'a> {
    pub action: &'a str,
    pub actor_id: Option<i64>,
    pub actor_username: Option<&'a str>,
    pub target_user_id: Option<i64>,
    pub target_repr: &'a str,
    pub reason: Option<&'a str>,
    pub details: Option<serde_json::Value>,
}

pub async fn insert(ex: impl PgExecutor<'_>, e: NewEntry<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO audit_entries (action, actor_id, actor_username, target_user_id, target_repr, reason, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(e.action)
    .bind(e.actor_id)
    .bind(e.actor_username)
    .bind(e.target_user_id)
    .bind(e.target_repr)
    .bind(e.reason)
    .bind(e.details)
    .fetch_one(ex)
    .await
}

/// One entry per user of `user_ids` (with `details[i]` for the i-th), the
/// target snapshots read from the users table: a bulk operation's audit
/// trail in one statement.
pub async fn insert_for_users(
    ex: impl PgExecutor<'_>,
    action: &str,
    actor_id: Option<i64>,
    actor_username: &str,
    user_ids: &[i64],
    reason: Option<&str>,
    details: &[serde_json::Value],
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO audit_entries (action, actor_id, actor_username, target_user_id, target_repr, reason, details)
         SELECT $1, $2, $3, u.id, u.username, $5, d.details
           FROM unnest($4::bigint[], $6::jsonb[]) WITH ORDINALITY AS d(user_id, details, n)
           JOIN users u ON u.id = d.user_id
          ORDER BY d.n",
    )
    .bind(action)
    .bind(actor_id)
    .bind(actor_username)
    .bind(user_ids)
    .bind(reason)
    .bind(details)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Replaces the snapshots of `user_id`'s username with `pseudonym`, as actor
/// and as target (anonymization; the append-only trigger allows only this).
pub async fn rename_snapshots(
    ex: &mut sqlx::PgConnection,
    user_id: i64,
    pseudonym: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE audit_entries SET actor_username = $2 WHERE actor_id = $1")
        .bind(user_id)
        .bind(pseudonym)
        .execute(&mut *ex)
        .await?;
    sqlx::query("UPDATE audit_entries SET target_repr = $2 WHERE target_user_id = $1")
        .bind(user_id)
        .bind(pseudonym)
        .execute(&mut *ex)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    pub target_user_id: Option<i64>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

fn push_filter(qb: &mut sqlx::QueryBuilder<sqlx::Postgres>, f: &AuditFilter) {
    qb.push(" WHERE TRUE");
    if let Some(id) = f.actor_id {
        qb.push(" AND actor_id = ").push_bind(id);
    }
    if let Some(id) = f.target_user_id {
        qb.push(" AND target_user_id = ").push_bind(id);
    }
    if let Some(action) = &f.action {
        qb.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(since) = f.since {
        qb.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = f.until {
        qb.push(" AND at < ").push_bind(until);
    }
}

/// A page of entries, newest first, with ids below `before_id`.
pub async fn page(
    ex: impl PgExecutor<'_>,
    f: &AuditFilter,
    before_id: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    let mut qb = sqlx::QueryBuilder::new(
        "SELECT id, at, action, actor_id, actor_username, target_user_id, target_repr, reason, details FROM audit_entries",
    );
    push_filter(&mut qb, f);
    if let Some(id) = before_id {
        qb.push(" AND id < ").push_bind(id);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    qb.build_query_as().fetch_all(ex).await
}

pub async fn count(ex: impl PgExecutor<'_>, f: &AuditFilter) -> sqlx::Result<i64> {
    let mut qb = sqlx::QueryBuilder::new("SELECT count(*) FROM audit_entries");
    push_filter(&mut qb, f);
    qb.build_query_scalar().fetch_one(ex).await
}
