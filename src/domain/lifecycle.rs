//! The member lifecycle: active → deactivated → active again, and any state →
//! anonymized (irreversible). Deletion has its own module, [`super::deletion`].
//!
//! Every operation runs in one transaction with the target rows locked, checks
//! the same rules in the same order (the caller's rights over the target, no
//! action on oneself, never zero active superusers, nothing done to an
//! anonymized person), and writes one audit entry per user it changed.
//! Deactivation is the safe way out: login stops at once (the sessions are
//! revoked in the same transaction, and every request re-checks `isActive`),
//! and what it took away is remembered so a reactivation can give it back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::access::{
    CHANGE_USER, DELETE_USER, Rule, ensure_holds_all, ensure_in_scope, ensure_not_self,
};
use super::audit::{AuditAction, AuditBatch, AuditEntry, BatchEntry, Target};
use super::authority::{self, Acting};
use super::erasure::{self, Anonymization};
use super::filters::{UserFlagFilter, UserLifecycleFilter};
use super::validation::{self, Reason};
use super::{Actor, Mode};
use crate::error::{AppError, AppResult, OrNotFound};
use crate::store::deactivations::{self, AccessRemoval, DeactivatedUser, DeactivationRecord};
use crate::store::groups::{self, GroupRow};
use crate::store::permissions::{self, PermissionRow};
use crate::store::users::{self, UserFilter, UserRow};

/// What `deactivateUser` takes away besides the login (the contract's defaults).
#[derive(Debug, Clone)]
pub struct DeactivateOptions {
    pub remove_from_groups: bool,
    pub remove_permissions: bool,
    pub revoke_staff: bool,
    pub reason: Reason,
}

impl Default for DeactivateOptions {
    fn default() -> Self {
        DeactivateOptions {
            remove_from_groups: true,
            remove_permissions: true,
            revoke_staff: false,
            reason: Reason::none(),
        }
    }
}

/// A user's access beyond the login: what a deactivation takes away (and
/// remembers), and what a reactivation with [`Restore::Access`] gives back.
/// One type for both, so the two sides of the round trip cannot disagree
/// on what access is.
#[derive(Debug, Default)]
pub struct Access {
    pub groups: Vec<GroupRow>,
    /// Direct permissions (those held through a group come with the group).
    pub permissions: Vec<PermissionRow>,
    pub staff: bool,
}

impl Access {
    /// The access a deactivation `record` remembers, as rows: groups deleted
    /// since are left out (a reactivation reports them as missing).
    async fn remembered(conn: &mut PgConnection, record: &DeactivationRecord) -> AppResult<Access> {
        Ok(Access {
            groups: groups::find_many(&mut *conn, &record.group_ids).await?,
            permissions: permissions::by_ids(&mut *conn, &record.permission_ids).await?,
            staff: record.staff_revoked,
        })
    }

    /// How the audit log names the groups (by name, not personal data).
    fn group_names(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.name.as_str()).collect()
    }

    /// How the audit log names the permissions (`app.codename`).
    fn permission_keys(&self) -> Vec<String> {
        self.permissions.iter().map(PermissionRow::key).collect()
    }
}

#[derive(Debug)]
pub struct Deactivation {
    pub user: UserRow,
    pub sessions_revoked: i64,
    /// Everything the user's open deactivation has taken away so far.
    pub removed: Access,
}

#[derive(Debug)]
pub struct Reactivation {
    pub user: UserRow,
    /// Nothing unless asked for with [`Restore::Access`].
    pub restored: Access,
    /// Groups the deactivation removed that no longer exist.
    pub missing_group_ids: Vec<i64>,
}

/// Why a bulk deactivation left a user alone; the codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    SelfAction,
    Forbidden,
    Anonymized,
    NotFound,
    LastSuperuser,
    /// Already inactive with nothing left to take: the call would change nothing.
    AlreadyInactive,
    /// Under PROTECT, rows protect it from a bulk deletion.
    DeleteProtected,
}

impl SkipReason {
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::SelfAction => "SELF_ACTION",
            SkipReason::Forbidden => "FORBIDDEN",
            SkipReason::Anonymized => "ANONYMIZED",
            SkipReason::NotFound => "NOT_FOUND",
            SkipReason::LastSuperuser => "LAST_SUPERUSER",
            SkipReason::AlreadyInactive => "ALREADY_INACTIVE",
            SkipReason::DeleteProtected => "DELETE_PROTECTED",
        }
    }
}

#[derive(Debug, Default)]
pub struct BulkDeactivation {
    /// Ids of the users deactivated, in id order (loaded only if asked for).
    pub deactivated: Vec<i64>,
    pub skipped: Vec<(i64, SkipReason)>,
}

/// Which users a bulk deactivation is about.
pub enum Selection {
    Ids(Vec<i64>),
    Filter(UserFilter),
}

/// The rule shared by every lifecycle operation on one target: an anonymized
/// account is left as it is (its owner can no longer act, so this never
/// hides a self-action), then the rules of any action on another account.
async fn check_target(
    conn: &mut PgConnection,
    actor: &Actor,
    target: &UserRow,
    verb: &'static str,
) -> AppResult<()> {
    if target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    authority::ensure_may_act_on(conn, actor, target, verb).await
}

/// What each lifecycle operation on one user is held to: its rule, and the
/// verb a refusal to act on oneself names.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Deactivate,
    Reactivate,
    Anonymize,
}

impl Operation {
    /// A provisioning service is never a superuser: it anonymizes (a SCIM
    /// `DELETE` under `MEMBERDESK_SCIM_DELETE=anonymize`, which the operator
    /// chose) only holding `auth.delete_user`, and the scope rule keeps it
    /// off superusers and off anyone holding more than it does.
    fn rule(self, actor: &Actor) -> Rule {
        match (self, actor) {
            (Operation::Deactivate | Operation::Reactivate, _) => Rule::Permission(CHANGE_USER),
            (Operation::Anonymize, Actor::Service(_)) => Rule::Permission(DELETE_USER),
            (Operation::Anonymize, _) => Rule::Superuser,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Operation::Deactivate => "deactivate",
            Operation::Reactivate => "reactivate",
            Operation::Anonymize => "anonymize",
        }
    }
}

/// Locks the caller and the target of a lifecycle operation and checks the
/// rules of acting on it (see [`check_target`]); the actor returned is the
/// caller as re-read under lock.
async fn lock_and_check(
    conn: &mut PgConnection,
    actor: &Actor,
    user_id: i64,
    operation: Operation,
) -> AppResult<Acting> {
    let rule = operation.rule(actor);
    let acting = authority::lock_caller_and_target(&mut *conn, actor, rule, user_id).await?;
    check_target(&mut *conn, &acting.actor, &acting.target, operation.verb()).await?;
    Ok(acting)
}

/// Taking the staff flag away is changing it, which only a superuser may
/// do (`updateUser` has the same rule); otherwise a deactivation with
/// `revokeStaff` and a plain reactivation would clear it.
fn ensure_may_revoke_staff(actor: &Actor, options: &DeactivateOptions) -> AppResult<()> {
    if options.revoke_staff && !actor.is_superuser() {
        return Err(AppError::forbidden(
            "only a superuser may revoke the staff flag",
        ));
    }
    Ok(())
}

fn removal(options: &DeactivateOptions) -> AccessRemoval {
    AccessRemoval {
        groups: options.remove_from_groups,
        permissions: options.remove_permissions,
        staff: options.revoke_staff,
    }
}

/// Deactivates one user. Idempotent: deactivating an inactive user again
/// removes whatever is still there (per `options`) and keeps the first
/// deactivation's time, reason and record.
pub async fn deactivate_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    options: DeactivateOptions,
) -> AppResult<Deactivation> {
    let reason = &options.reason;
    let mut tx = pool.begin().await?;
    let Acting { actor, target } =
        lock_and_check(&mut tx, actor, user_id, Operation::Deactivate).await?;
    let actor = &actor;
    ensure_may_revoke_staff(actor, &options)?;
    authority::ensure_superusers_remain(&mut tx, &[&target]).await?;
    if !target.is_active
        && !deactivations::has_anything_to_remove(&mut tx, target.id, removal(&options)).await?
    {
        // Already done: report what the deactivation holds, change nothing, audit nothing.
        let done = already_deactivated(&mut tx, target).await?;
        tx.commit().await?;
        return Ok(done);
    }
    let DeactivatedUser {
        record,
        sessions_revoked,
    } = deactivations::deactivate(&mut tx, &[target.id], removal(&options), reason.as_deref())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::internal("no deactivation record"))?;
    let removed = Access::remembered(&mut tx, &record).await?;
    let user = users::find(&mut *tx, target.id)
        .await
        .or_not_found("user")?;
    let done = Deactivation {
        user,
        sessions_revoked,
        removed,
    };
    AuditEntry::new(AuditAction::UserDeactivated, Target::User(&done.user))
        .by(actor)
        .reason(reason.as_deref())
        .details(done.audit_details(target.is_active))
        .record_and_commit(tx)
        .await?;
    Ok(done)
}

impl Deactivation {
    /// What the audit entry records of it (names, not personal data).
    fn audit_details(&self, was_active: bool) -> serde_json::Value {
        json!({
            "sessionsRevoked": self.sessions_revoked,
            "removedGroups": self.removed.group_names(),
            "removedPermissions": self.removed.permission_keys(),
            "staffRevoked": self.removed.staff,
            "wasActive": was_active,
        })
    }
}

/// What an earlier deactivation of `target` holds, reported as this one's
/// outcome when there is nothing left to take.
async fn already_deactivated(tx: &mut PgConnection, target: UserRow) -> AppResult<Deactivation> {
    let removed = match deactivations::find_open(&mut *tx, target.id).await? {
        Some(record) => Access::remembered(tx, &record).await?,
        None => Access::default(),
    };
    Ok(Deactivation {
        user: target,
        sessions_revoked: 0,
        removed,
    })
}

/// Deactivates many users at once with set-based statements. Users that may
/// not be touched are skipped with the code a single deactivation would
/// have given; the others are deactivated together, all or none.
pub async fn deactivate_users(
    pool: &PgPool,
    actor: &Actor,
    selection: Selection,
    options: DeactivateOptions,
) -> AppResult<BulkDeactivation> {
    deactivate_users_in(pool, actor, selection, options, Mode::Execute).await
}

/// [`deactivate_users`], or with [`Mode::Preview`] only its outcome: the
/// same locks and checks, so a preview reports exactly what a run would do
/// at that moment, then a rollback.
pub async fn deactivate_users_in(
    pool: &PgPool,
    actor: &Actor,
    selection: Selection,
    options: DeactivateOptions,
    mode: Mode,
) -> AppResult<BulkDeactivation> {
    let reason = &options.reason;
    let mut tx = pool.begin().await?;
    // A bulk run may include superusers: as in a single deactivation, the
    // superuser lock comes before any row lock, or it could deadlock with a
    // single deactivation of the same people.
    users::lock_superuser_changes(&mut tx).await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(CHANGE_USER)).await?;
    ensure_may_revoke_staff(actor, &options)?;
    let Selected { found, missing } = lock_selection(&mut tx, &selection).await?;
    let (eligible, mut skipped) = sort_out(&mut tx, actor, &found, Anonymized::Skip).await?;
    let (eligible, unchanged) = without_unchanged(&mut tx, eligible, removal(&options)).await?;
    skipped.extend(unchanged);
    skipped.extend(missing);
    skipped.sort_by_key(|(id, _)| *id);
    let ids: Vec<i64> = eligible.iter().map(|u| u.id).collect();
    if eligible.is_empty() || mode == Mode::Preview {
        // Nothing was written; ending the transaction releases the locks.
        tx.rollback().await?;
        return Ok(BulkDeactivation {
            deactivated: ids,
            skipped,
        });
    }
    let done =
        deactivations::deactivate(&mut tx, &ids, removal(&options), reason.as_deref()).await?;
    let by_id: BTreeMap<i64, &UserRow> = eligible.iter().map(|u| (u.id, *u)).collect();
    let entries: Vec<BatchEntry> = done
        .iter()
        .filter_map(|d| {
            let user = by_id.get(&d.record.user_id)?;
            Some(BatchEntry {
                target: Target::User(user),
                own_details: Some(own_details(d, user.is_active)),
            })
        })
        .collect();
    AuditBatch::new(AuditAction::UserDeactivated, actor)
        .reason(reason.as_deref())
        .shared_details(json!({ "bulk": true }))
        .record(&mut tx, &entries)
        .await?;
    tx.commit().await?;
    Ok(BulkDeactivation {
        deactivated: ids,
        skipped,
    })
}

/// What the audit entry of one user of a bulk deactivation says of them
/// (`was_active`: before it).
fn own_details(
    DeactivatedUser {
        record: r,
        sessions_revoked,
    }: &DeactivatedUser,
    was_active: bool,
) -> serde_json::Value {
    json!({
        "sessionsRevoked": sessions_revoked,
        "removedGroupIds": r.group_ids,
        "removedPermissionIds": r.permission_ids,
        "staffRevoked": r.staff_revoked,
        "wasActive": was_active,
    })
}

/// Takes out of `eligible` the users a deactivation would change nothing
/// for (already inactive, nothing left to remove per `removal`): they are
/// skipped as `ALREADY_INACTIVE`, so they get no audit entry either.
async fn without_unchanged<'a>(
    tx: &mut PgConnection,
    eligible: Vec<&'a UserRow>,
    removal: AccessRemoval,
) -> AppResult<(Vec<&'a UserRow>, Vec<(i64, SkipReason)>)> {
    let inactive: Vec<i64> = eligible
        .iter()
        .filter(|u| !u.is_active)
        .map(|u| u.id)
        .collect();
    if inactive.is_empty() {
        return Ok((eligible, Vec::new()));
    }
    let changing: BTreeSet<i64> =
        deactivations::with_anything_to_remove(&mut *tx, &inactive, removal)
            .await?
            .into_iter()
            .collect();
    let (keep, unchanged): (Vec<&UserRow>, Vec<&UserRow>) = eligible
        .into_iter()
        .partition(|u| u.is_active || changing.contains(&u.id));
    let skipped = unchanged
        .iter()
        .map(|u| (u.id, SkipReason::AlreadyInactive))
        .collect();
    Ok((keep, skipped))
}

/// Locks the users a bulk run is about, in id order; ids that name nobody
/// come back as missing.
pub(crate) async fn lock_selection(
    tx: &mut PgConnection,
    selection: &Selection,
) -> AppResult<Selected<UserRow>> {
    Ok(match selection {
        Selection::Ids(ids) => {
            Selected::by_ids(users::lock_many(&mut *tx, ids).await?, ids, |u| u.id)
        }
        Selection::Filter(filter) => Selected::all(users::lock_matching(&mut *tx, filter).await?),
    })
}

/// The rows a bulk run holds locked, and the ids it was asked for that name
/// none: those are skipped as `NOT_FOUND` by every bulk operation, once
/// each and in id order, however often they were asked.
pub(crate) struct Selected<R> {
    pub found: Vec<R>,
    pub missing: Vec<(i64, SkipReason)>,
}

impl<R> Selected<R> {
    /// Rows a filter chose: nothing was asked by id, so nothing is missing.
    pub(crate) fn all(found: Vec<R>) -> Self {
        Selected {
            found,
            missing: Vec::new(),
        }
    }

    /// Rows locked by the ids `asked` (one set look-up per id, so a
    /// selection of ten thousand ids is not a hundred million comparisons).
    pub(crate) fn by_ids(found: Vec<R>, asked: &[i64], id_of: impl Fn(&R) -> i64) -> Self {
        let have: BTreeSet<i64> = found.iter().map(id_of).collect();
        let missing: BTreeSet<i64> = asked
            .iter()
            .copied()
            .filter(|id| !have.contains(id))
            .collect();
        let missing = missing
            .into_iter()
            .map(|id| (id, SkipReason::NotFound))
            .collect();
        Selected { found, missing }
    }
}

/// Whether a bulk run leaves anonymized accounts alone (a deactivation
/// does; a deletion takes them like anyone else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anonymized {
    Skip,
    Include,
}

/// Splits the locked users into those a bulk run may take and those it
/// skips, with the code a single operation would have given. Every target's
/// scope is read in one statement.
pub(crate) async fn sort_out<'a>(
    tx: &mut PgConnection,
    actor: &Actor,
    found: &'a [UserRow],
    anonymized: Anonymized,
) -> AppResult<(Vec<&'a UserRow>, Vec<(i64, SkipReason)>)> {
    let ids: Vec<i64> = found.iter().map(|u| u.id).collect();
    let mut scopes: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if !actor.is_superuser() {
        for (id, key) in permissions::scope_keys_for_users(&mut *tx, &ids).await? {
            scopes.entry(id).or_default().push(key);
        }
    }
    let mut eligible = Vec::new();
    let mut skipped = Vec::new();
    for user in found {
        let scope = scopes.get(&user.id).map_or(&[][..], Vec::as_slice);
        let verdict = match user.anonymized_at {
            Some(_) if anonymized == Anonymized::Skip => Err(AppError::Anonymized),
            _ => ensure_not_self(actor, user, "deactivate")
                .and_then(|()| ensure_in_scope(actor, user, scope)),
        };
        match verdict {
            Ok(()) => eligible.push(user),
            Err(AppError::SelfAction(_)) => skipped.push((user.id, SkipReason::SelfAction)),
            Err(AppError::Anonymized) => skipped.push((user.id, SkipReason::Anonymized)),
            Err(_) => skipped.push((user.id, SkipReason::Forbidden)),
        }
    }
    // A bulk run by the system (or a superuser) could include every active
    // superuser; the last ones standing are skipped rather than failing the run.
    let leaving = authority::active_superuser_ids(eligible.iter().copied());
    // The superuser lock was taken before the row locks.
    if !leaving.is_empty() && users::count_other_active_superusers(tx, &leaving).await? == 0 {
        let keep = *leaving.iter().min().expect("not empty");
        eligible.retain(|u| u.id != keep);
        skipped.push((keep, SkipReason::LastSuperuser));
    }
    Ok((eligible, skipped))
}

/// What a reactivation gives back besides the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The login only: groups, permissions and staff stay removed.
    LoginOnly,
    /// Also what the open deactivation took away (`restoreAccess: true`).
    Access,
}

/// Reactivates a user. With [`Restore::Access`], gives back what the open
/// deactivation took away (groups deleted meanwhile are skipped and
/// reported). Restoring access is granting it, so the no-escalation rule
/// applies: the caller must hold every permission it brings back, and only a
/// superuser restores the staff flag.
pub async fn reactivate_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    restore: Restore,
    reason: Option<String>,
) -> AppResult<Reactivation> {
    let reason = validation::reason("reason", reason.as_deref())?;
    let mut tx = pool.begin().await?;
    let Acting { actor, target } =
        lock_and_check(&mut tx, actor, user_id, Operation::Reactivate).await?;
    let actor = &actor;
    if let Some(due) = target.erasure_due_at {
        // Reactivated, the person would log in again and then be erased.
        return Err(AppError::invalid(
            "id",
            format!("this user's erasure is pending (due at {due}): cancelErasure first"),
        ));
    }
    if target.is_active {
        // Already active: nothing to do, nothing to audit.
        tx.commit().await?;
        return Ok(Reactivation::nothing_restored(target));
    }
    let record = deactivations::close_open(&mut tx, target.id).await?;
    let mut outcome = match (restore, record) {
        (Restore::Access, Some(record)) => {
            restore_access(&mut tx, actor, target.clone(), record).await?
        }
        _ => Reactivation::nothing_restored(target.clone()),
    };
    deactivations::reactivate(&mut tx, target.id, outcome.restored.staff).await?;
    outcome.user = users::find(&mut *tx, target.id)
        .await
        .or_not_found("user")?;
    let details = json!({
        "restoreAccess": restore == Restore::Access,
        "restoredGroups": outcome.restored.group_names(),
        "restoredPermissions": outcome.restored.permission_keys(),
        "staffRestored": outcome.restored.staff,
        "missingGroupIds": outcome.missing_group_ids,
    });
    AuditEntry::new(AuditAction::UserReactivated, Target::User(&outcome.user))
        .by(actor)
        .reason(reason.as_deref())
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(outcome)
}

impl Reactivation {
    fn nothing_restored(user: UserRow) -> Reactivation {
        Reactivation {
            user,
            restored: Access::default(),
            missing_group_ids: Vec::new(),
        }
    }
}

/// Gives back what the deactivation `record` took from `target`. Restoring
/// access is granting it: the actor must hold every permission it brings
/// back, and only a superuser restores the staff flag.
async fn restore_access(
    tx: &mut PgConnection,
    actor: &Actor,
    target: UserRow,
    record: DeactivationRecord,
) -> AppResult<Reactivation> {
    let restored = Access::remembered(&mut *tx, &record).await?;
    let group_ids: Vec<i64> = restored.groups.iter().map(|g| g.id).collect();
    let mut granted = restored.permission_keys();
    granted.extend(
        permissions::for_groups(&mut *tx, &group_ids)
            .await?
            .into_iter()
            .map(|(_, p)| p.key()),
    );
    ensure_holds_all(actor, &granted)?;
    if restored.staff && !actor.is_superuser() {
        return Err(AppError::forbidden(
            "only a superuser may restore the staff flag",
        ));
    }
    deactivations::restore_groups(&mut *tx, target.id, &group_ids).await?;
    deactivations::restore_permissions(&mut *tx, target.id, &record.permission_ids).await?;
    Ok(Reactivation {
        missing_group_ids: record
            .group_ids
            .iter()
            .filter(|id| !group_ids.contains(id))
            .copied()
            .collect(),
        user: target,
        restored,
    })
}

/// Erases the person and keeps the history: the row and its id stay (votes
/// and audit entries still join), everything identifying goes, and the
/// audit entries that named them are redacted (`domain::erasure`). Votes are
/// not touched, so the cost does not grow with them. The reason is kept, so
/// it may not name the person.
pub async fn anonymize_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    reason: Reason,
) -> AppResult<Anonymization> {
    let mut tx = pool.begin().await?;
    let Acting { actor, target } =
        lock_and_check(&mut tx, actor, user_id, Operation::Anonymize).await?;
    let actor = &actor;
    erasure::ensure_reason_spares(&target, reason.as_deref())?;
    authority::ensure_superusers_remain(&mut tx, &[&target]).await?;
    let by = erasure::Via::AnonymizeUser.by(actor.into());
    let receipt = erasure::anonymize_locked(&mut tx, &target, by).await?;
    let user = users::find(&mut *tx, target.id)
        .await
        .or_not_found("user")?;
    AuditEntry::new(AuditAction::UserAnonymized, Target::User(&user))
        .by(actor)
        .reason(reason.as_deref())
        .details(receipt.to_json())
        .record_and_commit(tx)
        .await?;
    Ok(Anonymization {
        user,
        sessions_revoked: receipt.sessions_revoked,
        receipt,
    })
}

/// Whether a dormant-account run also takes accounts with the staff flag
/// (a staff account unused for a year may be a break-glass login).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DormantStaff {
    Include,
    Exclude,
}

/// Active, never-anonymized users whose last login (or joining, if they
/// never logged in) is older than `days`; without staff if so asked.
pub fn dormant_filter(days: u32, staff: DormantStaff) -> UserFilter {
    UserFilter {
        flags: UserFlagFilter {
            is_active: Some(true),
            is_staff: match staff {
                DormantStaff::Include => None,
                DormantStaff::Exclude => Some(false),
            },
            ..UserFlagFilter::default()
        },
        lifecycle: UserLifecycleFilter {
            anonymized: Some(false),
            ..UserLifecycleFilter::default()
        },
        last_login_before: Some(chrono::Utc::now() - chrono::Duration::days(i64::from(days))),
        ..UserFilter::default()
    }
}

/// The outcome of a dormant-account run, batch by batch.
#[derive(Debug, Default)]
pub struct DormantRun {
    pub matched: i64,
    pub deactivated: usize,
    pub skipped: Vec<(i64, SkipReason)>,
}

/// Deactivates dormant accounts in batches of `batch` users, each batch one
/// transaction (a run that is cut short keeps the batches it finished and can
/// simply be started again). `progress` hears after every batch.
pub async fn deactivate_dormant(
    pool: &PgPool,
    actor: &Actor,
    days: u32,
    staff: DormantStaff,
    batch: i64,
    mut progress: impl FnMut(&DormantRun),
) -> AppResult<DormantRun> {
    let filter = dormant_filter(days, staff);
    let mut run = DormantRun {
        matched: users::count(pool, &filter).await?,
        ..DormantRun::default()
    };
    let options = DeactivateOptions {
        reason: Reason::system(format!("dormant for more than {days} days")),
        ..DeactivateOptions::default()
    };
    let mut after = 0;
    loop {
        let ids = users::matching_ids(pool, &filter, after, batch).await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let done = deactivate_users(pool, actor, Selection::Ids(ids), options.clone()).await?;
        run.deactivated += done.deactivated.len();
        run.skipped.extend(done.skipped);
        progress(&run);
    }
    Ok(run)
}
