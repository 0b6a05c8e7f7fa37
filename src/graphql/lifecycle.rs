//! The lifecycle operations of the API: deactivate, reactivate, delete (its
//! plan and the other deletions are in `graphql::deletion`), anonymize and
//! export. Thin resolvers: each declares its guard, decodes ids and calls one
//! operation of `domain::lifecycle`, `domain::deletion` or `domain::export`.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};

use super::context::{ContextExt, wrap_all};
use super::decode::{self, IdsOrFilter};
use super::deletion::{DeletionArgs, DeletionPlan};
use super::guards::{EXPORT_USER_DATA, Require};
use super::query::UserFilter;
use super::types::{Group, Permission, User};
use crate::domain::Mode;
use crate::domain::access::{CHANGE_USER, DELETE_USER};
use crate::domain::deletion::{self, DeleteOutcome, DeletePolicy};
use crate::domain::erasure::{Anonymization, Erase};
use crate::domain::export;
use crate::domain::lifecycle::{
    self, DeactivateOptions, Deactivation, Reactivation, Restore, Selection, SkipReason,
};
use crate::error::AppError;
use crate::ids::{self, Kind};

/// What `deactivateUser` takes away besides the login.
#[derive(InputObject)]
pub struct DeactivateUserInput {
    /// Remove the user from every group (remembered for `reactivateUser`).
    #[graphql(default = true)]
    pub remove_from_groups: bool,
    /// Revoke every direct permission (remembered for `reactivateUser`).
    #[graphql(default = true)]
    pub remove_permissions: bool,
    /// Also clear `isStaff` (remembered for `reactivateUser`).
    #[graphql(default)]
    pub revoke_staff: bool,
    /// Why; kept on the user and in the audit log. Required when the
    /// deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`).
    pub reason: Option<String>,
}

/// The contract's defaults, also when `input` is left out.
impl Default for DeactivateUserInput {
    fn default() -> Self {
        let defaults = DeactivateOptions::default();
        DeactivateUserInput {
            remove_from_groups: defaults.remove_from_groups,
            remove_permissions: defaults.remove_permissions,
            revoke_staff: defaults.revoke_staff,
            reason: None,
        }
    }
}

impl DeactivateUserInput {
    /// The domain's options, the reason held to the deployment's policy
    /// (`MEMBERDESK_REQUIRE_REASON`; a preview needs none).
    fn into_options(self, ctx: &Context<'_>, mode: Mode) -> Result<DeactivateOptions, AppError> {
        Ok(DeactivateOptions {
            remove_from_groups: self.remove_from_groups,
            remove_permissions: self.remove_permissions,
            revoke_staff: self.revoke_staff,
            reason: ctx.reason(self.reason, mode)?,
        })
    }
}

/// The result of `deactivateUser`.
#[derive(SimpleObject)]
pub struct DeactivateUserPayload {
    /// The user after the deactivation.
    pub user: User,
    /// Sessions ended by this deactivation: the user's tokens stop working at once.
    pub sessions_revoked: i32,
    /// Groups the deactivation took the user out of (and remembers).
    #[graphql(complexity = "crate::graphql::cost::groups(child_complexity)")]
    pub removed_groups: Vec<Group>,
    /// Direct permissions it revoked (and remembers).
    #[graphql(complexity = "crate::graphql::cost::permissions(child_complexity)")]
    pub removed_permissions: Vec<Permission>,
    /// Whether the staff flag was taken (and remembered).
    pub staff_revoked: bool,
}

impl From<Deactivation> for DeactivateUserPayload {
    fn from(done: Deactivation) -> Self {
        let removed = done.removed;
        DeactivateUserPayload {
            user: User::new(done.user),
            sessions_revoked: done.sessions_revoked as i32,
            removed_groups: wrap_all(removed.groups, Group::from),
            removed_permissions: wrap_all(removed.permissions, Permission::from),
            staff_revoked: removed.staff,
        }
    }
}

/// The result of `reactivateUser`.
#[derive(SimpleObject)]
pub struct ReactivateUserPayload {
    /// The user, active again.
    pub user: User,
    /// Groups given back (only with `restoreAccess`).
    #[graphql(complexity = "crate::graphql::cost::groups(child_complexity)")]
    pub restored_groups: Vec<Group>,
    /// Direct permissions given back (only with `restoreAccess`).
    #[graphql(complexity = "crate::graphql::cost::permissions(child_complexity)")]
    pub restored_permissions: Vec<Permission>,
    /// Whether the staff flag was given back.
    pub staff_restored: bool,
    /// Groups the deactivation removed that have since been deleted: not restored.
    #[graphql(complexity = "crate::graphql::cost::groups(child_complexity)")]
    pub missing_group_ids: Vec<ID>,
}

impl From<Reactivation> for ReactivateUserPayload {
    fn from(done: Reactivation) -> Self {
        let restored = done.restored;
        ReactivateUserPayload {
            user: User::new(done.user),
            restored_groups: wrap_all(restored.groups, Group::from),
            restored_permissions: wrap_all(restored.permissions, Permission::from),
            staff_restored: restored.staff,
            missing_group_ids: opaque_ids(Kind::Group, done.missing_group_ids),
        }
    }
}

/// A user a bulk deactivation left alone, and why.
#[derive(SimpleObject)]
pub struct SkippedUser {
    /// The id of the user left alone.
    pub id: ID,
    /// `SELF_ACTION`, `FORBIDDEN`, `ANONYMIZED`, `NOT_FOUND`, `LAST_SUPERUSER`, or
    /// `ALREADY_INACTIVE` (inactive with nothing left to take: nothing changed, nothing audited).
    pub code: String,
}

/// The result of `deactivateUsers`: who was deactivated and who was skipped.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct BulkDeactivatePayload {
    #[graphql(skip)]
    pub deactivated_ids: Vec<i64>,
    /// Users left alone, each with the code that says why.
    #[graphql(complexity = "crate::graphql::cost::bulk(child_complexity)")]
    pub skipped: Vec<SkippedUser>,
}

#[async_graphql::ComplexObject]
impl BulkDeactivatePayload {
    /// The users deactivated (with `dryRun`, those that would be), in id order. Loaded only when asked for: a bulk run
    /// over ten thousand dormant accounts need not send them all back.
    #[graphql(complexity = "crate::graphql::cost::bulk(child_complexity)")]
    async fn deactivated(&self, ctx: &Context<'_>) -> Result<Vec<User>, AppError> {
        let mut users = crate::store::users::find_many(ctx.pool(), &self.deactivated_ids).await?;
        users.sort_by_key(|u| u.id);
        Ok(users.into_iter().map(User::new).collect())
    }
}

/// The result of `deleteUser`: the plan carried out (or, for a dry run, the one that would be).
#[derive(SimpleObject)]
pub struct DeleteUserPayload {
    /// What was (or would be) deleted, detached or protected, counted.
    pub plan: DeletionPlan,
    /// False for a dry run.
    pub deleted: bool,
    /// With `erase: true`: the erasure's receipt (see `AnonymizeUserPayload.receipt`); null otherwise.
    pub receipt: Option<Json<serde_json::Value>>,
}

impl From<DeleteOutcome> for DeleteUserPayload {
    fn from(done: DeleteOutcome) -> Self {
        DeleteUserPayload {
            plan: done.plan.into(),
            deleted: done.deleted,
            receipt: done.receipt.map(|r| Json(r.to_json())),
        }
    }
}

/// The result of `anonymizeUser`.
#[derive(SimpleObject)]
pub struct AnonymizeUserPayload {
    /// The user after erasure: inactive, personal data replaced, history kept.
    pub user: User,
    /// Sessions ended by the anonymization.
    pub sessions_revoked: i32,
    /// The proof of the erasure, without personal data, also recorded as the `USER_ANONYMIZED` entry's details:
    /// `userId`, `pseudonym`, `erasedAt`, `erasedBy`, `via`, `fieldsErased`, `removed` (rows per relation),
    /// `auditEntriesRedacted`, `sessionsRevoked`, `kept` (relations kept as history), and `export`: the time and
    /// SHA-256 of the last `exportUserData` (null if none was taken), so the person can be shown what was held.
    pub receipt: Json<serde_json::Value>,
}

impl From<Anonymization> for AnonymizeUserPayload {
    fn from(done: Anonymization) -> Self {
        AnonymizeUserPayload {
            user: User::new(done.user),
            sessions_revoked: done.sessions_revoked as i32,
            receipt: Json(done.receipt.to_json()),
        }
    }
}

/// Ids of `kind`, as the API shows them.
pub(super) fn opaque_ids(kind: Kind, ids: Vec<i64>) -> Vec<ID> {
    wrap_all(ids, |id| ID(ids::encode(kind, id)))
}

/// The records of `kind` a bulk operation left alone, as the API shows
/// them: each id, with the code of the reason, made into a `T` by `row`.
pub(super) fn skipped<T>(
    kind: Kind,
    skipped: Vec<(i64, SkipReason)>,
    row: impl Fn(ID, String) -> T,
) -> Vec<T> {
    wrap_all(skipped, |(id, why)| {
        row(ID(ids::encode(kind, id)), why.code().to_owned())
    })
}

/// The users a bulk operation names: `ids` or `filter`, exactly one.
pub(super) fn bulk_selection(
    ids: Option<Vec<ID>>,
    filter: Option<UserFilter>,
) -> Result<Selection, AppError> {
    Ok(match decode::ids_or_filter(ids, filter, decode::user_id)? {
        IdsOrFilter::Ids(ids) => Selection::Ids(ids),
        IdsOrFilter::Filter(filter) => Selection::Filter(filter.to_store_for_bulk()?),
    })
}

#[derive(Default)]
pub struct LifecycleQuery;

#[Object]
impl LifecycleQuery {
    /// Everything held about a user (profile, groups, permissions, votes with
    /// their questions, questions created, deactivations, sessions, audit
    /// entries) as one JSON document: for an erasure or access request.
    /// Audited as `USER_DATA_EXPORTED` with the SHA-256 of the document
    /// (keys sorted, no whitespace: RFC 8785), which a later erasure's
    /// receipt names. Needs `auth.view_user`, `polls.view_vote` and
    /// `admin.view_logentry`.
    #[graphql(guard = "Require::AllPermissions(EXPORT_USER_DATA)")]
    async fn export_user_data(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user whose data to export.")] user_id: ID,
    ) -> Result<Json<serde_json::Value>, AppError> {
        let id = decode::user_id(&user_id, "userId")?;
        export::export_user_data(ctx.pool(), &ctx.actor()?, id)
            .await
            .map(Json)
    }
}

#[derive(Default)]
pub struct LifecycleMutation;

#[Object]
impl LifecycleMutation {
    /// Blocks the user's login at once (every session is revoked) and, as
    /// asked, takes away groups, direct permissions and the staff flag,
    /// remembering them. Idempotent. Needs `auth.change_user`; a superuser's
    /// account only by a superuser; never yourself.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn deactivate_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to deactivate (not yourself).")] id: ID,
        #[graphql(
            desc = "What to take away, and why; by default groups and direct permissions go, the staff flag stays."
        )]
        input: Option<DeactivateUserInput>,
    ) -> Result<DeactivateUserPayload, AppError> {
        let id = decode::user_id(&id, "id")?;
        let options = input.unwrap_or_default().into_options(ctx, Mode::Execute)?;
        let done = lifecycle::deactivate_user(ctx.pool(), &ctx.actor()?, id, options).await?;
        Ok(done.into())
    }

    /// Lets the user log in again. With `restoreAccess`, gives back the groups,
    /// direct permissions and staff flag the deactivation took (you must hold
    /// every permission that brings back; the staff flag only by a superuser).
    /// Needs `auth.change_user`.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn reactivate_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to reactivate.")] id: ID,
        #[graphql(
            default_with = "Some(false)",
            desc = "Give back the groups, direct permissions and staff flag the last deactivation took; you must hold each permission you give back."
        )]
        restore_access: Option<bool>,
        #[graphql(desc = "Why, for the audit log.")] reason: Option<String>,
    ) -> Result<ReactivateUserPayload, AppError> {
        let id = decode::user_id(&id, "id")?;
        let done = lifecycle::reactivate_user(
            ctx.pool(),
            &ctx.actor()?,
            id,
            match restore_access {
                Some(true) => Restore::Access,
                _ => Restore::LoginOnly,
            },
            reason,
        )
        .await?;
        Ok(done.into())
    }

    /// Deactivates the users named by `ids`, or every user matching `filter`
    /// (e.g. `{lastLoginBefore: …, isActive: true}` for dormant accounts), in
    /// one transaction. Users you may not act on, or already inactive with
    /// nothing left to take, are skipped with a code. `dryRun` reports the
    /// same without changing anything. Needs `auth.change_user`.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn deactivate_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The users to deactivate; give `ids` or `filter`.")] ids: Option<Vec<ID>>,
        #[graphql(
            desc = "Deactivate every user it matches, e.g. `lastLoginBefore` for dormant accounts. A filter that matches everyone (no field, or only a blank `search`) is refused unless it says `all: true`."
        )]
        filter: Option<UserFilter>,
        #[graphql(desc = "As for `deactivateUser`, applied to each user.")] input: Option<
            DeactivateUserInput,
        >,
        #[graphql(
            default_with = "Some(false)",
            desc = "Only report who would be deactivated and who skipped (with codes); change nothing, audit nothing."
        )]
        dry_run: Option<bool>,
    ) -> Result<BulkDeactivatePayload, AppError> {
        let selection = bulk_selection(ids, filter)?;
        let mode = Mode::from_dry_run(dry_run);
        let options = input.unwrap_or_default().into_options(ctx, mode)?;
        let done =
            lifecycle::deactivate_users_in(ctx.pool(), &ctx.actor()?, selection, options, mode)
                .await?;
        Ok(BulkDeactivatePayload {
            deactivated_ids: done.deactivated,
            skipped: skipped(Kind::User, done.skipped, |id, code| SkippedUser {
                id,
                code,
            }),
        })
    }

    /// Deletes the user under `policy` (see `DeletePolicy`); `dryRun` only
    /// returns the plan. With `planToken` (from `deletionPlan`), deletes only
    /// if the plan is unchanged, else `PLAN_CHANGED`. Needs `auth.delete_user`;
    /// a superuser's account only by a superuser; never yourself.
    #[graphql(guard = "Require::Permission(DELETE_USER)")]
    // Each GraphQL argument is a parameter (the contract names them one by
    // one); they become one `DeleteUser` request at once.
    #[allow(clippy::too_many_arguments)]
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to delete (not yourself).")] id: ID,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "`PROTECT` (default) refuses while the user has votes or questions; `SET_NULL` keeps them, detached; `CASCADE` deletes the votes and detaches the questions."
        )]
        policy: Option<DeletePolicy>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Only return the plan; change nothing."
        )]
        dry_run: Option<bool>,
        #[graphql(
            desc = "The `token` of a plan you reviewed: the deletion happens only if it still matches (`PLAN_CHANGED` otherwise)."
        )]
        plan_token: Option<String>,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
        )]
        reason: Option<String>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Also erase the person from the audit log, as `anonymizeUser` does: the entries naming them keep their actions and times but show `deleted-user-<n>`, lose their reasons and client addresses, and the payload carries a receipt. Without it the entries keep the username snapshot. A user with a pending erasure request is always erased."
        )]
        erase: Option<bool>,
    ) -> Result<DeleteUserPayload, AppError> {
        let user_id = decode::user_id(&id, "id")?;
        let args = DeletionArgs::new(ctx, policy, dry_run, plan_token, reason)?;
        let request = args.user(user_id, Erase::from_flag(erase));
        let done = deletion::delete_user(ctx.pool(), &ctx.actor()?, request).await?;
        Ok(done.into())
    }

    /// Erases the person, keeps the history: username becomes
    /// `deleted-user-<n>`, email, names and password go, access and sessions
    /// end, votes stay (shown as `Deleted user`), and every audit entry naming
    /// them shows the pseudonym, without reasons or client addresses. Returns
    /// a receipt. Irreversible. Superusers only; never yourself.
    #[graphql(guard = "Require::Superuser")]
    async fn anonymize_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to erase (not yourself).")] id: ID,
        #[graphql(
            desc = "Why, for the audit log; it is kept, so it may not name the person (`INVALID_INPUT` if it holds their username, email or name). Required when the deployment sets `MEMBERDESK_REQUIRE_REASON`."
        )]
        reason: Option<String>,
    ) -> Result<AnonymizeUserPayload, AppError> {
        let id = decode::user_id(&id, "id")?;
        let reason = ctx.reason(reason, Mode::Execute)?;
        let done = lifecycle::anonymize_user(ctx.pool(), &ctx.actor()?, id, reason).await?;
        Ok(done.into())
    }
}
