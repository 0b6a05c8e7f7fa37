//! Groups and permission grants, under the no-escalation rule.

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::access::{ADD_GROUP, CHANGE_GROUP, CHANGE_USER, Rule, ensure_holds_all};
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Acting};
use super::{Actor, validation};
use crate::error::{AppError, AppResult, OnConstraint};
use crate::store::groups::{self, GroupRow};
use crate::store::permissions::{self, PermissionRow};
use crate::store::users::UserRow;

const MAX_GROUP_NAME: usize = 150;

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

pub async fn create_group(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    permission_keys: &[String],
) -> AppResult<GroupRow> {
    let name = validation::line("name", name, MAX_GROUP_NAME, true)?;
    let mut tx = pool.begin().await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(ADD_GROUP)).await?;
    let perms = resolve_permissions(&mut tx, "permissions", permission_keys).await?;
    ensure_holds_all(actor, &keys_of(&perms))?;
    let group = groups::insert(&mut *tx, &name)
        .await
        .on_constraint(groups::NAME_UNIQUE, || {
            AppError::invalid("name", "a group with that name already exists")
        })?;
    let ids: Vec<i64> = perms.iter().map(|p| p.id).collect();
    groups::set_permissions(&mut tx, group.id, &ids).await?;
    let details = json!({ "groupId": group.id, "permissions": keys_of(&perms) });
    AuditEntry::new(
        AuditAction::GroupCreated,
        Target::Described(format!("group {}", group.name)),
    )
    .by(actor)
    .details(details)
    .record_and_commit(tx)
    .await?;
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
    let mut tx = pool.begin().await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(CHANGE_GROUP)).await?;
    let group = groups::find_for_update(&mut *tx, group_id)
        .await?
        .ok_or(AppError::NotFound("group"))?;
    let perms = resolve_permissions(&mut tx, "permissions", permission_keys).await?;
    let before: Vec<String> = permissions::for_groups(&mut *tx, &[group.id])
        .await?
        .into_iter()
        .map(|(_, p)| p.key())
        .collect();
    let added: Vec<String> = keys_of(&perms)
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    ensure_holds_all(actor, &added)?;
    let ids: Vec<i64> = perms.iter().map(|p| p.id).collect();
    groups::set_permissions(&mut tx, group.id, &ids).await?;
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
    AuditEntry::new(
        AuditAction::GroupPermissionsSet,
        Target::Described(format!("group {}", group.name)),
    )
    .by(actor)
    .details(details)
    .record_and_commit(tx)
    .await?;
    Ok(group)
}

/// Locks the caller (re-read and held to `auth.change_user`) and a user
/// they may change: it exists, is not anonymized, and is within the
/// caller's scope. The actor returned is the caller as re-read.
async fn lock_manageable_user(
    conn: &mut PgConnection,
    actor: &Actor,
    user_id: i64,
) -> AppResult<Acting> {
    let acting = authority::lock_caller_and_target(
        &mut *conn,
        actor,
        Rule::Permission(CHANGE_USER),
        user_id,
    )
    .await?;
    if acting.target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    authority::ensure_scope(&mut *conn, &acting.actor, &acting.target).await?;
    Ok(acting)
}

pub async fn add_user_to_group(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    group_id: i64,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let Acting {
        actor,
        target: user,
    } = lock_manageable_user(&mut tx, actor, user_id).await?;
    let actor = &actor;
    let group = groups::find(&mut *tx, group_id)
        .await?
        .ok_or(AppError::NotFound("group"))?;
    let carried: Vec<String> = permissions::for_groups(&mut *tx, &[group.id])
        .await?
        .into_iter()
        .map(|(_, p)| p.key())
        .collect();
    ensure_holds_all(actor, &carried)?;
    if groups::add_member(&mut *tx, group.id, user.id).await? {
        let details = json!({ "groupId": group.id, "group": group.name });
        AuditEntry::new(AuditAction::UserAddedToGroup, Target::User(&user))
            .by(actor)
            .details(details)
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(user)
}

pub async fn remove_user_from_group(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    group_id: i64,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let Acting {
        actor,
        target: user,
    } = lock_manageable_user(&mut tx, actor, user_id).await?;
    let actor = &actor;
    let group = groups::find(&mut *tx, group_id)
        .await?
        .ok_or(AppError::NotFound("group"))?;
    if groups::remove_member(&mut *tx, group.id, user.id).await? {
        let details = json!({ "groupId": group.id, "group": group.name });
        AuditEntry::new(AuditAction::UserRemovedFromGroup, Target::User(&user))
            .by(actor)
            .details(details)
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(user)
}

pub async fn grant_permission(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    key: &str,
) -> AppResult<UserRow> {
    change_direct_grant(pool, actor, user_id, key, true).await
}

pub async fn revoke_permission(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    key: &str,
) -> AppResult<UserRow> {
    change_direct_grant(pool, actor, user_id, key, false).await
}

async fn change_direct_grant(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    key: &str,
    grant: bool,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let Acting {
        actor,
        target: user,
    } = lock_manageable_user(&mut tx, actor, user_id).await?;
    let actor = &actor;
    let perm = resolve_permissions(&mut tx, "permission", &[key.to_owned()])
        .await?
        .remove(0);
    let changed = if grant {
        ensure_holds_all(actor, &[perm.key()])?;
        permissions::grant_to_user(&mut *tx, user.id, perm.id).await?
    } else {
        permissions::revoke_from_user(&mut *tx, user.id, perm.id).await?
    };
    if changed {
        let action = if grant {
            AuditAction::PermissionGranted
        } else {
            AuditAction::PermissionRevoked
        };
        let details = json!({ "permission": perm.key() });
        AuditEntry::new(action, Target::User(&user))
            .by(actor)
            .details(details)
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(user)
}
