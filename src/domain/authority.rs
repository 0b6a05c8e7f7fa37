//! The caller's rights, re-read inside the transaction that uses them.
//!
//! The HTTP layer reads the caller once, when a request starts, and the
//! guards check that reading. But one request can hold several mutations,
//! and a caller may be deactivated, demoted or stripped of a permission
//! while it runs; a target may be promoted while a password is being hashed.
//! So every mutation, in its own transaction, re-reads its caller's session
//! and permissions with the caller's row share-locked (a concurrent change to
//! the caller waits for us, or we see it), locks its target, and only then
//! applies the operation's [`Rule`] and the scope rule to what it read.
//!
//! Rows are locked in id order (caller and target), after the superuser
//! lock when the target is a superuser: two staff members acting on each
//! other at the same instant then queue instead of deadlocking.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::Actor;
use super::access::{CHANGE_USER, Rule, ensure_in_scope, ensure_not_self};
use super::actor::{CurrentUser, ServiceActor};
use crate::error::{AppError, AppResult, OrNotFound};
use crate::store::users::{self, UserRow};
use crate::store::{permissions, scim_tokens, sessions};

/// The caller as they stand now, share-locked until the transaction ends,
/// and held to `rule`. A session revoked or a user deactivated since the
/// request started is `UNAUTHENTICATED`; rights lost since are `FORBIDDEN`.
pub async fn recheck(conn: &mut PgConnection, actor: &Actor, rule: Rule) -> AppResult<Actor> {
    let user = match actor {
        Actor::User(user) => user,
        Actor::System => return Ok(Actor::System),
        Actor::Service(service) => return recheck_service(conn, service.token_id, rule).await,
    };
    let fresh = sessions::find_live_for_share(&mut *conn, user.session_id)
        .await?
        .map(CurrentUser::from)
        .ok_or(AppError::Unauthenticated)?;
    rule.check(&fresh)?;
    Ok(Actor::User(fresh))
}

/// A provisioning service as its token stands now (share-locked): a token
/// revoked since the request started is `UNAUTHENTICATED`, and the rule is
/// applied to the permissions the token holds now.
async fn recheck_service(conn: &mut PgConnection, token_id: i64, rule: Rule) -> AppResult<Actor> {
    let fresh = scim_tokens::find_live_for_share(&mut *conn, token_id)
        .await?
        .map(|row| Actor::Service(ServiceActor::from(row)))
        .ok_or(AppError::Unauthenticated)?;
    rule.check_actor(&fresh)?;
    Ok(fresh)
}

/// A caller and the account they act on, both locked for the transaction.
pub struct Acting {
    /// The caller, re-read under lock (see [`recheck`]).
    pub actor: Actor,
    /// The target, locked for update.
    pub target: UserRow,
}

/// Locks the caller (re-checked against `rule`) and the target of an
/// operation, in id order. When the target is a superuser, the superuser
/// lock comes first: taken after the row locks, two superusers acting on
/// each other would each hold the other's row while waiting for it.
pub async fn lock_caller_and_target(
    conn: &mut PgConnection,
    actor: &Actor,
    rule: Rule,
    target_id: i64,
) -> AppResult<Acting> {
    let peek = users::find(&mut *conn, target_id)
        .await
        .or_not_found("user")?;
    if peek.is_superuser {
        users::lock_superuser_changes(&mut *conn).await?;
    }
    let caller_first = actor.user_id().is_some_and(|id| id < target_id);
    let early = match caller_first {
        true => Some(recheck(&mut *conn, actor, rule).await?),
        false => None,
    };
    let target = users::find_for_update(&mut *conn, target_id)
        .await
        .or_not_found("user")?;
    if target.is_superuser && !peek.is_superuser {
        // Promoted in between: rare, and the lock is still taken before any change.
        users::lock_superuser_changes(&mut *conn).await?;
    }
    let actor = match early {
        Some(actor) => actor,
        None => recheck(&mut *conn, actor, rule).await?,
    };
    Ok(Acting { actor, target })
}

/// Locks the caller (re-read and held to `auth.change_user`) and a user
/// they may change: one that exists, is not anonymized, and is within the
/// caller's scope. The actor returned is the caller as re-read.
pub async fn lock_manageable_user(
    conn: &mut PgConnection,
    actor: &Actor,
    user_id: i64,
) -> AppResult<Acting> {
    let rule = Rule::Permission(CHANGE_USER);
    let acting = lock_caller_and_target(&mut *conn, actor, rule, user_id).await?;
    if acting.target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    ensure_scope(&mut *conn, &acting.actor, &acting.target).await?;
    Ok(acting)
}

/// The scope rule ([`ensure_in_scope`]) with the target's permissions read
/// now; nothing is read for a superuser, who may act on anyone.
pub async fn ensure_scope(
    conn: &mut PgConnection,
    actor: &Actor,
    target: &UserRow,
) -> AppResult<()> {
    let scope: Vec<String> = match actor.is_superuser() {
        true => Vec::new(),
        false => permissions::scope_keys_for_users(&mut *conn, &[target.id])
            .await?
            .into_iter()
            .map(|(_, key)| key)
            .collect(),
    };
    ensure_in_scope(actor, target, &scope)
}

/// The rules of every action on another account: never on yourself (`verb`
/// names the action in the refusal), and only within your scope.
pub async fn ensure_may_act_on(
    conn: &mut PgConnection,
    actor: &Actor,
    target: &UserRow,
    verb: &'static str,
) -> AppResult<()> {
    ensure_not_self(actor, target, verb)?;
    ensure_scope(conn, actor, target).await
}

/// Refuses when taking `targets` out would leave no active superuser. The
/// superuser lock it takes serializes every change that could, so two
/// superusers removing each other at the same instant cannot both succeed.
pub async fn ensure_superusers_remain(
    tx: &mut PgConnection,
    targets: &[&UserRow],
) -> AppResult<()> {
    let leaving = active_superuser_ids(targets.iter().copied());
    if !leaving.is_empty() && users::lock_superusers_and_count_others(tx, &leaving).await? == 0 {
        return Err(AppError::LastSuperuser);
    }
    Ok(())
}

/// The ids of the active superusers among `users`: those the last-superuser
/// rule counts when they are taken out.
pub fn active_superuser_ids<'a>(users: impl IntoIterator<Item = &'a UserRow>) -> Vec<i64> {
    users
        .into_iter()
        .filter(|u| u.is_active && u.is_superuser)
        .map(|u| u.id)
        .collect()
}

/// An operation's transaction, opened with its caller re-checked inside it.
pub struct Begun {
    pub tx: Transaction<'static, Postgres>,
    /// The caller as [`recheck`] re-read them.
    pub actor: Actor,
}

/// Opens an operation's transaction and re-checks the caller against
/// `rule` in it (see [`recheck`]): the first step of every mutation that
/// needs no lock on a user.
pub async fn begin(pool: &PgPool, actor: &Actor, rule: Rule) -> AppResult<Begun> {
    let mut tx = pool.begin().await?;
    let actor = recheck(&mut tx, actor, rule).await?;
    Ok(Begun { tx, actor })
}
