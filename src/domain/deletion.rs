//! Policy-aware deletion of a user, previewed before it is done.
//!
//! [`RELATIONS`] is the one registry of every row that references a user and
//! what each policy does to it. The preview (`deletionPlan`, `deleteUser`
//! with `dryRun`) and the deletion itself both read it, so what an admin is
//! shown is exactly what happens; a test compares it with PostgreSQL's
//! catalog, so a new foreign key to `users` cannot slip past it (the schema
//! declares every such key `ON DELETE RESTRICT`, so a forgotten one fails
//! loudly instead of cascading silently).
//!
//! A plan counts rows with one aggregate statement and never loads them, so
//! it costs the same for a user with a million votes. Its token names the
//! user and policy it was made for and carries a digest of the user's state
//! and the counts; `deleteUser` re-plans inside its
//! transaction with the user row locked (which also blocks new votes and
//! sessions: their foreign keys need a share lock on that row) and refuses
//! with `PLAN_CHANGED` when the token differs. Without a token, a SET_NULL or
//! CASCADE deletion does not count first: its own statements' row counts are
//! the plan it reports.

use async_graphql::Enum;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::access::{DELETE_USER, Rule};
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Acting};
use super::erasure::{self, DeletedRows, Erase, Receipt};
use super::{Actor, Mode, validation};
use crate::error::{AppError, AppResult};
use crate::ids::{self, Kind};
use crate::store::deletion;
use crate::store::users::{self, UserRow};

/// A relation of a user and how many rows it holds, as reported by
/// `DELETE_PROTECTED` and by deletion plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationCount {
    pub relation: String,
    pub count: i64,
}

/// What happens to the user's contributions (votes and questions created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum DeletePolicy {
    /// Refuse (`DELETE_PROTECTED`) while any contribution exists.
    #[default]
    Protect,
    /// Keep contributions, detached from the user (votes show `Deleted user`).
    SetNull,
    /// Delete the votes (tallies drop); keep questions, detached.
    Cascade,
}

impl DeletePolicy {
    /// The name the schema gives the policy (`SET_NULL`), as tokens and
    /// audit details spell it.
    pub fn as_str(self) -> &'static str {
        super::schema_name(self)
    }

    fn parse(name: &str) -> Option<Self> {
        use async_graphql::resolver_utils::EnumType;
        Self::items()
            .iter()
            .find(|item| item.name == name)
            .map(|item| item.value)
    }
}

/// What a policy does to one relation's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Refuses the deletion while rows exist.
    Protect,
    /// The rows are deleted with the user.
    Delete,
    /// The rows stay; their reference becomes NULL.
    Detach,
}

/// One foreign key to `users` and its fate under each policy.
#[derive(Debug)]
pub struct Relation {
    /// The name plans and errors use.
    pub name: &'static str,
    pub table: &'static str,
    pub column: &'static str,
    pub protect: Effect,
    pub set_null: Effect,
    pub cascade: Effect,
}

impl Relation {
    pub fn effect(&self, policy: DeletePolicy) -> Effect {
        match policy {
            DeletePolicy::Protect => self.protect,
            DeletePolicy::SetNull => self.set_null,
            DeletePolicy::Cascade => self.cascade,
        }
    }
}

const fn always(
    name: &'static str,
    table: &'static str,
    column: &'static str,
    effect: Effect,
) -> Relation {
    Relation {
        name,
        table,
        column,
        protect: effect,
        set_null: effect,
        cascade: effect,
    }
}

/// Every relation that references a user. Order matters for execution:
/// rows are deleted or detached in this order, then the user row.
pub const RELATIONS: &[Relation] = &[
    Relation {
        name: "votes",
        table: "votes",
        column: "user_id",
        protect: Effect::Protect,
        set_null: Effect::Detach,
        cascade: Effect::Delete,
    },
    // Other people's votes hang on a question, so it is never deleted.
    Relation {
        name: "questions",
        table: "questions",
        column: "created_by",
        protect: Effect::Protect,
        set_null: Effect::Detach,
        cascade: Effect::Detach,
    },
    always("sessions", "sessions", "user_id", Effect::Delete),
    always("groupMemberships", "user_groups", "user_id", Effect::Delete),
    always(
        "userPermissions",
        "user_permissions",
        "user_id",
        Effect::Delete,
    ),
    always("deactivations", "deactivations", "user_id", Effect::Delete),
    // The audit trail outlives the user; entries keep the username snapshot.
    always("auditEntries", "audit_entries", "actor_id", Effect::Detach),
    always(
        "auditEntriesAsTarget",
        "audit_entries",
        "target_user_id",
        Effect::Detach,
    ),
];

/// The preview of a deletion: counts per relation, grouped by effect.
#[derive(Debug, Clone)]
pub struct DeletionPlan {
    pub user: UserRow,
    pub policy: DeletePolicy,
    pub allowed: bool,
    pub protected: Vec<RelationCount>,
    pub deleted: Vec<RelationCount>,
    pub detached: Vec<RelationCount>,
    pub token: String,
}

#[derive(Debug)]
pub struct DeleteOutcome {
    pub plan: DeletionPlan,
    pub deleted: bool,
    /// With [`Erase::Scrub`]: the erasure's receipt.
    pub receipt: Option<Receipt>,
}

fn table_columns() -> Vec<(&'static str, &'static str)> {
    RELATIONS.iter().map(|r| (r.table, r.column)).collect()
}

async fn plan_for(
    ex: &mut PgConnection,
    user: UserRow,
    policy: DeletePolicy,
) -> AppResult<DeletionPlan> {
    let counts = deletion::count_references(ex, user.id, &table_columns()).await?;
    Ok(plan_from_counts(user, policy, &counts))
}

/// Sorts each relation's count by what `policy` does to it.
fn plan_from_counts(user: UserRow, policy: DeletePolicy, counts: &[i64]) -> DeletionPlan {
    let (mut protected, mut deleted, mut detached) = (Vec::new(), Vec::new(), Vec::new());
    for (relation, count) in RELATIONS.iter().zip(counts) {
        let entry = RelationCount {
            relation: relation.name.to_owned(),
            count: *count,
        };
        match relation.effect(policy) {
            Effect::Protect if *count > 0 => protected.push(entry),
            // Nothing to protect: under PROTECT such a relation simply has no rows.
            Effect::Protect => {}
            Effect::Delete => deleted.push(entry),
            Effect::Detach => detached.push(entry),
        }
    }
    let token = plan_token(&user, policy, counts);
    DeletionPlan {
        allowed: protected.is_empty(),
        user,
        policy,
        protected,
        deleted,
        detached,
        token,
    }
}

/// Marks (and versions) a plan token.
const TOKEN_PREFIX: &str = "dp1";

/// A plan token says what it was made for, in the clear, so a token passed
/// for the wrong user or policy is told apart from a plan the data moved
/// under: `dp1.<user id>.<POLICY>.<digest>`. The digest covers the user id
/// and policy too, so editing them only makes a token that matches no plan.
/// The digest is of everything the deletion depends on: the user's identity
/// and flags, the policy, and every count.
fn plan_token(user: &UserRow, policy: DeletePolicy, counts: &[i64]) -> String {
    let mut digest = Sha256::new();
    let state = json!([
        user.id,
        user.username,
        user.is_active,
        user.is_staff,
        user.is_superuser,
        user.anonymized_at,
        policy.as_str(),
        counts
    ]);
    digest.update(state.to_string().as_bytes());
    format!(
        "{TOKEN_PREFIX}.{}.{}.{}",
        ids::encode(Kind::User, user.id),
        policy.as_str(),
        URL_SAFE_NO_PAD.encode(&digest.finalize()[..18])
    )
}

/// Refuses a `planToken` that is not a plan token, or was made for another
/// user or under another policy than this deletion's (`INVALID_INPUT`, field
/// `planToken`, saying which). Whether the plan still holds is checked later,
/// against the data (`PLAN_CHANGED`).
fn ensure_token_fits(token: &str, user_id: i64, policy: DeletePolicy) -> AppResult<()> {
    const FIELD: &str = "planToken";
    let not_a_token = || {
        AppError::invalid(
            FIELD,
            format!(
                "{} is not a plan token: pass the `token` that deletionPlan (or deleteUser with dryRun) returned, unchanged",
                ids::echo(token)
            ),
        )
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [prefix, made_for, made_under, digest] = parts[..] else {
        return Err(not_a_token());
    };
    if prefix != TOKEN_PREFIX || digest.is_empty() {
        return Err(not_a_token());
    }
    let made_for = ids::decode(Kind::User, made_for, FIELD).map_err(|_| not_a_token())?;
    let made_under = DeletePolicy::parse(made_under).ok_or_else(not_a_token)?;
    if made_for != user_id {
        return Err(AppError::invalid(
            FIELD,
            format!(
                "this plan token was made for another user ({}): preview this user's deletion with deletionPlan and pass its token",
                ids::encode(Kind::User, made_for)
            ),
        ));
    }
    if made_under != policy {
        return Err(AppError::invalid(
            FIELD,
            format!(
                "this plan token was made under policy {}, not {}: pass policy: {} or preview again under {}",
                made_under.as_str(),
                policy.as_str(),
                made_under.as_str(),
                policy.as_str()
            ),
        ));
    }
    Ok(())
}

/// The preview, as `deletionPlan` shows it. Changes nothing.
pub async fn plan(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    policy: DeletePolicy,
) -> AppResult<DeletionPlan> {
    let mut conn = pool.acquire().await?;
    let user = users::find(&mut *conn, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    authority::ensure_may_act_on(&mut conn, actor, &user, "delete").await?;
    plan_for(&mut conn, user, policy).await
}

/// Counting first is needed to preview, to compare with a confirmed plan
/// and to find what PROTECT protects. A plain SET_NULL or CASCADE deletion
/// skips it and reports what its statements touched instead: the same
/// numbers (the user row is locked), without scanning every row twice.
/// Returns the plan when the call is only a preview (`dry_run`).
async fn count_first(
    tx: &mut PgConnection,
    user: &UserRow,
    policy: DeletePolicy,
    mode: Mode,
    plan_token: Option<&str>,
) -> AppResult<Option<DeletionPlan>> {
    let dry_run = mode == Mode::Preview;
    if !(dry_run || plan_token.is_some() || policy == DeletePolicy::Protect) {
        return Ok(None);
    }
    let plan = plan_for(&mut *tx, user.clone(), policy).await?;
    if plan_token.is_some_and(|token| token != plan.token) {
        return Err(AppError::PlanChanged);
    }
    if dry_run {
        return Ok(Some(plan));
    }
    if !plan.allowed {
        return Err(AppError::DeleteProtected(plan.protected.clone()));
    }
    Ok(None)
}

/// Deletes or detaches every relation's rows as `policy` says, then the
/// user row; returns how many rows each relation of [`RELATIONS`] had
/// touched (its plan, measured).
async fn apply_policy(
    tx: &mut PgConnection,
    user_id: i64,
    policy: DeletePolicy,
) -> AppResult<Vec<i64>> {
    let mut counts = Vec::with_capacity(RELATIONS.len());
    for relation in RELATIONS {
        let (table, column) = (relation.table, relation.column);
        let touched = match relation.effect(policy) {
            Effect::Delete => deletion::delete_references(&mut *tx, table, column, user_id).await?,
            Effect::Detach => deletion::detach_references(&mut *tx, table, column, user_id).await?,
            Effect::Protect => 0,
        };
        counts.push(touched as i64);
    }
    deletion::delete_user_row(&mut *tx, user_id).await?;
    Ok(counts)
}

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
    pub reason: Option<String>,
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
    let reason = validation::reason("reason", reason.as_deref())?;
    if let Some(token) = plan_token {
        ensure_token_fits(token, user_id, policy)?;
    }
    let mut tx = pool.begin().await?;
    let Acting {
        actor,
        target: user,
    } = authority::lock_caller_and_target(&mut tx, actor, Rule::Permission(DELETE_USER), user_id)
        .await?;
    let actor = &actor;
    authority::ensure_may_act_on(&mut tx, actor, &user, "delete").await?;
    if let Some(plan) = count_first(&mut tx, &user, policy, mode, plan_token).await? {
        return Ok(DeleteOutcome {
            plan,
            deleted: false,
            receipt: None,
        });
    }
    let erase = match user.erasure_due_at {
        Some(_) => Erase::Scrub,
        None => erase,
    };
    if erase == Erase::Scrub {
        erasure::ensure_reason_spares(&user, reason.as_deref())?;
    }
    authority::ensure_superusers_remain(&mut tx, &[&user]).await?;
    let counts = apply_policy(&mut tx, user.id, policy).await?;
    let plan = plan_from_counts(user, policy, &counts);
    let deleted = Deleted { plan, erase };
    deleted.record(tx, actor, reason.as_deref()).await
}

/// A deletion done, before its audit entry: the plan it carried out, and
/// whether the person is erased too.
struct Deleted {
    plan: DeletionPlan,
    erase: Erase,
}

impl Deleted {
    /// Redacts the person's audit entries if so asked, and writes the
    /// deletion's entry. Written after the row is gone, as every entry about
    /// a deleted user ends up: no reference to dangle, the username snapshot
    /// (or, erased, the pseudonym) and the id (as a plain value) kept, so the
    /// old id finds this entry too.
    async fn record(
        self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        actor: &Actor,
        reason: Option<&str>,
    ) -> AppResult<DeleteOutcome> {
        let Deleted { mut plan, erase } = self;
        let receipt = match erase {
            Erase::KeepSnapshots => None,
            Erase::Scrub => {
                let rows = DeletedRows {
                    removed: plan
                        .deleted
                        .iter()
                        .map(|c| (relation_name(c), c.count))
                        .collect(),
                    kept: plan.detached.iter().map(relation_name).collect(),
                };
                let receipt =
                    erasure::scrub_deleted(&mut tx, &plan.user, actor.into(), rows).await?;
                plan.user = erasure::erased_view(plan.user);
                Some(receipt)
            }
        };
        let mut details = json!({
            "policy": plan.policy.as_str(),
            "deleted": plan.deleted,
            "detached": plan.detached,
        });
        if let Some(receipt) = &receipt {
            details["receipt"] = receipt.to_json();
        }
        AuditEntry::new(AuditAction::UserDeleted, Target::Former(&plan.user))
            .by(actor)
            .reason(reason)
            .details(details)
            .record_and_commit(tx)
            .await?;
        Ok(DeleteOutcome {
            plan,
            deleted: true,
            receipt,
        })
    }
}

/// The registry's own name for a counted relation (plans carry owned names).
fn relation_name(count: &RelationCount) -> &'static str {
    RELATIONS
        .iter()
        .map(|r| r.name)
        .find(|name| *name == count.relation)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_follow_the_contract() {
        let votes = &RELATIONS[0];
        assert_eq!(
            [
                votes.effect(DeletePolicy::Protect),
                votes.effect(DeletePolicy::SetNull),
                votes.effect(DeletePolicy::Cascade)
            ],
            [Effect::Protect, Effect::Detach, Effect::Delete]
        );
        let questions = &RELATIONS[1];
        assert_eq!(
            questions.effect(DeletePolicy::Cascade),
            Effect::Detach,
            "questions are never deleted"
        );
        // Only contributions may protect; everything else goes or stays under every policy.
        for relation in &RELATIONS[2..] {
            assert_ne!(
                relation.effect(DeletePolicy::Protect),
                Effect::Protect,
                "{}",
                relation.name
            );
        }
    }
}
