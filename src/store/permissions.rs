//! The `permissions` table and the links that grant them: directly to a user
//! (`user_permissions`) or through a group (`group_permissions`). A direct
//! grant is given and taken in [`super::access`].

use sqlx::{FromRow, PgExecutor};

#[derive(Debug, Clone, FromRow)]
pub struct PermissionRow {
    pub id: i64,
    pub app_label: String,
    pub codename: String,
    pub name: String,
}

/// A permission and the user or group it is granted to.
#[derive(FromRow)]
struct Granted {
    owner_id: i64,
    #[sqlx(flatten)]
    permission: PermissionRow,
}

impl Granted {
    fn pair(self) -> (i64, PermissionRow) {
        (self.owner_id, self.permission)
    }
}

impl PermissionRow {
    /// The `app.codename` form used everywhere in the API.
    pub fn key(&self) -> String {
        format!("{}.{}", self.app_label, self.codename)
    }
}

pub async fn all(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<PermissionRow>> {
    sqlx::query_as(
        "SELECT id, app_label, codename, name FROM permissions ORDER BY app_label, codename",
    )
    .fetch_all(ex)
    .await
}

/// The permissions named by `keys` (`app.codename`); unknown keys are simply absent.
pub async fn by_keys(ex: impl PgExecutor<'_>, keys: &[String]) -> sqlx::Result<Vec<PermissionRow>> {
    sqlx::query_as(
        "SELECT id, app_label, codename, name FROM permissions \
         WHERE app_label || '.' || codename = ANY($1) ORDER BY app_label, codename",
    )
    .bind(keys)
    .fetch_all(ex)
    .await
}

pub async fn by_ids(ex: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<PermissionRow>> {
    let sql = "SELECT id, app_label, codename, name FROM permissions WHERE id = ANY($1) ORDER BY app_label, codename";
    super::rows_for_ids(ex, sql, ids).await
}

/// Permissions with the id of the user or group holding each.
pub type Grants = Vec<(i64, PermissionRow)>;

/// Direct grants of each of `user_ids`.
pub async fn direct_for_users(ex: impl PgExecutor<'_>, user_ids: &[i64]) -> sqlx::Result<Grants> {
    let sql = "SELECT up.user_id AS owner_id, p.id, p.app_label, p.codename, p.name \
               FROM user_permissions up JOIN permissions p ON p.id = up.permission_id \
               WHERE up.user_id = ANY($1) ORDER BY p.app_label, p.codename";
    granted(ex, sql, user_ids).await
}

/// The permissions of each of `group_ids`.
pub async fn for_groups(ex: impl PgExecutor<'_>, group_ids: &[i64]) -> sqlx::Result<Grants> {
    let sql = "SELECT gp.group_id AS owner_id, p.id, p.app_label, p.codename, p.name \
               FROM group_permissions gp JOIN permissions p ON p.id = gp.permission_id \
               WHERE gp.group_id = ANY($1) ORDER BY p.app_label, p.codename";
    granted(ex, sql, group_ids).await
}

/// The grants `sql` reads for `owner_ids`, each with its owner.
async fn granted(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    owner_ids: &[i64],
) -> sqlx::Result<Grants> {
    let rows: Vec<Granted> = super::rows_for_ids(ex, sql, owner_ids).await?;
    Ok(rows.into_iter().map(Granted::pair).collect())
}

/// Permission keys with the id of the user holding each.
pub type KeysByUser = Vec<(i64, String)>;

/// Per user of `user_ids`, every permission key they hold or may get back:
/// direct grants, grants through groups, and what an open deactivation
/// keeps to restore (its permissions and its groups' permissions). The
/// scope rule compares this with the caller's permissions; whether the user
/// is active does not matter, since a reactivation brings it all back.
pub async fn scope_keys_for_users(
    ex: impl PgExecutor<'_>,
    user_ids: &[i64],
) -> sqlx::Result<KeysByUser> {
    let sql = "SELECT held.user_id, p.app_label || '.' || p.codename AS key \
         FROM ( \
             SELECT user_id, permission_id FROM user_permissions WHERE user_id = ANY($1) \
             UNION SELECT ug.user_id, gp.permission_id FROM user_groups ug \
                   JOIN group_permissions gp ON gp.group_id = ug.group_id WHERE ug.user_id = ANY($1) \
             UNION SELECT d.user_id, unnest(d.permission_ids) FROM deactivations d \
                   WHERE d.user_id = ANY($1) AND d.ended_at IS NULL \
             UNION SELECT d.user_id, gp.permission_id FROM deactivations d \
                   JOIN group_permissions gp ON gp.group_id = ANY(d.group_ids) \
                   WHERE d.user_id = ANY($1) AND d.ended_at IS NULL \
         ) held JOIN permissions p ON p.id = held.permission_id \
         ORDER BY 1, 2";
    super::rows_for_ids(ex, sql, user_ids).await
}
