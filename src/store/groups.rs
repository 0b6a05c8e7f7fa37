//! The `groups` table, group membership (`user_groups`) and group permissions.
//! A membership is given and taken in [`super::access`].

use sqlx::{FromRow, PgConnection, PgExecutor};

#[derive(Debug, Clone, FromRow)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
}

pub const NAME_UNIQUE: &str = "groups_name_unique";

pub async fn find(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<GroupRow>> {
    super::row_by_key(ex, "SELECT id, name FROM groups WHERE id = $1", id).await
}

/// The group, locked until the transaction ends (for read-modify-write).
pub async fn find_for_update(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<GroupRow>> {
    super::row_by_key(
        ex,
        "SELECT id, name FROM groups WHERE id = $1 FOR UPDATE",
        id,
    )
    .await
}

pub async fn find_many(ex: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<GroupRow>> {
    super::rows_for_ids(ex, "SELECT id, name FROM groups WHERE id = ANY($1)", ids).await
}

pub async fn find_by_name(ex: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<GroupRow>> {
    super::row_by_key(ex, "SELECT id, name FROM groups WHERE name = $1", name).await
}

pub async fn all(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<GroupRow>> {
    sqlx::query_as("SELECT id, name FROM groups ORDER BY name, id")
        .fetch_all(ex)
        .await
}

pub async fn insert(ex: impl PgExecutor<'_>, name: &str) -> sqlx::Result<GroupRow> {
    sqlx::query_as("INSERT INTO groups (name) VALUES ($1) RETURNING id, name")
        .bind(name)
        .fetch_one(ex)
        .await
}

pub async fn rename(ex: impl PgExecutor<'_>, id: i64, name: &str) -> sqlx::Result<GroupRow> {
    let sql = "UPDATE groups SET name = $2 WHERE id = $1 RETURNING id, name";
    super::updated_row(ex, sql, id, name).await
}

/// Replaces the group's permissions with exactly `permission_ids`: removes
/// those not in the set, then adds the new ones (those kept are not touched).
pub async fn set_permissions(
    conn: &mut PgConnection,
    group_id: i64,
    permission_ids: &[i64],
) -> sqlx::Result<()> {
    for sql in [
        "DELETE FROM group_permissions WHERE group_id = $1 AND NOT (permission_id = ANY($2))",
        "INSERT INTO group_permissions (group_id, permission_id) SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
    ] {
        sqlx::query(sql)
            .bind(group_id)
            .bind(permission_ids)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// How many members each of `group_ids` has (groups with none are absent).
pub async fn member_counts(
    ex: impl PgExecutor<'_>,
    group_ids: &[i64],
) -> sqlx::Result<Vec<(i64, i64)>> {
    let sql =
        "SELECT group_id, count(*) FROM user_groups WHERE group_id = ANY($1) GROUP BY group_id";
    super::rows_for_ids(ex, sql, group_ids).await
}
