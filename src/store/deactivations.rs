//! Deactivation as one aggregate: the `deactivations` records and the rows a
//! deactivation removes or revokes (memberships, direct permissions,
//! sessions, the user's flags). Every statement here works on a set of users
//! at once, so deactivating ten thousand dormant accounts costs the same
//! handful of statements as deactivating one.

use std::collections::BTreeMap;

use sqlx::{FromRow, PgConnection};

/// What to take away besides the login itself.
#[derive(Debug, Clone, Copy)]
pub struct AccessRemoval {
    pub groups: bool,
    pub permissions: bool,
    pub staff: bool,
}

/// The open deactivation record of a user: what was taken away, so a
/// reactivation can restore it.
#[derive(Debug, Clone, FromRow)]
pub struct DeactivationRecord {
    pub user_id: i64,
    pub group_ids: Vec<i64>,
    pub permission_ids: Vec<i64>,
    pub staff_revoked: bool,
}

/// What one deactivation did to one user: the record of what was taken
/// away, and how many live sessions ended.
#[derive(Debug, Clone)]
pub struct DeactivatedUser {
    pub record: DeactivationRecord,
    pub sessions_revoked: i64,
}

/// Deactivates `user_ids` (already locked by the caller): removes what
/// `removal` asks, records it (merged into an open record when the user is
/// already deactivated, so nothing remembered is lost), marks the users
/// inactive, and revokes their sessions. One entry per user.
pub async fn deactivate(
    ex: &mut PgConnection,
    user_ids: &[i64],
    removal: AccessRemoval,
    reason: Option<&str>,
) -> sqlx::Result<Vec<DeactivatedUser>> {
    let records: Vec<DeactivationRecord> = sqlx::query_as(
        "WITH g AS (
             DELETE FROM user_groups WHERE $2 AND user_id = ANY($1) RETURNING user_id, group_id
         ), gg AS (
             SELECT user_id, array_agg(group_id ORDER BY group_id) AS ids FROM g GROUP BY user_id
         ), p AS (
             DELETE FROM user_permissions WHERE $3 AND user_id = ANY($1) RETURNING user_id, permission_id
         ), pp AS (
             SELECT user_id, array_agg(permission_id ORDER BY permission_id) AS ids FROM p GROUP BY user_id
         )
         INSERT INTO deactivations (user_id, group_ids, permission_ids, staff_revoked)
         SELECT u.id, coalesce(gg.ids, '{}'), coalesce(pp.ids, '{}'), $4 AND u.is_staff
           FROM users u LEFT JOIN gg ON gg.user_id = u.id LEFT JOIN pp ON pp.user_id = u.id
          WHERE u.id = ANY($1)
         ON CONFLICT (user_id) WHERE ended_at IS NULL DO UPDATE SET
             group_ids = ARRAY(SELECT DISTINCT unnest(deactivations.group_ids || excluded.group_ids) ORDER BY 1),
             permission_ids = ARRAY(SELECT DISTINCT unnest(deactivations.permission_ids || excluded.permission_ids) ORDER BY 1),
             staff_revoked = deactivations.staff_revoked OR excluded.staff_revoked
         RETURNING user_id, group_ids, permission_ids, staff_revoked",
    )
    .bind(user_ids)
    .bind(removal.groups)
    .bind(removal.permissions)
    .bind(removal.staff)
    .fetch_all(&mut *ex)
    .await?;
    // An already inactive user keeps the time and reason of the deactivation
    // that took them out: repeating it changes nothing.
    sqlx::query(
        "UPDATE users SET
             is_staff = is_staff AND NOT $2,
             deactivated_at = CASE WHEN is_active THEN now() ELSE deactivated_at END,
             deactivation_reason = CASE WHEN is_active THEN $3 ELSE deactivation_reason END,
             is_active = false
         WHERE id = ANY($1)",
    )
    .bind(user_ids)
    .bind(removal.staff)
    .bind(reason)
    .execute(&mut *ex)
    .await?;
    let sessions = revoke_sessions(&mut *ex, user_ids).await?;
    Ok(records
        .into_iter()
        .map(|record| DeactivatedUser {
            sessions_revoked: sessions.get(&record.user_id).copied().unwrap_or(0),
            record,
        })
        .collect())
}

/// Revokes the live sessions of `user_ids`; how many each user had.
async fn revoke_sessions(
    ex: &mut PgConnection,
    user_ids: &[i64],
) -> sqlx::Result<BTreeMap<i64, i64>> {
    let revoked: Vec<(i64, i64)> = sqlx::query_as(
        "WITH s AS (
             UPDATE sessions SET revoked_at = now()
              WHERE user_id = ANY($1) AND revoked_at IS NULL AND expires_at > now()
             RETURNING user_id
         ) SELECT user_id, count(*) FROM s GROUP BY user_id",
    )
    .bind(user_ids)
    .fetch_all(ex)
    .await?;
    Ok(revoked.into_iter().collect())
}

/// Ends the user's open deactivation record and returns it (none if the
/// user was deactivated before records were kept, or never).
pub async fn close_open(
    ex: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Option<DeactivationRecord>> {
    super::row_by_key(
        ex,
        "UPDATE deactivations SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL
         RETURNING user_id, group_ids, permission_ids, staff_revoked",
        user_id,
    )
    .await
}

/// Marks the user active again (the flags are restored separately).
pub async fn reactivate(
    ex: &mut PgConnection,
    user_id: i64,
    restore_staff: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET is_active = true, deactivated_at = NULL, deactivation_reason = NULL,
             is_staff = is_staff OR $2
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(restore_staff)
    .execute(ex)
    .await?;
    Ok(())
}

/// Puts the user back into those of `group_ids` that still exist; returns
/// the ids of the groups that do.
pub async fn restore_groups(
    ex: &mut PgConnection,
    user_id: i64,
    group_ids: &[i64],
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "WITH existing AS (SELECT id FROM groups WHERE id = ANY($2)),
              added AS (
                  INSERT INTO user_groups (user_id, group_id) SELECT $1, id FROM existing
                  ON CONFLICT DO NOTHING
              )
         SELECT id FROM existing ORDER BY id",
    )
    .bind(user_id)
    .bind(group_ids)
    .fetch_all(ex)
    .await
}

/// Grants `permission_ids` directly again.
pub async fn restore_permissions(
    ex: &mut PgConnection,
    user_id: i64,
    permission_ids: &[i64],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO user_permissions (user_id, permission_id)
         SELECT $1, id FROM permissions WHERE id = ANY($2)
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(permission_ids)
    .execute(ex)
    .await?;
    Ok(())
}

/// Whether deactivating the (already inactive) user with `removal` would
/// change anything: a repeated deactivation that changes nothing must not
/// write an audit entry either.
pub async fn has_anything_to_remove(
    ex: &mut PgConnection,
    user_id: i64,
    removal: AccessRemoval,
) -> sqlx::Result<bool> {
    let changing = with_anything_to_remove(ex, &[user_id], removal).await?;
    Ok(!changing.is_empty())
}

/// Of the (already inactive) `user_ids`, those a deactivation with
/// `removal` would still change (bulk runs; [`has_anything_to_remove`] asks
/// it of one user).
pub async fn with_anything_to_remove(
    ex: &mut PgConnection,
    user_ids: &[i64],
    removal: AccessRemoval,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT u.id FROM users u WHERE u.id = ANY($1) AND (
                ($2 AND EXISTS (SELECT 1 FROM user_groups g WHERE g.user_id = u.id))
             OR ($3 AND EXISTS (SELECT 1 FROM user_permissions p WHERE p.user_id = u.id))
             OR ($4 AND u.is_staff)
             OR EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id
                          AND s.revoked_at IS NULL AND s.expires_at > now()))
          ORDER BY u.id",
    )
    .bind(user_ids)
    .bind(removal.groups)
    .bind(removal.permissions)
    .bind(removal.staff)
    .fetch_all(ex)
    .await
}

/// The user's open deactivation record, if any.
pub async fn find_open(
    ex: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Option<DeactivationRecord>> {
    super::row_by_key(
        ex,
        "SELECT user_id, group_ids, permission_ids, staff_revoked FROM deactivations
          WHERE user_id = $1 AND ended_at IS NULL",
        user_id,
    )
    .await
}
