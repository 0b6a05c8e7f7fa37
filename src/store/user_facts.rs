//! What a page of users shows about each of them besides the row: their
//! groups, their effective permission keys and how many votes they cast.
//!
//! Why one statement: a page asking for all three used to cost three
//! statements, each a round trip holding its own pool connection while the
//! request waited for the slowest; under load the pool, not PostgreSQL, was
//! the queue. Here the facts of a batch of users come in one statement, and
//! each part runs only when some field of the batch asked for it (`$2`..`$4`
//! are one-time filters: a part that is not asked for reads nothing).

use std::collections::HashSet;

use sqlx::{FromRow, PgExecutor};

use super::groups::GroupRow;
use super::permissions::KeysByUser;

/// One kind of fact about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fact {
    /// The groups the user belongs to, by name.
    Groups,
    /// `app.codename` keys: direct grants and those of the user's groups;
    /// every permission for an active superuser; none for an inactive user.
    PermissionKeys,
    /// Votes cast (detached votes no longer count).
    VoteCount,
}

/// The facts of some users, each tagged with its user.
#[derive(Debug, Default)]
pub struct Facts {
    pub groups: Vec<(i64, GroupRow)>,
    pub permission_keys: KeysByUser,
    pub vote_counts: Vec<(i64, i64)>,
}

/// One row of the statement: which fact, whose, and its value (a group's id
/// and name, a permission key, or a count).
#[derive(FromRow)]
struct FactRow {
    fact: i16,
    user_id: i64,
    number: i64,
    text: Option<String>,
}

const FACTS_OF_USERS: &str = "\
    SELECT 1::int2 AS fact, ug.user_id, g.id AS number, g.name AS text \
      FROM user_groups ug JOIN groups g ON g.id = ug.group_id \
     WHERE $2 AND ug.user_id = ANY($1) \
    UNION ALL \
    SELECT 2::int2, u.id, 0, p.app_label || '.' || p.codename \
      FROM users u CROSS JOIN permissions p \
     WHERE $3 AND u.id = ANY($1) AND u.is_active AND u.is_superuser \
    UNION ALL \
    SELECT 2::int2, held.user_id, 0, p.app_label || '.' || p.codename \
      FROM ( \
          SELECT up.user_id, up.permission_id FROM user_permissions up \
           WHERE up.user_id = ANY($1) \
          UNION \
          SELECT ug.user_id, gp.permission_id FROM user_groups ug \
            JOIN group_permissions gp ON gp.group_id = ug.group_id \
           WHERE ug.user_id = ANY($1) \
      ) held \
      JOIN users u ON u.id = held.user_id AND u.is_active AND NOT u.is_superuser \
      JOIN permissions p ON p.id = held.permission_id \
     WHERE $3 \
    UNION ALL \
    SELECT 3::int2, user_id, count(*), NULL FROM votes \
     WHERE $4 AND user_id = ANY($1) GROUP BY user_id \
    ORDER BY fact, text, number";

/// The `wanted` facts of each of `user_ids`, in one statement. Groups come
/// by name, permission keys sorted; a user with no votes has no count row.
pub async fn of_users(
    ex: impl PgExecutor<'_>,
    user_ids: &[i64],
    wanted: &HashSet<Fact>,
) -> sqlx::Result<Facts> {
    let rows: Vec<FactRow> = sqlx::query_as(FACTS_OF_USERS)
        .bind(user_ids)
        .bind(wanted.contains(&Fact::Groups))
        .bind(wanted.contains(&Fact::PermissionKeys))
        .bind(wanted.contains(&Fact::VoteCount))
        .fetch_all(ex)
        .await?;
    let mut facts = Facts::default();
    for row in rows {
        let text = row.text.unwrap_or_default();
        match row.fact {
            1 => facts.groups.push((
                row.user_id,
                GroupRow {
                    id: row.number,
                    name: text,
                },
            )),
            2 => facts.permission_keys.push((row.user_id, text)),
            _ => facts.vote_counts.push((row.user_id, row.number)),
        }
    }
    Ok(facts)
}
