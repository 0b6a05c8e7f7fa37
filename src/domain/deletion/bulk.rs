//! Bulk deletion with a bound preview: Django admin's "Delete selected"
//! without its failure modes. Many users (`deleteUsers`) or questions
//! (`deleteQuestions`), named by ids or a filter, are deleted in one
//! transaction by set-based statements (one per relation, whatever the
//! number of records), never one record at a time.
//!
//! Records the caller may not touch are skipped with the code a single
//! deletion would have given; under PROTECT, records that related rows
//! protect are skipped (`DELETE_PROTECTED`) and the others deleted. The plan
//! sums the counts over the records deleted (its `protected` counts what the
//! skipped ones hold), and its token binds the selection, which records it
//! deletes and skips, and every count: a confirmed bulk deletion deletes
//! exactly what was previewed, or nothing (`PLAN_CHANGED`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::registry::Step;
use super::token::{self, MadeFor};
use super::{DeletePolicy, DeletionPlan, Effect, Planned, TargetKind, run};
use crate::domain::access::{DELETE_QUESTION, DELETE_USER, Rule};
use crate::domain::audit::{AuditAction, AuditBatch, BatchEntry, Target as AuditTarget};
use crate::domain::erasure;
use crate::domain::lifecycle::{self, Anonymized, Selected, Selection, SkipReason};
use crate::domain::validation::Reason;
use crate::domain::{Actor, Mode, authority};
use crate::error::{AppError, AppResult};
use crate::store::polls::{self, QuestionRow};
use crate::store::users::{self, UserRow};

pub use crate::store::polls::QuestionFilter;

/// Which questions a bulk deletion is about.
pub enum QuestionSelection {
    Ids(Vec<i64>),
    Filter(QuestionFilter),
    /// One batch of `purge-archived`: the next `limit` questions after id
    /// `after` archived before `before`, in id order, skipping (not waiting
    /// for) those another transaction holds, so two purges at once take
    /// different questions.
    ArchivedBatch {
        before: DateTime<Utc>,
        after: i64,
        limit: i64,
    },
}

/// What a caller asks of [`delete_users`] or [`delete_questions`]: which
/// records (`S`), under which policy, previewed or done.
pub struct BulkDelete<S> {
    pub selection: S,
    pub policy: DeletePolicy,
    /// [`Mode::Preview`] only plans the deletion.
    pub mode: Mode,
    /// The `token` of a reviewed bulk plan (`PLAN_CHANGED` if it moved).
    pub plan_token: Option<String>,
    pub reason: Reason,
}

/// The outcome of a bulk deletion (or its preview).
#[derive(Debug)]
pub struct BulkDeletion {
    pub plan: DeletionPlan,
    /// The records deleted (or, previewed, those that would be), in id order.
    pub deleted: Vec<i64>,
    pub skipped: Vec<(i64, SkipReason)>,
}

/// The records of one kind a bulk deletion holds locked, sorted out.
struct Locked {
    kind: TargetKind,
    made_for: MadeFor,
    /// The records the caller may delete, in id order.
    eligible: Vec<i64>,
    skipped: Vec<(i64, SkipReason)>,
}

impl Locked {
    fn new(
        kind: TargetKind,
        made_for: MadeFor,
        eligible: Vec<i64>,
        skipped: Vec<(i64, SkipReason)>,
    ) -> Self {
        Locked {
            kind,
            made_for,
            eligible,
            skipped,
        }
    }
}

/// What sets the bulk deletions of users and of questions apart at their
/// opening.
struct Opening<S> {
    kind: TargetKind,
    /// The permission a caller needs.
    permission: &'static str,
    superuser_lock: SuperuserLock,
    /// The selection's canonical form, which a token's `made for` digests.
    made_for: fn(&S) -> MadeFor,
}

/// Whether a bulk deletion takes the superuser lock before any row lock.
#[derive(PartialEq)]
enum SuperuserLock {
    /// Deleting users may delete superusers: as in a bulk deactivation, the
    /// lock comes first, or the run could deadlock with a single change.
    Take,
    NotNeeded,
}

const USERS: Opening<Selection> = Opening {
    kind: TargetKind::User,
    permission: DELETE_USER,
    superuser_lock: SuperuserLock::Take,
    made_for: user_selection,
};

const QUESTIONS: Opening<QuestionSelection> = Opening {
    kind: TargetKind::Question,
    permission: DELETE_QUESTION,
    superuser_lock: SuperuserLock::NotNeeded,
    made_for: question_selection,
};

fn user_selection(selection: &Selection) -> MadeFor {
    let canonical = match selection {
        Selection::Ids(ids) => json!({ "ids": sorted(ids) }),
        Selection::Filter(filter) => json!({ "filter": format!("{filter:?}") }),
    };
    MadeFor::selection(TargetKind::User, &canonical)
}

fn question_selection(selection: &QuestionSelection) -> MadeFor {
    let canonical = match selection {
        QuestionSelection::Ids(ids) => json!({ "ids": sorted(ids) }),
        QuestionSelection::Filter(filter) => json!({ "filter": format!("{filter:?}") }),
        QuestionSelection::ArchivedBatch {
            before,
            after,
            limit,
        } => json!({ "archivedBefore": before, "after": after, "limit": limit }),
    };
    MadeFor::selection(TargetKind::Question, &canonical)
}

fn sorted(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A bulk deletion past its opening: the transaction, the actor as
/// re-read in it, the steps its policy takes and what its token is made for.
struct Opened<'p> {
    tx: Transaction<'p, Postgres>,
    actor: Actor,
    kind: TargetKind,
    steps: Vec<Step>,
    made_for: MadeFor,
}

/// The opening both bulk deletions share: the checks before any
/// transaction (the policy's meaning for the kind, what the token was made
/// for), then the transaction and the actor's permission re-read in it.
async fn open<'p, S>(
    pool: &'p PgPool,
    actor: &Actor,
    opening: &Opening<S>,
    request: &BulkDelete<S>,
) -> AppResult<Opened<'p>> {
    let made_for = (opening.made_for)(&request.selection);
    let steps = run::steps_for(opening.kind, request.policy)?;
    if let Some(token) = &request.plan_token {
        token::ensure_fits(token, &made_for, request.policy)?;
    }
    let mut tx = pool.begin().await?;
    if opening.superuser_lock == SuperuserLock::Take {
        users::lock_superuser_changes(&mut tx).await?;
    }
    let actor = authority::recheck(&mut tx, actor, Rule::Permission(opening.permission)).await?;
    Ok(Opened {
        tx,
        actor,
        kind: opening.kind,
        steps,
        made_for,
    })
}

/// The plan of a bulk deletion of `deleted` (skipping `skipped`).
fn plan_for_set(
    locked: &Locked,
    deleted: &[i64],
    policy: DeletePolicy,
    steps: &[Step],
    counts: &[i64],
) -> DeletionPlan {
    let skipped: Vec<(i64, &str)> = locked
        .skipped
        .iter()
        .map(|(id, r)| (*id, r.code()))
        .collect();
    let state = json!([deleted, skipped, counts]);
    DeletionPlan {
        target: Planned::Many {
            kind: locked.kind,
            count: deleted.len(),
        },
        policy,
        allowed: true,
        effects: run::sort(steps, counts),
        token: token::token(&locked.made_for, policy, state),
    }
}

/// Under PROTECT, moves the protected records from eligible to skipped;
/// returns them.
async fn skip_protected(
    tx: &mut PgConnection,
    locked: &mut Locked,
    steps: &[Step],
    policy: DeletePolicy,
) -> AppResult<Vec<i64>> {
    if policy != DeletePolicy::Protect {
        return Ok(Vec::new());
    }
    let protected = run::protected_among(&mut *tx, locked.kind, steps, &locked.eligible).await?;
    locked
        .eligible
        .retain(|id| protected.binary_search(id).is_err());
    let skips = protected
        .iter()
        .map(|id| (*id, SkipReason::DeleteProtected));
    locked.skipped.extend(skips);
    locked.skipped.sort_by_key(|(id, _)| *id);
    Ok(protected)
}

/// Plans and, unless previewing, carries out the deletion of the eligible
/// records. Counts first to preview, to compare with a confirmed token and
/// to report what protects the records PROTECT skipped; otherwise the
/// statements' own row counts are the plan.
async fn plan_and_apply(
    tx: &mut PgConnection,
    mut locked: Locked,
    steps: &[Step],
    policy: DeletePolicy,
    mode: Mode,
    plan_token: Option<&str>,
) -> AppResult<BulkDeletion> {
    let protected = skip_protected(&mut *tx, &mut locked, steps, policy).await?;
    let ids = std::mem::take(&mut locked.eligible);
    let count_first = mode == Mode::Preview || plan_token.is_some() || !protected.is_empty();
    let counts = match count_first {
        true => run::count(&mut *tx, steps, &ids, &protected).await?,
        false => vec![0; steps.len()],
    };
    let mut plan = plan_for_set(&locked, &ids, policy, steps, &counts);
    if plan_token.is_some_and(|token| token != plan.token) {
        return Err(AppError::PlanChanged);
    }
    if mode == Mode::Execute && !ids.is_empty() {
        let mut done = run::apply(&mut *tx, locked.kind, steps, &ids).await?;
        // What protects the skipped records was counted, not touched.
        for ((step, done), counted) in steps.iter().zip(done.iter_mut()).zip(&counts) {
            if step.effect == Effect::Protect {
                *done = *counted;
            }
        }
        plan = plan_for_set(&locked, &ids, policy, steps, &done);
    }
    Ok(BulkDeletion {
        plan,
        deleted: ids,
        skipped: locked.skipped,
    })
}

/// What both bulk deletions do once their records are locked and sorted
/// out: plan, apply unless previewing, then let `audit` record what was
/// deleted and commit. A preview, or a run that deleted nothing, rolls back
/// instead: it leaves nothing to audit.
async fn conclude<S>(
    opened: Opened<'_>,
    eligible: Vec<i64>,
    skipped: Vec<(i64, SkipReason)>,
    request: &BulkDelete<S>,
    audit: impl AsyncFnOnce(&mut PgConnection, &Actor, &BulkDeletion) -> AppResult<u64>,
) -> AppResult<BulkDeletion> {
    let Opened {
        mut tx,
        actor,
        kind,
        steps,
        made_for,
    } = opened;
    let locked = Locked::new(kind, made_for, eligible, skipped);
    let token = request.plan_token.as_deref();
    let done = plan_and_apply(&mut tx, locked, &steps, request.policy, request.mode, token).await?;
    if request.mode == Mode::Preview || done.deleted.is_empty() {
        tx.rollback().await?;
        return Ok(done);
    }
    audit(&mut tx, &actor, &done).await?;
    tx.commit().await?;
    Ok(done)
}

/// The audit batch of a bulk deletion: one `action` entry per record
/// deleted, all sharing the run's reason and [`bulk_details`].
fn bulk_batch<'a>(
    action: AuditAction,
    actor: &'a Actor,
    reason: &'a Reason,
    done: &BulkDeletion,
) -> AuditBatch<'a> {
    AuditBatch::new(action, actor)
        .reason(reason.as_deref())
        .shared_details(bulk_details(&done.plan))
}

/// The audit details of every entry of a bulk deletion: the policy and the
/// plan of the whole run (the counts are the run's, not each record's).
fn bulk_details(plan: &DeletionPlan) -> Value {
    json!({
        "policy": plan.policy.as_str(),
        "bulk": {
            "count": plan.target_count(),
            "deleted": plan.effects.deleted,
            "detached": plan.effects.detached,
        },
    })
}

/// Deletes the users of `request.selection` under its policy, all at once
/// (or previews it). Users a single `deleteUser` would refuse are skipped
/// with its code (`SELF_ACTION`, `FORBIDDEN`, `LAST_SUPERUSER`,
/// `NOT_FOUND`), and under PROTECT those with contributions
/// (`DELETE_PROTECTED`). One `USER_DELETED` entry per user deleted.
pub async fn delete_users(
    pool: &PgPool,
    actor: &Actor,
    request: BulkDelete<Selection>,
) -> AppResult<BulkDeletion> {
    let mut opened = open(pool, actor, &USERS, &request).await?;
    let tx = &mut opened.tx;
    let Selected { found, missing } = lifecycle::lock_selection(tx, &request.selection).await?;
    let (eligible, mut skipped) =
        lifecycle::sort_out(tx, &opened.actor, &found, Anonymized::Include).await?;
    skipped.extend(missing);
    skipped.sort_by_key(|(id, _)| *id);
    let eligible = eligible.iter().map(|u| u.id).collect();
    conclude(
        opened,
        eligible,
        skipped,
        &request,
        async |tx, actor, done| {
            let gone: Vec<&UserRow> = found
                .iter()
                .filter(|u| done.deleted.binary_search(&u.id).is_ok())
                .collect();
            let scrubbed = erasure::scrub_pending(&mut *tx, &gone, actor.into()).await?;
            let entries: Vec<BatchEntry> = gone
                .iter()
                .map(|user| match scrubbed.get(&user.id) {
                    Some(erased) => BatchEntry {
                        target: AuditTarget::Former(&erased.former),
                        own_details: Some(json!({ "receipt": erased.receipt.to_json() })),
                    },
                    None => BatchEntry::about(AuditTarget::Former(user)),
                })
                .collect();
            let batch = bulk_batch(AuditAction::UserDeleted, actor, &request.reason, done);
            Ok(batch.record(tx, &entries).await?)
        },
    )
    .await
}

/// Locks the questions a bulk deletion is about, in id order; ids that
/// name none come back as missing.
async fn lock_questions(
    tx: &mut PgConnection,
    selection: &QuestionSelection,
) -> AppResult<Selected<QuestionRow>> {
    let tx = &mut *tx;
    Ok(match selection {
        QuestionSelection::Ids(ids) => {
            Selected::by_ids(polls::lock_questions(tx, ids).await?, ids, |q| q.id)
        }
        QuestionSelection::Filter(filter) => {
            Selected::all(polls::lock_matching_questions(tx, filter).await?)
        }
        QuestionSelection::ArchivedBatch {
            before,
            after,
            limit,
        } => Selected::all(polls::lock_archived_batch(tx, *before, *after, *limit).await?),
    })
}

/// Deletes the questions of `request.selection` under its policy, all at
/// once (or previews it); under PROTECT those with votes are skipped
/// (`DELETE_PROTECTED`), ids that name none as `NOT_FOUND`. One
/// `QUESTION_DELETED` entry per question deleted.
pub async fn delete_questions(
    pool: &PgPool,
    actor: &Actor,
    request: BulkDelete<QuestionSelection>,
) -> AppResult<BulkDeletion> {
    let mut opened = open(pool, actor, &QUESTIONS, &request).await?;
    let Selected {
        found,
        missing: skipped,
    } = lock_questions(&mut opened.tx, &request.selection).await?;
    let ids = found.iter().map(|q| q.id).collect();
    conclude(opened, ids, skipped, &request, async |tx, actor, done| {
        let entries: Vec<BatchEntry> = found
            .iter()
            .filter(|q| done.deleted.binary_search(&q.id).is_ok())
            .map(|q| BatchEntry {
                target: AuditTarget::Described(format!("question {}", q.id)),
                own_details: Some(json!({ "questionId": q.id, "text": q.text })),
            })
            .collect();
        let batch = bulk_batch(AuditAction::QuestionDeleted, actor, &request.reason, done);
        Ok(batch.record(tx, &entries).await?)
    })
    .await
}
