//! Provisioning by an identity provider (SCIM 2.0), mapped onto memberdesk's
//! own operations rather than around them.
//!
//! A deprovisioning that arrives by SCIM must be the very deactivation an
//! administrator would do (sessions revoked at once, access stripped and
//! remembered, audited, scope and last-superuser rules), or an identity
//! provider would become the one door that skips memberdesk's guarantees.
//! So every change here calls the domain function the GraphQL API calls,
//! as an [`Actor::Service`] holding exactly its token's permissions: this
//! module only works out *which* operations a SCIM request amounts to.
//!
//! Tokens are made, listed and revoked from the command line
//! (`memberdesk scim-token`); they are shown once and stored as SHA-256
//! digests (32 random bytes need no slow hash).

use secrecy::SecretString;
use sqlx::PgPool;

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use super::access::{Rule, VIEW_GROUP, VIEW_USER};
use super::accounts::{self, NewProfileInput, NewUserInput, UserPatch};
use super::actor::ServiceActor;
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Acting, Begun};
use super::deletion::{self, DeletePolicy, DeleteRequest};
use super::groups::{self, Access, Change};
use super::lifecycle::{self, DeactivateOptions, Restore};
use super::validation::Reason;
use super::{Actor, Mode};
use crate::auth::token;
use crate::config::{LoginLimit, PasswordPolicy, ScimDelete};
use crate::error::{AppError, AppResult, OnConstraint, OrNotFound};
pub use crate::store::directory::Resource;
use crate::store::directory::{self, Condition, GroupColumn, UserColumn, Window};
use crate::store::groups::GroupRow;
use crate::store::login_failures::{Counter, Limit, Scope};
use crate::store::scim_tokens::{self, ScimTokenRow};
use crate::store::user_facts::Fact;
use crate::store::users::{self, UserRow};
use crate::store::{self as store, permissions};

/// A token as `scim-token create` made it: the secret is shown once.
pub struct IssuedScimToken {
    pub row: ScimTokenRow,
    pub secret: String,
}

/// Makes a provisioning client's token, holding exactly `permission_keys`
/// (each a known `app.codename`).
pub async fn create_token(
    pool: &PgPool,
    name: &str,
    permission_keys: &[String],
) -> AppResult<IssuedScimToken> {
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_name {
        return Err(AppError::invalid(
            "name",
            "a token name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    let mut keys: Vec<String> = permission_keys
        .iter()
        .map(|k| k.trim().to_owned())
        .collect();
    keys.retain(|k| !k.is_empty());
    keys.sort();
    keys.dedup();
    let known = permissions::by_keys(pool, &keys).await?;
    if let Some(unknown) = keys.iter().find(|k| !known.iter().any(|p| &p.key() == *k)) {
        return Err(AppError::invalid(
            "permissions",
            format!(
                "unknown permission '{unknown}' (expected app.codename, e.g. auth.change_user)"
            ),
        ));
    }
    let issued = token::issue();
    let mut tx = pool.begin().await?;
    let row = scim_tokens::insert(&mut *tx, name, &issued.digest, &keys)
        .await
        .on_constraint(scim_tokens::NAME_UNIQUE, || {
            AppError::invalid(
                "name",
                format!("a SCIM token named '{name}' exists already"),
            )
        })?;
    // The name and what it may do, never the token nor its digest.
    AuditEntry::new(AuditAction::ScimTokenCreated, token_target(&row))
        .by(&Actor::System)
        .details(json!({ "name": row.name, "permissions": row.permissions }))
        .record_and_commit(tx)
        .await?;
    Ok(IssuedScimToken {
        row,
        secret: issued.reveal(),
    })
}

pub async fn list_tokens(pool: &PgPool) -> AppResult<Vec<ScimTokenRow>> {
    Ok(scim_tokens::all(pool).await?)
}

/// Revokes the named token: every request with it is refused from now on,
/// including those in flight (the domain re-reads the token under lock).
/// Audited once, by the revocation that changed it; revoking it again
/// changes nothing and records nothing.
pub async fn revoke_token(pool: &PgPool, name: &str) -> AppResult<ScimTokenRow> {
    let mut tx = pool.begin().await?;
    let found = scim_tokens::find_by_name_for_update(&mut *tx, name.trim())
        .await
        .or_not_found("SCIM token")?;
    if found.revoked_at.is_some() {
        return Ok(found);
    }
    let row = scim_tokens::revoke(&mut *tx, &found.name)
        .await
        .or_not_found("SCIM token")?;
    AuditEntry::new(AuditAction::ScimTokenRevoked, token_target(&row))
        .by(&Actor::System)
        .details(json!({ "name": row.name }))
        .record_and_commit(tx)
        .await?;
    Ok(row)
}

/// The audit target of an entry about a token (its client's name).
fn token_target(row: &ScimTokenRow) -> Target<'static> {
    Target::Described(format!("SCIM token {}", row.name))
}

/// The key of the failed-bearer counter of a client address: a budget of
/// its own (SCIM clients' failures do not lock people's logins out of an
/// address, nor the reverse), under the per-address limit of logins.
/// Addresses hold no space, so it names no login counter.
fn bearer_key(client_address: Option<&str>) -> String {
    format!("scim {}", client_address.unwrap_or("unknown"))
}

/// The provisioning client a bearer token belongs to, if it is live.
///
/// Failed bearers are limited per client address as failed logins are
/// (`MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS` attempts per window): over the
/// limit, every request from the address is `RATE_LIMITED` before its token
/// is looked at, so guessing goes no further, and a refused request counts
/// nothing and changes nothing. Unlike a login, a good token costs no write
/// (a SCIM client calls often): a failure is counted after the check, so a
/// burst of parallel guesses may pass the limit by the burst's size, which
/// 256-bit tokens make harmless.
pub async fn authenticate(
    pool: &PgPool,
    bearer: &str,
    client_address: Option<&str>,
    limit: &LoginLimit,
) -> AppResult<Option<Actor>> {
    let key = bearer_key(client_address);
    let counter = Counter {
        scope: Scope::Address,
        key: &key,
    };
    let limit = Limit {
        window: limit.window,
        max: limit.per_address,
    };
    if counter.is_over(pool, limit).await? {
        return Err(AppError::RateLimited);
    }
    let found = scim_tokens::find_live_by_digest(pool, &token::digest(bearer)).await?;
    if found.is_none() {
        counter.reserve(pool, limit).await?;
    }
    Ok(found.map(|row| Actor::Service(ServiceActor::from(row))))
}

/// A person as a provisioning client describes them (a SCIM User resource
/// reduced to what memberdesk keeps).
#[derive(Debug, Clone)]
pub struct Person {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
}

/// Creates the person (`createUser`, as the service), then deactivates
/// them if they arrive inactive. With a password they may log in to
/// memberdesk; without one they cannot (they sign in at their provider).
pub async fn provision_user(
    pool: &PgPool,
    actor: &Actor,
    person: &Person,
    password: Option<SecretString>,
    policy: &PasswordPolicy,
) -> AppResult<UserRow> {
    let user = match password {
        Some(password) => {
            let input = NewUserInput {
                username: person.username.clone(),
                email: person.email.clone(),
                password,
                first_name: person.first_name.clone(),
                last_name: person.last_name.clone(),
                is_staff: false,
                is_superuser: false,
            };
            accounts::create_user(pool, actor, input, policy).await?
        }
        None => {
            let input = NewProfileInput {
                username: &person.username,
                email: &person.email,
                first_name: &person.first_name,
                last_name: &person.last_name,
                is_staff: false,
                is_superuser: false,
            };
            accounts::create_user_without_password(pool, actor, input).await?
        }
    };
    if person.active {
        return Ok(user);
    }
    Ok(deprovision(pool, actor, user.id).await?.user)
}

/// Brings the user to `person`: the profile through `updateUser` (only the
/// fields that differ, so an unchanged profile writes nothing), then the
/// lifecycle: `active: false` is `deactivateUser`, `active: true` is
/// `reactivateUser` giving back what the deactivation took (access the
/// caller must hold itself: the no-escalation rule).
pub async fn update_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    person: &Person,
) -> AppResult<UserRow> {
    let mut user = find_user(pool, actor, user_id).await?;
    let differs = |new: &str, now: &str| (new != now).then(|| new.to_owned());
    let patch = UserPatch {
        username: differs(&person.username, &user.username),
        email: differs(&person.email, &user.email),
        first_name: differs(&person.first_name, &user.first_name),
        last_name: differs(&person.last_name, &user.last_name),
        is_staff: None,
        is_superuser: None,
    };
    let unchanged = patch.username.is_none()
        && patch.email.is_none()
        && patch.first_name.is_none()
        && patch.last_name.is_none();
    if !unchanged {
        user = accounts::update_user(pool, actor, user_id, patch).await?;
    }
    match (person.active, user.is_active) {
        (false, true) => Ok(deprovision(pool, actor, user_id).await?.user),
        (true, false) => {
            let reason = Some(format!("reprovisioned by {}", actor.username()));
            let done =
                lifecycle::reactivate_user(pool, actor, user_id, Restore::Access, reason).await?;
            Ok(done.user)
        }
        _ => Ok(user),
    }
}

/// `deactivateUser` with the contract's defaults, the reason naming the client.
async fn deprovision(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
) -> AppResult<lifecycle::Deactivation> {
    let options = DeactivateOptions {
        reason: Reason::system(format!("deprovisioned by {}", actor.username())),
        ..DeactivateOptions::default()
    };
    lifecycle::deactivate_user(pool, actor, user_id, options).await
}

/// `DELETE /Users/{id}`: a deactivation, or (as configured) an anonymization.
pub async fn remove_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    mode: ScimDelete,
) -> AppResult<()> {
    find_user(pool, actor, user_id).await?;
    match mode {
        ScimDelete::Deactivate => {
            deprovision(pool, actor, user_id).await?;
        }
        ScimDelete::Anonymize => {
            let reason = Reason::system(format!("deleted by {}", actor.username()));
            lifecycle::anonymize_user(pool, actor, user_id, reason).await?;
        }
    }
    Ok(())
}

/// A user the caller may see (`auth.view_user`); anonymized users are gone
/// to a directory (`NOT_FOUND`).
pub async fn find_user(pool: &PgPool, actor: &Actor, user_id: i64) -> AppResult<UserRow> {
    Rule::Permission(VIEW_USER).check_actor(actor)?;
    users::find(pool, user_id)
        .await?
        .filter(|u| u.anonymized_at.is_none())
        .or_not_found("user")
}

/// A kind of row a directory lists: the columns a filter may test, the
/// permission that shows it, and the listing that reads it. Users and
/// groups are listed by the one [`list`], so the permission check and a
/// bad filter's error have one home.
pub trait Listed: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin {
    type Column: directory::Column;
    /// The permission a caller needs to see any of these rows.
    const VIEW: &'static str;
    const LISTING: Lister<Self::Column>;
    /// Which table holds the `externalId` of these rows.
    const RESOURCE: Resource;
}

/// Builds a directory listing of rows matching a condition on `C`.
pub type Lister<C> =
    fn(Option<&Condition<C>>, Window) -> Result<directory::Listing, directory::Unrunnable>;

impl Listed for UserRow {
    type Column = UserColumn;
    const VIEW: &'static str = VIEW_USER;
    const LISTING: Lister<UserColumn> = directory::users;
    const RESOURCE: Resource = Resource::User;
}

impl Listed for GroupRow {
    type Column = GroupColumn;
    const VIEW: &'static str = VIEW_GROUP;
    const LISTING: Lister<GroupColumn> = directory::groups;
    const RESOURCE: Resource = Resource::Group;
}

/// A page of the rows matching `condition`, and how many match in all; a
/// filter the directory cannot run is `INVALID_INPUT` on `filter`.
pub async fn list<R: Listed>(
    pool: &PgPool,
    actor: &Actor,
    condition: Option<&Condition<R::Column>>,
    window: Window,
) -> AppResult<(Vec<R>, i64)> {
    Rule::Permission(R::VIEW).check_actor(actor)?;
    let listing =
        (R::LISTING)(condition, window).map_err(|why| AppError::invalid("filter", why.0))?;
    Ok(listing.run(&mut *pool.acquire().await?).await?)
}

/// The groups of each of `user_ids` (shown only to a caller who may see groups).
pub async fn groups_of(
    pool: &PgPool,
    actor: &Actor,
    user_ids: &[i64],
) -> AppResult<Vec<(i64, GroupRow)>> {
    if !actor.has_perm(VIEW_GROUP) {
        return Ok(Vec::new());
    }
    let wanted = HashSet::from([Fact::Groups]);
    Ok(store::user_facts::of_users(pool, user_ids, &wanted)
        .await?
        .groups)
}

/// A group's member as a directory shows it: by id only.
pub struct Member {
    pub group_id: i64,
    pub user_id: i64,
}

/// A group the caller may see (`auth.view_group`).
pub async fn find_group(pool: &PgPool, actor: &Actor, group_id: i64) -> AppResult<GroupRow> {
    Rule::Permission(VIEW_GROUP).check_actor(actor)?;
    store::groups::find(pool, group_id)
        .await
        .or_not_found("group")
}

/// The members of each of `group_ids`.
pub async fn members_of(pool: &PgPool, group_ids: &[i64]) -> AppResult<Vec<Member>> {
    let rows = directory::members(pool, group_ids).await?;
    Ok(rows
        .into_iter()
        .map(|(group_id, user_id)| Member { group_id, user_id })
        .collect())
}

/// Creates a group with no permissions (`createGroup`), then adds its members.
pub async fn provision_group(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    member_ids: &[i64],
) -> AppResult<GroupRow> {
    let group = groups::create_group(pool, actor, name, &[]).await?;
    set_members(pool, actor, group.id, member_ids).await?;
    Ok(group)
}

/// Makes the group's members exactly `member_ids`, one `addUserToGroup` or
/// `removeUserFromGroup` per change: each under the scope and no-escalation
/// rules, each audited..
pub async fn set_members(
    pool: &PgPool,
    actor: &Actor,
    group_id: i64,
    member_ids: &[i64],
) -> AppResult<()> {
    let now: Vec<i64> = directory::members(pool, &[group_id])
        .await?
        .into_iter()
        .map(|(_, user_id)| user_id)
        .collect();
    for id in member_ids.iter().filter(|id| !now.contains(id)) {
        groups::change_access(pool, actor, *id, Access::Group(group_id), Change::Give).await?;
    }
    for id in now.iter().filter(|id| !member_ids.contains(id)) {
        groups::change_access(pool, actor, *id, Access::Group(group_id), Change::Take).await?;
    }
    Ok(())
}

/// Sets the identifier the client keeps for a user or a group
/// (`externalId`): a change to it like any other, held to the same rules
/// (`auth.change_user` within scope, or `auth.change_group`) and audited
/// the same way (`USER_UPDATED`, `GROUP_UPDATED`) when it changes.
pub async fn set_external_id(
    pool: &PgPool,
    actor: &Actor,
    resource: Resource,
    id: i64,
    external_id: Option<&str>,
) -> AppResult<()> {
    let external_id = checked_external_id(external_id)?;
    match resource {
        Resource::User => {
            let mut tx = pool.begin().await?;
            let Acting { actor, target } =
                authority::lock_manageable_user(&mut tx, actor, id).await?;
            if directory::set_external_id(&mut *tx, resource, id, external_id).await? {
                AuditEntry::new(AuditAction::UserUpdated, Target::User(&target))
                    .by(&actor)
                    .details(json!({ "changed": ["externalId"] }))
                    .record(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        Resource::Group => {
            let (Begun { mut tx, actor }, group) = groups::begin_change(pool, actor, id).await?;
            if !directory::set_external_id(&mut *tx, resource, id, external_id).await? {
                tx.commit().await?;
                return Ok(());
            }
            let details = json!({ "groupId": group.id, "changed": ["externalId"] });
            groups::record_group_change(tx, &actor, AuditAction::GroupUpdated, &group, details)
                .await
        }
    }
}

/// At most 256 characters; blank is none.
fn checked_external_id(external_id: Option<&str>) -> AppResult<Option<&str>> {
    match external_id.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) if e.chars().count() > 256 => {
            Err(AppError::invalid("externalId", "at most 256 characters"))
        }
        other => Ok(other),
    }
}

/// The `externalId` of each of `ids` that has one.
pub async fn external_ids(
    pool: &PgPool,
    resource: Resource,
    ids: &[i64],
) -> AppResult<BTreeMap<i64, String>> {
    Ok(directory::external_ids(pool, resource, ids)
        .await?
        .into_iter()
        .collect())
}

/// Renames the group (`displayName` changed by PUT or PATCH).
pub async fn rename_group(
    pool: &PgPool,
    actor: &Actor,
    group_id: i64,
    name: &str,
) -> AppResult<()> {
    groups::rename_group(pool, actor, group_id, name).await?;
    Ok(())
}

/// Deletes the group (`deleteGroup` with its memberships, `SET_NULL`):
/// access is taken away, never given.
pub async fn remove_group(pool: &PgPool, actor: &Actor, group_id: i64) -> AppResult<()> {
    let request = DeleteRequest {
        id: group_id,
        policy: DeletePolicy::SetNull,
        mode: Mode::Execute,
        plan_token: None,
        reason: Reason::system(format!("deleted by {}", actor.username())),
    };
    deletion::delete_group(pool, actor, request).await?;
    Ok(())
}
