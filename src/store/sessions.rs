//! The `sessions` table: one row per issued token, keyed by the token's digest.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

pub async fn insert(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    token_digest: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(token_digest)
    .bind(user_id)
    .bind(expires_at)
    .fetch_one(ex)
    .await
}

/// The caller behind a token, with their effective permissions, read in one
/// statement on every request: a session only counts while it is unrevoked,
/// unexpired and its user is active, so a deactivation on any server instance
/// takes effect everywhere at once.
#[derive(Debug, Clone, FromRow)]
pub struct SessionUser {
    pub session_id: i64,
    pub user_id: i64,
    pub username: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub permissions: Vec<String>,
}

/// The caller's effective permission keys, as a column of a query over
/// `users u`: every permission for a superuser, else direct and via groups.
macro_rules! effective_permissions {
    () => {
        "ARRAY(SELECT p.app_label || '.' || p.codename FROM permissions p \
               WHERE u.is_superuser \
                  OR p.id IN (SELECT permission_id FROM user_permissions WHERE user_id = u.id) \
                  OR p.id IN (SELECT gp.permission_id FROM group_permissions gp \
                              JOIN user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = u.id) \
               ORDER BY 1) AS permissions"
    };
}

/// Also ends sessions unused for `idle`. Use extends a session, but its
/// `last_seen_at` is written only when over a minute old: one write per
/// session and minute, not one per request. The write rides in the same
/// statement (a data-modifying CTE), so a request still costs one.
pub async fn find_live(
    ex: impl PgExecutor<'_>,
    token_digest: &[u8],
    idle: chrono::Duration,
) -> sqlx::Result<Option<SessionUser>> {
    sqlx::query_as(concat!(
        "WITH live AS ( \
           SELECT s.id AS session_id, s.last_seen_at, u.id AS user_id, u.username, u.is_staff, u.is_superuser, ",
        effective_permissions!(),
        " FROM sessions s JOIN users u ON u.id = s.user_id \
           WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active \
             AND s.last_seen_at > now() - make_interval(secs => $2) \
         ), seen AS ( \
           UPDATE sessions SET last_seen_at = now() FROM live \
           WHERE sessions.id = live.session_id AND live.last_seen_at < now() - interval '1 minute' \
         ) \
         SELECT session_id, user_id, username, is_staff, is_superuser, permissions FROM live",
    ))
    .bind(token_digest)
    .bind(idle.num_milliseconds() as f64 / 1000.0)
    .fetch_optional(ex)
    .await
}

/// The caller behind `session_id` as they stand now, with their account
/// row share-locked until the transaction ends: a deactivation or a change
/// of their rights waits for the transaction using them, or is seen by it.
/// (The session was live when the request started, which extended it.)
pub async fn find_live_for_share(
    ex: impl PgExecutor<'_>,
    session_id: i64,
) -> sqlx::Result<Option<SessionUser>> {
    let sql = concat!(
        "SELECT s.id AS session_id, u.id AS user_id, u.username, u.is_staff, u.is_superuser, ",
        effective_permissions!(),
        " FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active \
         FOR SHARE OF u",
    );
    super::row_by_key(ex, sql, session_id).await
}

pub async fn revoke(ex: impl PgExecutor<'_>, session_id: i64) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .execute(ex)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every live session of the user except `keep`; returns how many.
pub async fn revoke_all_for_user(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    keep: Option<i64>,
) -> sqlx::Result<i64> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() as i64)
}

/// How many of the user's sessions are neither revoked nor expired (those a
/// deactivation would revoke).
pub async fn count_unexpired_for_user(ex: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<i64> {
    let sql = "SELECT count(*) FROM sessions \
               WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()";
    super::count_by_key(ex, sql, user_id).await
}
