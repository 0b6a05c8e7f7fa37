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
//!
//! Asked to erase ([`Erase::Scrub`], or a pending erasure request), the
//! deletion also redacts every audit entry naming the user, as an
//! anonymization does (`domain::erasure`), and its own entry shows the
//! pseudonym and carries the receipt.

use sqlx::{PgPool, Postgres, Transaction};

use super::plan::{carry_out, count_first};
use super::token::{self, MadeFor};
use super::{
    DeleteOutcome, DeletePolicy, DeletionPlan, Planned, RelationCount, Target, TargetKind, run,
};
use crate::domain::access::{DELETE_USER, Rule};
use crate::domain::audit::{AuditAction, AuditEntry, Target as AuditTarget};
use crate::domain::authority::{self, Acting};
use crate::domain::erasure::{self, DeletedRows, Erase};
use crate::domain::validation::Reason;
use crate::domain::{Actor, Mode};
use crate::error::AppResult;
use crate::store::users::UserRow;

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
    /// Whether the audit entries keep the snapshot of who the user was, or
    /// are redacted as by an erasure. A user with a pending erasure request
    /// is always erased.
    pub erase: Erase,
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
        erase,
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
        return Ok(DeleteOutcome::previewed(plan));
    }
    let erase = match user.erasure_due_at {
        Some(_) => Erase::Scrub,
        None => erase,
    };
    if erase == Erase::Scrub {
        erasure::ensure_reason_spares(&user, reason.as_deref())?;
    }
    authority::ensure_superusers_remain(&mut tx, &[&user]).await?;
    let plan = carry_out(&mut tx, target, &steps, policy).await?;
    let deleted = Deleted { user, plan, erase };
    deleted.record(tx, actor, reason.as_deref()).await
}

/// A user's deletion done, before its audit entry: who they were, the plan
/// carried out, and whether they are erased too.
struct Deleted {
    user: UserRow,
    plan: DeletionPlan,
    erase: Erase,
}

impl Deleted {
    /// Redacts the person's audit entries if so asked, and writes the
    /// deletion's entry (with the pseudonym and the receipt when erased).
    async fn record(
        self,
        mut tx: Transaction<'_, Postgres>,
        actor: &Actor,
        reason: Option<&str>,
    ) -> AppResult<DeleteOutcome> {
        let Deleted {
            mut user,
            mut plan,
            erase,
        } = self;
        let mut details = plan.audit_details();
        let receipt = match erase {
            Erase::KeepSnapshots => None,
            Erase::Scrub => {
                let effects = &plan.effects;
                let rows = DeletedRows {
                    removed: effects.deleted.iter().map(registry_name).collect(),
                    kept: effects
                        .detached
                        .iter()
                        .map(|c| registry_name(c).0)
                        .collect(),
                };
                let receipt = erasure::scrub_deleted(&mut tx, &user, actor.into(), rows).await?;
                details["receipt"] = receipt.to_json();
                user = erasure::erased_view(user);
                plan.target = Planned::One(Target::User(user.clone()));
                Some(receipt)
            }
        };
        AuditEntry::new(AuditAction::UserDeleted, AuditTarget::Former(&user))
            .by(actor)
            .reason(reason)
            .details(details)
            .record_and_commit(tx)
            .await?;
        Ok(DeleteOutcome::carried_out(plan, receipt))
    }
}

/// A counted relation under the registry's own (static) name.
fn registry_name(count: &RelationCount) -> (&'static str, i64) {
    let name = super::registry::EDGES
        .iter()
        .map(|edge| edge.name)
        .find(|name| *name == count.relation)
        .unwrap_or("other");
    (name, count.count)
}
