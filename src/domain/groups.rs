//! Groups and permission grants, under the no-escalation rule.
//!
//! Giving a user access and taking it away is one operation
//! ([`change_access`]) whether the access is a group's membership or a
//! direct grant: the scope, no-escalation and audit rules are written once.

pub use crate::store::access::Change;

use serde_json::json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::access::{ADD_GROUP, CHANGE_GROUP, Rule, ensure_holds_all};
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Acting, Begun};
use super::{Actor, validation};
use crate::error::{AppError, AppResult, OnConstraint, OrNotFound};
use crate::store::access::{self as store_access, Held};
use crate::store::groups::{self, GroupRow};
use crate::store::permissions::{self, PermissionRow};
use crate::store::users::UserRow;

const MAX_GROUP_NAME: usize = 150;

/// The refusal of a group name in use (also how the SCIM layer tells a
/// uniqueness conflict from other bad input).
pub const GROUP_NAME_TAKEN: &str = "a group with that name already exists";

/// Resolves `app.codename` keys, refusing unknown ones by name.
async fn resolve_permissions(
    conn: &mut PgConnection,
    field: &str,
    keys: &[String],
) -> AppResult<Vec<PermissionRow>> {
    let mut wanted: Vec<String> = keys.iter().map(|k| k.trim().to_owned()).collect();
    wanted.sort();
    wanted.dedup();
    if wanted.len() > 1000 {
        return Err(AppError::invalid(field, "too many permissions"));
    }
    let found = permissions::by_keys(&mut *conn, &wanted).await?;
    if let Some(unknown) = wanted
        .iter()
        .find(|key| !found.iter().any(|p| &p.key() == *key))
    {
        let shown: String = unknown.chars().take(100).collect();
        return Err(AppError::invalid(
            field,
            format!("unknown permission '{shown}' (expected app.codename)"),
        ));
    }
    Ok(found)
}

fn keys_of(perms: &[PermissionRow]) -> Vec<String> {
    perms.iter().map(PermissionRow::key).collect()
}

fn ids_of(perms: &[PermissionRow]) -> Vec<i64> {
    perms.iter().map(|p| p.id).collect()
}

/// The keys of the permissions the group carries now.
async fn keys_of_group(conn: &mut PgConnection, group_id: i64) -> AppResult<Vec<String>> {
    let carried = permissions::for_groups(&mut *conn, &[group_id]).await?;
    Ok(carried.into_iter().map(|(_, p)| p.key()).collect())
}

/// Opens a change to a group: the caller re-checked against
/// `auth.change_group` in a new transaction, and the group locked in it
/// (`NOT_FOUND` when there is none).
pub(super) async fn begin_change(
    pool: &PgPool,
    actor: &Actor,
    group_id: i64,
) -> AppResult<(Begun, GroupRow)> {
    let mut begun = authority::begin(pool, actor, Rule::Permission(CHANGE_GROUP)).await?;
    let group = groups::find_for_update(&mut *begun.tx, group_id)
        .await
        .or_not_found("group")?;
    Ok((begun, group))
}

/// The audit entry of a change to the group itself, written as the last
/// step of `tx`, which it commits.
pub(super) async fn record_group_change(
    tx: Transaction<'_, Postgres>,
    actor: &Actor,
    action: AuditAction,
    group: &GroupRow,
    details: serde_json::Value,
) -> AppResult<()> {
    AuditEntry::new(action, Target::Described(format!("group {}", group.name)))
        .by(actor)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(())
}

pub async fn create_group(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    permission_keys: &[String],
) -> AppResult<GroupRow> {
    let name = validation::line("name", name, MAX_GROUP_NAME, true)?;
    let Begun { mut tx, actor } =
        authority::begin(pool, actor, Rule::Permission(ADD_GROUP)).await?;
    let perms = resolve_permissions(&mut tx, "permissions", permission_keys).await?;
    ensure_holds_all(&actor, &keys_of(&perms))?;
    let group = groups::insert(&mut *tx, &name)
        .await
        .on_constraint(groups::NAME_UNIQUE, || {
            AppError::invalid("name", GROUP_NAME_TAKEN)
        })?;
    groups::set_permissions(&mut tx, group.id, &ids_of(&perms)).await?;
    let details = json!({ "groupId": group.id, "permissions": keys_of(&perms) });
    record_group_change(tx, &actor, AuditAction::GroupCreated, &group, details).await?;
    Ok(group)
}

/// Replaces a group's permissions. Adding a permission needs holding it;
/// removing one does not (taking access away is never an escalation).
pub async fn set_group_permissions(
    pool: &PgPool,
    actor: &Actor,
    group_id: i64,
    permission_keys: &[String],
) -> AppResult<GroupRow> {
    let (Begun { mut tx, actor }, group) = begin_change(pool, actor, group_id).await?;
    let perms = resolve_permissions(&mut tx, "permissions", permission_keys).await?;
    let before = keys_of_group(&mut tx, group.id).await?;
    let added: Vec<String> = keys_of(&perms)
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    ensure_holds_all(&actor, &added)?;
    groups::set_permissions(&mut tx, group.id, &ids_of(&perms)).await?;
    let removed: Vec<&String> = before
        .iter()
        .filter(|k| !perms.iter().any(|p| &p.key() == *k))
        .collect();
    if added.is_empty() && removed.is_empty() {
        // The same set again: nothing changed, so nothing to audit.
        tx.commit().await?;
        return Ok(group);
    }
    let details = json!({ "groupId": group.id, "added": added, "removed": removed });
    record_group_change(
        tx,
        &actor,
        AuditAction::GroupPermissionsSet,
        &group,
        details,
    )
    .await?;
    Ok(group)
}

/// Renames a group (`auth.change_group`). A name changes no one's access,
/// so no escalation rule applies; the old and new names are audited.
pub async fn rename_group(
    pool: &PgPool,
    actor: &Actor,
    group_id: i64,
    name: &str,
) -> AppResult<GroupRow> {
    let name = validation::line("name", name, MAX_GROUP_NAME, true)?;
    let (Begun { mut tx, actor }, before) = begin_change(pool, actor, group_id).await?;
    if before.name == name {
        tx.commit().await?;
        return Ok(before);
    }
    let group = groups::rename(&mut *tx, group_id, &name)
        .await
        .on_constraint(groups::NAME_UNIQUE, || {
            AppError::invalid("name", GROUP_NAME_TAKEN)
        })?;
    let details =
        json!({ "groupId": group.id, "changed": ["name"], "from": before.name, "to": group.name });
    record_group_change(tx, &actor, AuditAction::GroupUpdated, &group, details).await?;
    Ok(group)
}

/// What a caller gives a user or takes away, as the API names it.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// Membership of the group with this id.
    Group(i64),
    /// A permission granted directly, by its `app.codename` key.
    Permission(&'a str),
}

/// An [`Access`] as found in the database.
enum Found {
    Group(GroupRow),
    Permission(PermissionRow),
}

impl Found {
    /// Looks up what `access` names: `NOT_FOUND` for an unknown group,
    /// `INVALID_INPUT` (field `permission`) for an unknown permission key.
    async fn of(conn: &mut PgConnection, access: Access<'_>) -> AppResult<Found> {
        match access {
            Access::Group(id) => groups::find(&mut *conn, id)
                .await?
                .map(Found::Group)
                .or_not_found("group"),
            Access::Permission(key) => {
                let mut found = resolve_permissions(conn, "permission", &[key.to_owned()]).await?;
                Ok(Found::Permission(found.remove(0)))
            }
        }
    }

    fn held(&self) -> Held {
        match self {
            Found::Group(group) => Held::Group(group.id),
            Found::Permission(perm) => Held::Permission(perm.id),
        }
    }

    /// The keys of every permission holding it brings: giving it needs
    /// holding them all (no escalation).
    async fn brings(&self, conn: &mut PgConnection) -> AppResult<Vec<String>> {
        match self {
            Found::Group(group) => keys_of_group(conn, group.id).await,
            Found::Permission(perm) => Ok(vec![perm.key()]),
        }
    }

    fn action(&self, change: Change) -> AuditAction {
        match (self, change) {
            (Found::Group(_), Change::Give) => AuditAction::UserAddedToGroup,
            (Found::Group(_), Change::Take) => AuditAction::UserRemovedFromGroup,
            (Found::Permission(_), Change::Give) => AuditAction::PermissionGranted,
            (Found::Permission(_), Change::Take) => AuditAction::PermissionRevoked,
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Found::Group(group) => json!({ "groupId": group.id, "group": group.name }),
            Found::Permission(perm) => json!({ "permission": perm.key() }),
        }
    }
}

/// Gives a user in the caller's scope a group's membership or a direct
/// permission, or takes it away (`addUserToGroup`, `removeUserFromGroup`,
/// `grantPermission`, `revokePermission`). Giving needs holding every
/// permission it brings; taking access away never does. Giving what the
/// user holds already, or taking what they do not hold, changes nothing and
/// is not audited.
pub async fn change_access(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    access: Access<'_>,
    change: Change,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let Acting { actor, target } = authority::lock_manageable_user(&mut tx, actor, user_id).await?;
    let found = Found::of(&mut tx, access).await?;
    if change == Change::Give {
        ensure_holds_all(&actor, &found.brings(&mut tx).await?)?;
    }
    if store_access::change(&mut *tx, target.id, found.held(), change).await? {
        AuditEntry::new(found.action(change), Target::User(&target))
            .by(&actor)
            .details(found.details())
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(target)
}
