//! A deletion's plan: built from counts, counted first when it must be,
//! shown by `deletionPlan`, and carried out by the deletion of one record:
//! for every kind, the same steps (permission, find or lock, the kind's own
//! rules, then count, delete and audit).

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::registry::Step;
use super::token::{self, MadeFor};
use super::{
    DeleteOutcome, DeletePolicy, DeleteRequest, DeletionPlan, Planned, Target, TargetKind, group,
    poll, run,
};
use crate::domain::access::Rule;
use crate::domain::audit::{AuditAction, AuditEntry, Target as AuditTarget};
use crate::domain::authority::{self, Begun};
use crate::domain::{Actor, Mode};
use crate::error::{AppError, AppResult, OrNotFound};
use crate::store::{groups, polls, users};

/// The plan of deleting `target` under `policy`, each step's rows counted
/// (first, or by the deletion's own statements) in `counts`.
pub(super) fn for_one(
    target: Target,
    policy: DeletePolicy,
    steps: &[Step],
    counts: &[i64],
) -> DeletionPlan {
    let made_for = MadeFor::One(target.kind(), target.id());
    let token = token::token(&made_for, policy, json!([target.state(), counts]));
    let effects = run::sort(steps, counts);
    DeletionPlan {
        allowed: effects.protected.is_empty(),
        target: Planned::One(target),
        policy,
        effects,
        token,
    }
}

/// The preview of deleting the `kind` record `id`, as `deletionPlan` shows
/// it: the caller's rights over it checked, its rows counted. Changes nothing.
pub async fn plan(
    pool: &PgPool,
    actor: &Actor,
    kind: TargetKind,
    id: i64,
    policy: DeletePolicy,
) -> AppResult<DeletionPlan> {
    let steps = run::steps_for(kind, policy)?;
    Rule::Permission(kind.permission()).check_actor(actor)?;
    let mut conn = pool.acquire().await?;
    let target = find(&mut conn, kind, id).await?;
    ensure_deletable(&mut conn, actor, &target).await?;
    let counts = run::count(&mut conn, &steps, &[id], &[id]).await?;
    Ok(for_one(target, policy, &steps, &counts))
}

/// The `kind` record `id`, read without a lock: a preview changes nothing.
async fn find(conn: &mut PgConnection, kind: TargetKind, id: i64) -> AppResult<Target> {
    let found = match kind {
        TargetKind::User => users::find(&mut *conn, id).await?.map(Target::User),
        TargetKind::Group => groups::find(&mut *conn, id).await?.map(Target::Group),
        TargetKind::Question => polls::find_questions(&mut *conn, &[id])
            .await?
            .pop()
            .map(Target::Question),
        TargetKind::Choice => polls::find_choices(&mut *conn, &[id])
            .await?
            .pop()
            .map(Target::Choice),
    };
    found.or_not_found(kind.noun())
}

/// The `kind` record `id`, locked for its deletion (a choice after its
/// question, see `poll`). Users are locked with their caller instead
/// (`user::delete_user`).
async fn lock(conn: &mut PgConnection, kind: TargetKind, id: i64) -> AppResult<Target> {
    let found = match kind {
        TargetKind::User => return Err(AppError::internal("a user is locked with the caller")),
        TargetKind::Group => groups::find_for_update(&mut *conn, id)
            .await?
            .map(Target::Group),
        TargetKind::Question => polls::lock_question(&mut *conn, id)
            .await?
            .map(Target::Question),
        TargetKind::Choice => poll::lock_choice(conn, id).await?.map(Target::Choice),
    };
    found.or_not_found(kind.noun())
}

/// The rules of deleting `target` beyond the permission of its kind: a user
/// within the caller's reach, a group whose permissions the caller holds, a
/// choice its question can spare.
async fn ensure_deletable(
    conn: &mut PgConnection,
    actor: &Actor,
    target: &Target,
) -> AppResult<()> {
    match target {
        Target::User(user) => authority::ensure_may_act_on(conn, actor, user, "delete").await,
        Target::Group(group) => group::ensure_holds_group(conn, actor, group).await,
        Target::Question(_) => Ok(()),
        Target::Choice(choice) => poll::ensure_choices_remain(conn, choice).await,
    }
}

/// Deletes the group, question or choice `request.id` under the request's
/// policy (see `group` and `poll` for each kind's rules; audited
/// `GROUP_DELETED`, `QUESTION_DELETED`, `CHOICE_DELETED`), or in preview
/// only plans it: the caller re-checked and the record
/// locked inside the transaction, its rules checked, then [`finish`].
pub async fn delete_one(
    pool: &PgPool,
    actor: &Actor,
    kind: TargetKind,
    request: DeleteRequest,
) -> AppResult<DeleteOutcome> {
    let steps = check_request(kind, &request)?;
    let rule = Rule::Permission(kind.permission());
    let Begun { mut tx, actor } = authority::begin(pool, actor, rule).await?;
    let target = lock(&mut tx, kind, request.id).await?;
    ensure_deletable(&mut tx, &actor, &target).await?;
    finish(tx, &actor, target, &steps, request).await
}

/// Counting first is needed to preview, to compare with a confirmed plan
/// and to find what PROTECT protects. A plain SET_NULL or CASCADE deletion
/// skips it and reports what its statements touched instead: the same
/// numbers (the record is locked), without scanning every row twice.
/// Returns the plan when the call is only a preview.
pub(super) async fn count_first(
    tx: &mut PgConnection,
    target: &Target,
    steps: &[Step],
    policy: DeletePolicy,
    mode: Mode,
    plan_token: Option<&str>,
) -> AppResult<Option<DeletionPlan>> {
    let preview = mode == Mode::Preview;
    if !(preview || plan_token.is_some() || policy == DeletePolicy::Protect) {
        return Ok(None);
    }
    let ids = [target.id()];
    let counts = run::count(&mut *tx, steps, &ids, &ids).await?;
    let plan = for_one(target.clone(), policy, steps, &counts);
    if plan_token.is_some_and(|token| token != plan.token) {
        return Err(AppError::PlanChanged);
    }
    if preview {
        return Ok(Some(plan));
    }
    if !plan.allowed {
        return Err(AppError::DeleteProtected(plan.effects.protected.clone()));
    }
    Ok(None)
}

/// Deletes `target` and what `steps` reach, and returns the plan carried out.
pub(super) async fn carry_out(
    tx: &mut PgConnection,
    target: Target,
    steps: &[Step],
    policy: DeletePolicy,
) -> AppResult<DeletionPlan> {
    let counts = run::apply(&mut *tx, target.kind(), steps, &[target.id()]).await?;
    Ok(for_one(target, policy, steps, &counts))
}

/// What a deletion's audit entry says of a record other than a user.
fn audit_of(target: &Target) -> (AuditAction, String, Value) {
    match target {
        Target::Group(g) => (
            AuditAction::GroupDeleted,
            format!("group {}", g.name),
            json!({ "groupId": g.id }),
        ),
        Target::Question(q) => (
            AuditAction::QuestionDeleted,
            format!("question {}", q.id),
            json!({ "questionId": q.id, "text": q.text }),
        ),
        Target::Choice(c) => (
            AuditAction::ChoiceDeleted,
            format!("choice {} of question {}", c.id, c.question_id),
            json!({ "choiceId": c.id, "questionId": c.question_id, "text": c.text }),
        ),
        Target::User(u) => (
            AuditAction::UserDeleted,
            u.username.clone(),
            json!({ "userId": u.id }),
        ),
    }
}

/// The rest of deleting a group, a question or a choice once the caller
/// holds `target` locked and its rules are checked: the preview, or the
/// deletion with its audit entry, committed.
async fn finish(
    mut tx: Transaction<'_, Postgres>,
    actor: &Actor,
    target: Target,
    steps: &[Step],
    request: DeleteRequest,
) -> AppResult<DeleteOutcome> {
    let DeleteRequest {
        policy,
        mode,
        plan_token,
        reason,
        ..
    } = request;
    if let Some(plan) =
        count_first(&mut tx, &target, steps, policy, mode, plan_token.as_deref()).await?
    {
        return Ok(DeleteOutcome::previewed(plan));
    }
    let plan = carry_out(&mut tx, target, steps, policy).await?;
    let Planned::One(target) = &plan.target else {
        return Err(AppError::internal("a single deletion planned a set"));
    };
    let (action, repr, mut details) = audit_of(target);
    if let (Value::Object(details), Value::Object(planned)) = (&mut details, plan.audit_details()) {
        details.extend(planned);
    }
    AuditEntry::new(action, AuditTarget::Described(repr))
        .by(actor)
        .reason(reason.as_deref())
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(DeleteOutcome::carried_out(plan, None))
}

/// The checks of a request before any transaction: the policy's meaning
/// for `kind`, and what the token was made for.
fn check_request(kind: TargetKind, request: &DeleteRequest) -> AppResult<Vec<Step>> {
    let steps = run::steps_for(kind, request.policy)?;
    if let Some(token) = &request.plan_token {
        token::ensure_fits(token, &MadeFor::One(kind, request.id), request.policy)?;
    }
    Ok(steps)
}
