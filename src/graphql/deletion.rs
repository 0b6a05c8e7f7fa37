//! Deleting records: the plan of any deletion (`deletionPlan`), the deletes
//! of groups, questions and choices, the bulk deletes of users and
//! questions, and the soft delete of questions (archive, restore). Thin
//! resolvers: each declares its guard, decodes its arguments and calls one
//! operation of `domain::deletion` or `domain::archive` (`deleteUser` stays
//! with the member lifecycle in `graphql::lifecycle`).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Union};
use chrono::{DateTime, Utc};

use super::context::{ContextExt, wrap_all};
use super::decode::{self, IdsOrFilter};
use super::guards::{DELETE_ANYTHING, Require};
use super::lifecycle::{bulk_selection, opaque_ids, skipped};
use super::query::UserFilter;
use super::types::{Choice, Group, Question, User};
use crate::domain::access::{CHANGE_QUESTION, DELETE_GROUP, DELETE_QUESTION, DELETE_USER};
use crate::domain::deletion::{
    self, BulkDelete, BulkDeletion, DeleteOutcome, DeletePolicy, DeleteRequest, DeleteUser,
    Planned, QuestionSelection, RelationCount, Target, TargetKind,
};
use crate::domain::erasure::Erase;
use crate::domain::validation::{self, Reason};
use crate::domain::{Mode, archive};
use crate::error::AppError;
use crate::ids::Kind;
use crate::store::polls;

/// Rows of one relation and how many there are.
#[derive(SimpleObject)]
#[graphql(name = "RelationCount")]
pub struct RelationCountObject {
    /// A user's `votes`, `questions`, `sessions`, `groupMemberships`,
    /// `userPermissions`, `deactivations`, `auditEntries` (as actor) or
    /// `auditEntriesAsTarget`; a group's `members`, `groupPermissions` or
    /// `rememberedMemberships` (open deactivations that will not give it
    /// back); a question's `choices` and `votes`; a choice's `votes`.
    pub relation: String,
    /// How many rows.
    pub count: i64,
}

fn relation_counts(counts: Vec<RelationCount>) -> Vec<RelationCountObject> {
    wrap_all(counts, |c| RelationCountObject {
        relation: c.relation,
        count: c.count,
    })
}

/// The record a deletion plan is for.
#[derive(Union)]
pub enum DeletionTarget {
    User(User),
    Group(Group),
    Question(Question),
    Choice(Choice),
}

impl From<Target> for DeletionTarget {
    fn from(target: Target) -> Self {
        match target {
            Target::User(row) => DeletionTarget::User(User::new(row)),
            Target::Group(row) => DeletionTarget::Group(Group::from(row)),
            Target::Question(row) => DeletionTarget::Question(Question::from(row)),
            Target::Choice(row) => DeletionTarget::Choice(Choice::from(row)),
        }
    }
}

/// What deleting a record (or a bulk selection) under a policy would do,
/// counted, never loaded.
#[derive(SimpleObject)]
pub struct DeletionPlan {
    /// The user the plan is for; null when it is for another kind of record
    /// or for a bulk selection (see `kind` and `target`).
    pub user: Option<User>,
    /// What kind of record the plan deletes.
    pub kind: TargetKind,
    /// The record the plan is for; null for a bulk selection.
    pub target: Option<DeletionTarget>,
    /// How many records the plan deletes: 1, or a bulk selection's size
    /// (skipped records not included).
    pub target_count: i32,
    /// The policy it was counted under.
    pub policy: DeletePolicy,
    /// False when `PROTECT` finds protecting rows (then see `protected`). A
    /// bulk plan skips the protected records instead, and is always allowed.
    pub allowed: bool,
    /// Relations that block the deletion under this policy (for a bulk
    /// plan, what the skipped records hold).
    #[graphql(complexity = "crate::graphql::cost::relations(child_complexity)")]
    pub protected: Vec<RelationCountObject>,
    /// Rows that would be deleted with the record.
    #[graphql(complexity = "crate::graphql::cost::relations(child_complexity)")]
    pub deleted: Vec<RelationCountObject>,
    /// Rows that would stay, no longer pointing at the record (the audit trail among them).
    #[graphql(complexity = "crate::graphql::cost::relations(child_complexity)")]
    pub detached: Vec<RelationCountObject>,
    /// Pass as `planToken` to the deletion to carry out exactly this plan or
    /// nothing (`PLAN_CHANGED`).
    pub token: String,
}

impl From<deletion::DeletionPlan> for DeletionPlan {
    fn from(plan: deletion::DeletionPlan) -> Self {
        let (kind, target_count) = (plan.kind(), plan.target_count());
        let target = match plan.target {
            Planned::One(target) => Some(target),
            Planned::Many { .. } => None,
        };
        DeletionPlan {
            user: match &target {
                Some(Target::User(user)) => Some(User::new(user.clone())),
                _ => None,
            },
            kind,
            target: target.map(Into::into),
            target_count: i32::try_from(target_count).unwrap_or(i32::MAX),
            policy: plan.policy,
            allowed: plan.allowed,
            protected: relation_counts(plan.effects.protected),
            deleted: relation_counts(plan.effects.deleted),
            detached: relation_counts(plan.effects.detached),
            token: plan.token,
        }
    }
}

/// The result of deleting a group, a question or a choice: the plan carried
/// out (or, for a dry run, the one that would be).
#[derive(SimpleObject)]
pub struct DeletePayload {
    /// What was (or would be) deleted, detached or protected, counted.
    pub plan: DeletionPlan,
    /// False for a dry run.
    pub deleted: bool,
}

impl From<DeleteOutcome> for DeletePayload {
    fn from(done: DeleteOutcome) -> Self {
        DeletePayload {
            plan: done.plan.into(),
            deleted: done.deleted,
        }
    }
}

/// A record a bulk deletion left alone, and why.
#[derive(SimpleObject)]
pub struct SkippedTarget {
    /// The id of the record left alone.
    pub id: ID,
    /// `SELF_ACTION`, `FORBIDDEN`, `LAST_SUPERUSER`, `NOT_FOUND`, or
    /// `DELETE_PROTECTED` (under `PROTECT`: related rows protect it).
    pub code: String,
}

/// The result of `deleteUsers` or `deleteQuestions`.
#[derive(SimpleObject)]
pub struct BulkDeletePayload {
    /// The plan carried out (or, for a dry run, the one that would be),
    /// summed over the records deleted.
    pub plan: DeletionPlan,
    /// The ids of the records deleted (with `dryRun`, those that would be), in id order.
    #[graphql(complexity = "crate::graphql::cost::bulk(child_complexity)")]
    pub deleted: Vec<ID>,
    /// Records left alone, each with the code that says why.
    #[graphql(complexity = "crate::graphql::cost::bulk(child_complexity)")]
    pub skipped: Vec<SkippedTarget>,
}

impl BulkDeletePayload {
    fn new(done: BulkDeletion, kind: Kind) -> Self {
        BulkDeletePayload {
            plan: done.plan.into(),
            deleted: opaque_ids(kind, done.deleted),
            skipped: skipped(kind, done.skipped, |id, code| SkippedTarget { id, code }),
        }
    }
}

/// Which questions `deleteQuestions` deletes; every field given must match.
#[derive(InputObject, Default)]
pub struct QuestionFilter {
    /// True: archived questions only; false: the others.
    pub archived: Option<bool>,
    /// Questions archived before this instant (what `purge-archived` deletes).
    pub archived_before: Option<DateTime<Utc>>,
    /// Questions published (created) before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Questions created by this user.
    pub created_by: Option<ID>,
    /// True: a filter with no other field means every question. Without it
    /// such a filter is refused, so a forgotten field cannot hit everything.
    pub all: Option<bool>,
}

impl QuestionFilter {
    /// The store's filter; one matching every question is `INVALID_INPUT`
    /// (field `filter`) unless `all: true` says so on purpose.
    fn to_store(&self) -> Result<polls::QuestionFilter, AppError> {
        let filter = polls::QuestionFilter {
            archived: self.archived,
            archived_before: self
                .archived_before
                .map(|at| validation::instant("archivedBefore", at))
                .transpose()?,
            created_before: self
                .created_before
                .map(|at| validation::instant("createdBefore", at))
                .transpose()?,
            created_by: self
                .created_by
                .as_ref()
                .map(|id| decode::user_id(id, "createdBy"))
                .transpose()?,
        };
        if filter.is_empty() && self.all != Some(true) {
            return Err(AppError::invalid(
                "filter",
                "this filter matches every question: give a field, or `all: true` to mean all of them",
            ));
        }
        Ok(filter)
    }
}

/// The questions a bulk deletion names: `ids` or `filter`, exactly one.
fn question_selection(
    ids: Option<Vec<ID>>,
    filter: Option<QuestionFilter>,
) -> Result<QuestionSelection, AppError> {
    Ok(
        match decode::ids_or_filter(ids, filter, decode::question_id)? {
            IdsOrFilter::Ids(ids) => QuestionSelection::Ids(ids),
            IdsOrFilter::Filter(filter) => QuestionSelection::Filter(filter.to_store()?),
        },
    )
}

/// The arguments every deletion takes besides what it deletes, checked:
/// the policy (`PROTECT` when left out), `dryRun` as a [`Mode`], the token
/// of a reviewed plan, and the reason held to the deployment's policy.
pub(super) struct DeletionArgs {
    policy: DeletePolicy,
    mode: Mode,
    plan_token: Option<String>,
    reason: Reason,
}

impl DeletionArgs {
    pub(super) fn new(
        ctx: &Context<'_>,
        policy: Option<DeletePolicy>,
        dry_run: Option<bool>,
        plan_token: Option<String>,
        reason: Option<String>,
    ) -> Result<Self, AppError> {
        let mode = Mode::from_dry_run(dry_run);
        Ok(DeletionArgs {
            policy: policy.unwrap_or_default(),
            mode,
            plan_token,
            reason: ctx.reason(reason, mode)?,
        })
    }

    /// The request to delete the one record `id`.
    fn one(self, id: i64) -> DeleteRequest {
        DeleteRequest {
            id,
            policy: self.policy,
            mode: self.mode,
            plan_token: self.plan_token,
            reason: self.reason,
        }
    }

    /// The request to delete every record of `selection`.
    fn bulk<S>(self, selection: S) -> BulkDelete<S> {
        BulkDelete {
            selection,
            policy: self.policy,
            mode: self.mode,
            plan_token: self.plan_token,
            reason: self.reason,
        }
    }

    /// The request to delete the user `user_id`, erasing them from the
    /// audit log as `erase` says.
    pub(super) fn user(self, user_id: i64, erase: Erase) -> DeleteUser {
        DeleteUser {
            user_id,
            policy: self.policy,
            mode: self.mode,
            plan_token: self.plan_token,
            reason: self.reason,
            erase,
        }
    }
}

/// Deletes the one record `request` names, of `kind`.
async fn delete_one(
    ctx: &Context<'_>,
    kind: TargetKind,
    request: DeleteRequest,
) -> Result<DeletePayload, AppError> {
    let done = deletion::delete_one(ctx.pool(), &ctx.actor()?, kind, request).await?;
    Ok(done.into())
}

#[derive(Default)]
pub struct DeletionQuery;

#[Object]
impl DeletionQuery {
    /// What deleting a record under `policy` would do; changes nothing.
    /// Give `id` (a user, group, question or choice) or `userId`. Needs the
    /// permission its deletion needs: `auth.delete_user`,
    /// `auth.delete_group`, `polls.delete_question`, or for a choice
    /// `polls.change_question`.
    #[graphql(guard = "Require::AnyPermission(DELETE_ANYTHING)")]
    async fn deletion_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The record whose deletion to preview: a user, group, question or choice."
        )]
        id: Option<ID>,
        #[graphql(desc = "The user whose deletion to preview (as `id`, for users only).")]
        user_id: Option<ID>,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "`PROTECT` (default) refuses while protecting rows exist; `SET_NULL` keeps a user's contributions, detached; `CASCADE` deletes what cannot stand alone (see `DeletePolicy`)."
        )]
        policy: Option<DeletePolicy>,
    ) -> Result<DeletionPlan, AppError> {
        let (kind, id) = match (id, user_id) {
            (Some(id), None) => decode::deletable(&id, "id")?,
            (None, Some(user_id)) => (TargetKind::User, decode::user_id(&user_id, "userId")?),
            _ => return Err(AppError::invalid("id", "give exactly one of id and userId")),
        };
        let policy = policy.unwrap_or_default();
        deletion::plan(ctx.pool(), &ctx.actor()?, kind, id, policy)
            .await
            .map(Into::into)
    }
}

/// The deletions of one record: a group, a question, a choice.
#[derive(Default)]
pub struct DeletionMutation;

/// The bulk deletions: of users, of questions.
#[derive(Default)]
pub struct BulkDeletionMutation;

/// Writes the `#[Object]` impl of a deletion object, one resolver per
/// entry. Every deletion takes `policy`, `dryRun`, `planToken` and `reason`
/// after its own arguments, described alike: the contract names them one by
/// one, and async-graphql cannot take arguments from a struct
/// (async-graphql#1514). So an entry gives only its docs, guard, own
/// arguments and body, and this writes the four shared arguments once. The
/// header names the object, the context and the checked [`DeletionArgs`] as
/// every body calls them, and what `planToken` is the token of.
macro_rules! deletion_mutation {
    (impl $object:ident; use $ctx:ident, $args:ident; plan_token = $plan_token:tt; $(
        $(#[doc = $doc:tt])*
        #[graphql(guard = $guard:tt)]
        async fn $name:ident($(#[graphql(desc = $desc:tt)] $arg:ident: $ty:ty),* $(,)?)
            -> $payload:ty { $($body:tt)* }
    )*) => {
        #[Object]
        impl $object {
            $(
                $(#[doc = $doc])*
                #[graphql(guard = $guard)]
                #[allow(clippy::too_many_arguments, reason = "one parameter per GraphQL argument")]
                async fn $name(
                    &self,
                    $ctx: &Context<'_>,
                    $(#[graphql(desc = $desc)] $arg: $ty,)*
                    #[graphql(
                        default_with = "Some(DeletePolicy::Protect)",
                        desc = "What happens to the rows that reference it (see `DeletePolicy`); `PROTECT` by default."
                    )]
                    policy: Option<DeletePolicy>,
                    #[graphql(default_with = "Some(false)", desc = "Only return the plan.")]
                    dry_run: Option<bool>,
                    #[graphql(desc = $plan_token)] plan_token: Option<String>,
                    #[graphql(
                        desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
                    )]
                    reason: Option<String>,
                ) -> Result<$payload, AppError> {
                    let $args = DeletionArgs::new($ctx, policy, dry_run, plan_token, reason)?;
                    $($body)*
                }
            )*
        }
    };
}

deletion_mutation! {
    impl DeletionMutation;
    use ctx, args;
    plan_token = "The `token` of a plan you reviewed.";

    /// Deletes the group under `policy`: `PROTECT` (default) refuses while
    /// it has members; `SET_NULL` and `CASCADE` remove its memberships and
    /// permission links with it. `dryRun` only returns the plan; with
    /// `planToken`, deletes only if the plan is unchanged (`PLAN_CHANGED`).
    /// Needs `auth.delete_group` and every permission the group carries.
    #[graphql(guard = "Require::Permission(DELETE_GROUP)")]
    async fn delete_group(#[graphql(desc = "The group to delete.")] id: ID) -> DeletePayload {
        delete_one(ctx, TargetKind::Group, args.one(decode::group_id(&id, "id")?)).await
    }

    /// Deletes the question under `policy`: `PROTECT` (default) refuses
    /// while it has votes; `CASCADE` deletes its choices and votes (tallies
    /// go with them); `SET_NULL` means nothing here (`INVALID_INPUT`).
    /// `dryRun`, `planToken` as for `deleteGroup`. Needs `polls.delete_question`.
    #[graphql(guard = "Require::Permission(DELETE_QUESTION)")]
    async fn delete_question(#[graphql(desc = "The question to delete.")] id: ID) -> DeletePayload {
        delete_one(ctx, TargetKind::Question, args.one(decode::question_id(&id, "id")?)).await
    }

    /// Deletes the choice under `policy`: `PROTECT` (default) refuses while
    /// it has votes; `CASCADE` deletes its votes; `SET_NULL` means nothing
    /// here. Its question keeps at least two choices (`INVALID_INPUT`).
    /// `dryRun`, `planToken` as for `deleteGroup`. Needs `polls.change_question`.
    #[graphql(guard = "Require::Permission(CHANGE_QUESTION)")]
    async fn delete_choice(#[graphql(desc = "The choice to delete.")] id: ID) -> DeletePayload {
        delete_one(ctx, TargetKind::Choice, args.one(decode::choice_id(&id, "id")?)).await
    }
}

deletion_mutation! {
    impl BulkDeletionMutation;
    use ctx, args;
    plan_token = "The `token` of the bulk plan you reviewed.";

    /// Deletes the users named by `ids`, or every user matching `filter`,
    /// under `policy`, in one transaction. Users you may not delete are
    /// skipped with a code, and under `PROTECT` (default) so are users with
    /// votes or questions (`DELETE_PROTECTED`). `dryRun` returns the plan
    /// summed over the set; its token, passed as `planToken`, deletes exactly
    /// that set with those counts or nothing (`PLAN_CHANGED`). One
    /// `USER_DELETED` audit entry per user. Needs `auth.delete_user`.
    #[graphql(guard = "Require::Permission(DELETE_USER)")]
    async fn delete_users(
        #[graphql(desc = "The users to delete; give `ids` or `filter`.")] ids: Option<Vec<ID>>,
        #[graphql(
            desc = "Delete every user it matches. A filter that matches everyone is refused unless it says `all: true`."
        )]
        filter: Option<UserFilter>,
    ) -> BulkDeletePayload {
        let request = args.bulk(bulk_selection(ids, filter)?);
        let done = deletion::delete_users(ctx.pool(), &ctx.actor()?, request).await?;
        Ok(BulkDeletePayload::new(done, Kind::User))
    }

    /// Deletes the questions named by `ids`, or every question matching
    /// `filter` (e.g. `{archived: true, createdBefore: …}`), as
    /// `deleteQuestion` would, in one transaction; under `PROTECT` (default)
    /// questions with votes are skipped (`DELETE_PROTECTED`). `dryRun` and
    /// `planToken` as for `deleteUsers`. Needs `polls.delete_question`.
    #[graphql(guard = "Require::Permission(DELETE_QUESTION)")]
    async fn delete_questions(
        #[graphql(desc = "The questions to delete; give `ids` or `filter`.")] ids: Option<Vec<ID>>,
        #[graphql(desc = "Delete every question it matches.")] filter: Option<QuestionFilter>,
    ) -> BulkDeletePayload {
        let request = args.bulk(question_selection(ids, filter)?);
        let done = deletion::delete_questions(ctx.pool(), &ctx.actor()?, request).await?;
        Ok(BulkDeletePayload::new(done, Kind::Question))
    }
}

/// The soft delete of questions: `archiveQuestion` and `restoreQuestion`.
#[derive(Default)]
pub struct ArchiveMutation;

#[Object]
impl ArchiveMutation {
    /// Archives the question (a soft delete): it leaves `questions` (unless
    /// `includeArchived: true`) and refuses new votes, while its choices,
    /// votes and tallies stay; `restoreQuestion` brings it back, and
    /// `memberdesk purge-archived` deletes it for good once it has been
    /// archived long enough. Archiving an archived question changes nothing
    /// and is not audited. Needs `polls.delete_question`. Audited
    /// `QUESTION_ARCHIVED`.
    #[graphql(guard = "Require::Permission(DELETE_QUESTION)")]
    async fn archive_question(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The question to archive.")] id: ID,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON`."
        )]
        reason: Option<String>,
    ) -> Result<Question, AppError> {
        let id = decode::question_id(&id, "id")?;
        let reason = ctx.reason(reason, Mode::Execute)?;
        archive::archive_question(ctx.pool(), &ctx.actor()?, id, reason)
            .await
            .map(Question::from)
    }

    /// Brings an archived question back as it was: listed again, open to
    /// votes. Restoring a live question changes nothing and is not audited.
    /// Needs `polls.delete_question`. Audited `QUESTION_RESTORED`.
    #[graphql(guard = "Require::Permission(DELETE_QUESTION)")]
    async fn restore_question(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The archived question to bring back.")] id: ID,
    ) -> Result<Question, AppError> {
        let id = decode::question_id(&id, "id")?;
        archive::restore_question(ctx.pool(), &ctx.actor()?, id)
            .await
            .map(Question::from)
    }
}
