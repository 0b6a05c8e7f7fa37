//! Deleting a user: the registry's steps for `users`, under the rules of
//! any action on another account (never yourself, only within your scope,
//! never the last active superuser).
//!
//! The user row is locked for the whole deletion, which also blocks new
//! votes and sessions (their foreign keys need a share lock on that row), so
//! the plan counted inside the transaction is the one carried out. The
//! audit entry is written after the row is gone, as every entry about a
//! deleted user ends up: no reference to dangle, the username snapshot and
//! the id (as a plain value) kept, so the old id finds this entry too.

use sqlx::PgConnection;
use sqlx::PgPool;

use super::plan::{carry_out, count_first};
use super::token::{self, MadeFor};
use super::{DeleteOutcome, DeletePolicy, Target, TargetKind, run};
use crate::domain::access::{DELETE_USER, Rule};
use crate::domain::audit::{AuditAction, AuditEntry, Target as AuditTarget};
use crate::domain::authority::{self, Acting};
use crate::domain::validation::Reason;
use crate::domain::{Actor, Mode};
use crate::error::{AppError, AppResult};
use crate::store::users;

/// What a caller asks of [`delete_user`].
#[derive(Debug, Clone)]
pub struct DeleteUser {
    pub user_id: i64,
    pub policy: DeletePolicy,
    /// [`Mode::Preview`] only plans the deletion.
    pub mode: Mode,
    /// The `token` of a reviewed plan: the deletion happens only if the plan
    /// is still that one (`PLAN_CHANGED` otherwise).
    pub plan_token: Option<String>,
    pub reason: Reason,
}

/// The user `id`, if the caller may plan their deletion.
pub(super) async fn previewable(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
) -> AppResult<Target> {
    Rule::Permission(DELETE_USER).check_actor(actor)?;
    let user = users::find(&mut *conn, id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    authority::ensure_may_act_on(conn, actor, &user, "delete").await?;
    Ok(Target::User(user))
}

/// Deletes the user under the request's policy, or in [`Mode::Preview`]
/// only plans it.
pub async fn delete_user(
    pool: &PgPool,
    actor: &Actor,
    request: DeleteUser,
) -> AppResult<DeleteOutcome> {
    let DeleteUser {
        user_id,
        policy,
        mode,
        plan_token,
        reason,
    } = request;
    let plan_token = plan_token.as_deref();
    let steps = run::steps_for(TargetKind::User, policy)?;
    if let Some(token) = plan_token {
        token::ensure_fits(token, &MadeFor::One(TargetKind::User, user_id), policy)?;
    }
    let mut tx = pool.begin().await?;
    let Acting {
        actor,
        target: user,
    } = authority::lock_caller_and_target(&mut tx, actor, Rule::Permission(DELETE_USER), user_id)
        .await?;
    let actor = &actor;
    authority::ensure_may_act_on(&mut tx, actor, &user, "delete").await?;
    let target = Target::User(user.clone());
    if let Some(plan) = count_first(&mut tx, &target, &steps, policy, mode, plan_token).await? {
        return Ok(DeleteOutcome {
            plan,
            deleted: false,
        });
    }
    authority::ensure_superusers_remain(&mut tx, &[&user]).await?;
    let plan = carry_out(&mut tx, target, &steps, policy).await?;
    AuditEntry::new(AuditAction::UserDeleted, AuditTarget::Former(&user))
        .by(actor)
        .reason(reason.as_deref())
        .details(plan.audit_details())
        .record_and_commit(tx)
        .await?;
    Ok(DeleteOutcome {
        plan,
        deleted: true,
    })
}
