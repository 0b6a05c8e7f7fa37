//! Bringing stored username keys up to the current `validation::username_key`.
//!
//! Keys used to be NFKC + lower case; they now also fold confusables (TR39
//! skeletons), which only Rust computes, so an SQL migration cannot do it.
//! [`recompute`] runs inside [`super::migrate`]'s transaction, under its
//! lock, once per database (recorded in `data_upgrades`).
//!
//! Two existing accounts may share a skeleton (`vern` and `vem`, or a
//! look-alike created before this check). Neither may lose its login, so
//! the older keeps the skeleton and the other is *grandfathered*: its key
//! becomes its old key behind a `\x01` that no username can begin with.
//! `login` tries that key too, so both go on logging in by their own
//! names; new look-alikes of either are refused.

use std::collections::HashSet;

use sqlx::PgConnection;

use crate::domain::validation;

const UPGRADE: &str = "username-keys-fold-confusables";

/// The key of an account grandfathered by [`recompute`], from its old key
/// (`validation::username_fold` of its username).
pub fn grandfathered_key(fold: &str) -> String {
    format!("\u{1}{fold}")
}

/// Recomputes every username key once; a no-op after the first run.
pub async fn recompute(conn: &mut PgConnection) -> sqlx::Result<()> {
    let done: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM data_upgrades WHERE name = $1)")
            .bind(UPGRADE)
            .fetch_one(&mut *conn)
            .await?;
    if done {
        return Ok(());
    }
    let rows: Vec<(i64, String, String, bool)> = sqlx::query_as(
        "SELECT id, username, username_key, anonymized_at IS NOT NULL FROM users ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let (ids, keys): (Vec<i64>, Vec<String>) = plan(&rows).into_iter().unzip();
    if !ids.is_empty() {
        // Uniqueness is checked row by row, so a key another row is about to
        // give up is still taken mid-statement: park the rows first.
        sqlx::query("UPDATE users SET username_key = E'\\x02' || id WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE users u SET username_key = k.key \
             FROM unnest($1::bigint[], $2::text[]) AS k(id, key) WHERE u.id = k.id",
        )
        .bind(&ids)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
        tracing::info!(
            changed = ids.len(),
            "username keys now fold look-alike characters"
        );
    }
    sqlx::query("INSERT INTO data_upgrades (name) VALUES ($1)")
        .bind(UPGRADE)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The new key of each row whose key changes; `rows` are (id, username,
/// current key, anonymized) by id, so the oldest account keeps a shared
/// skeleton. Anonymized rows keep `deleted-user-<id>` as anonymization
/// writes it, and no other row may take it, nor any key starting so.
fn plan(rows: &[(i64, String, String, bool)]) -> Vec<(i64, String)> {
    let mut taken: HashSet<String> = rows
        .iter()
        .filter(|(_, _, _, anonymized)| *anonymized)
        .map(|(_, _, key, _)| key.clone())
        .collect();
    let mut changes = Vec::new();
    for (id, username, key, _) in rows.iter().filter(|row| !row.3) {
        let wanted = validation::username_key(username);
        let new = if wanted.starts_with(validation::PSEUDONYM_PREFIX) {
            // A name taken before pseudonyms were reserved: keys starting so
            // are the anonymized users' alone, so it is grandfathered (or
            // stays where migration 0006 moved it).
            match key.starts_with('\u{1}') {
                true => key.clone(),
                false => grandfathered_key(key),
            }
        } else if taken.insert(wanted.clone()) {
            wanted
        } else {
            tracing::warn!(
                user_id = id,
                "username looks like an older one's; it keeps its old key"
            );
            grandfathered_key(key)
        };
        if &new != key {
            changes.push((*id, new));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_account_keeps_a_shared_skeleton_and_the_other_its_old_key() {
        let row =
            |id: i64, name: &str| (id, name.to_owned(), validation::username_fold(name), false);
        let rows = [
            row(1, "admin"),
            row(2, "\u{430}dmin"),
            row(3, "bob"),
            (4, "deleted-user-4".into(), "deleted-user-4".into(), true),
            row(5, "d\u{435}leted-user-4"),
            row(6, "deleted-user-9"),
            (
                7,
                "deleted-user-8".into(),
                grandfathered_key("deleted-user-8"),
                false,
            ),
        ];
        let plan = plan(&rows);
        assert_eq!(
            plan,
            vec![
                (1, validation::username_key("admin")),
                (2, grandfathered_key("\u{430}dmin")),
                (5, grandfathered_key("d\u{435}leted-user-4")),
                (6, grandfathered_key("deleted-user-9")),
            ],
            "bob's key is unchanged, so not rewritten; an anonymized key stays taken; \
             a live pseudonym is grandfathered (7 was moved aside already)"
        );
    }
}
