//! What a user holds one at a time: a group's membership (`user_groups`) or
//! a permission granted directly (`user_permissions`). Giving or taking
//! either is the same statement on another link table, so one function
//! serves all four changes, and a new kind of holding is one more row of
//! its table.

use sqlx::PgExecutor;

/// A membership or a direct grant, by the group's or the permission's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Group(i64),
    Permission(i64),
}

/// Which way a change of what a user holds goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Give,
    Take,
}

/// Gives `held` to the user, or takes it; false when that changed nothing
/// (they held it already, or did not hold it).
pub async fn change(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    held: Held,
    change: Change,
) -> sqlx::Result<bool> {
    let sql = match (held, change) {
        (Held::Group(_), Change::Give) => {
            "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        }
        (Held::Group(_), Change::Take) => {
            "DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2"
        }
        (Held::Permission(_), Change::Give) => {
            "INSERT INTO user_permissions (user_id, permission_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        }
        (Held::Permission(_), Change::Take) => {
            "DELETE FROM user_permissions WHERE user_id = $1 AND permission_id = $2"
        }
    };
    let (Held::Group(id) | Held::Permission(id)) = held;
    let done = sqlx::query(sql).bind(user_id).bind(id).execute(ex).await?;
    Ok(done.rows_affected() == 1)
}
