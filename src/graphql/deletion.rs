//! Deleting records: the plan of any deletion (`deletionPlan`), the deletes
//! of groups, questions and choices, the bulk deletes of users and
//! questions, and the soft delete of questions (archive, restore). Thin
//! resolvers: each declares its guard, decodes its arguments and calls one
//! operation of `domain::deletion` or `domain::archive` (`deleteUser` stays
//! with the member lifecycle in `graphql::lifecycle`).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Union};
use chrono::{DateTime, Utc};

use super::context::ContextExt;
use super::decode;
use super::guards::{DELETE_ANYTHING, Require};
use super::lifecycle::bulk_selection;
use super::query::UserFilter;
use super::types::{Choice, Group, Question, User};
use crate::domain::access::{CHANGE_QUESTION, DELETE_GROUP, DELETE_QUESTION, DELETE_USER};
use crate::domain::deletion::{
    self, BulkDelete, BulkDeletion, DeleteOutcome, DeletePolicy, DeleteRequest, Planned,
    QuestionSelection, RelationCount, Target, TargetKind,
};
use crate::domain::{Mode, archive, validation};
use crate::error::AppError;
use crate::ids::{self, Kind};
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
    counts
        .into_iter()
        .map(|c| RelationCountObject {
            relation: c.relation,
            count: c.count,
        })
        .collect()
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
            Target::Group(row) => DeletionTarget::Group(Group(row)),
            Target::Question(row) => DeletionTarget::Question(Question(row)),
            Target::Choice(row) => DeletionTarget::Choice(Choice(row)),
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
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::RELATIONS, child_complexity)"
    )]
    pub protected: Vec<RelationCountObject>,
    /// Rows that would be deleted with the record.
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::RELATIONS, child_complexity)"
    )]
    pub deleted: Vec<RelationCountObject>,
    /// Rows that would stay, no longer pointing at the record (the audit trail among them).
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::RELATIONS, child_complexity)"
    )]
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
            protected: relation_counts(plan.protected),
            deleted: relation_counts(plan.deleted),
            detached: relation_counts(plan.detached),
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
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::BULK, child_complexity)"
    )]
    pub deleted: Vec<ID>,
    /// Records left alone, each with the code that says why.
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::BULK, child_complexity)"
    )]
    pub skipped: Vec<SkippedTarget>,
}

impl BulkDeletePayload {
    fn new(done: BulkDeletion, kind: Kind) -> Self {
        BulkDeletePayload {
            plan: done.plan.into(),
            deleted: done
                .deleted
                .into_iter()
                .map(|id| ID(ids::encode(kind, id)))
                .collect(),
            skipped: done
                .skipped
                .into_iter()
                .map(|(id, why)| SkippedTarget {
                    id: ID(ids::encode(kind, id)),
                    code: why.code().to_owned(),
                })
                .collect(),
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

fn question_selection(
    ids: Option<Vec<ID>>,
    filter: Option<QuestionFilter>,
) -> Result<QuestionSelection, AppError> {
    match (ids, filter) {
        (Some(ids), None) => Ok(QuestionSelection::Ids(
            ids.iter()
                .map(|id| decode::question_id(id, "ids"))
                .collect::<Result<_, _>>()?,
        )),
        (None, Some(filter)) => Ok(QuestionSelection::Filter(filter.to_store()?)),
        _ => Err(AppError::invalid(
            "ids",
            "give exactly one of ids and filter",
        )),
    }
}

/// The one-record request of a delete mutation's arguments.
fn request(
    ctx: &Context<'_>,
    id: i64,
    policy: Option<DeletePolicy>,
    dry_run: Option<bool>,
    plan_token: Option<String>,
    reason: Option<String>,
) -> Result<DeleteRequest, AppError> {
    let mode = Mode::from_dry_run(dry_run);
    Ok(DeleteRequest {
        id,
        policy: policy.unwrap_or_default(),
        mode,
        plan_token,
        reason: ctx.reason(reason, mode)?,
    })
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

#[derive(Default)]
pub struct DeletionMutation;

#[Object]
impl DeletionMutation {
    /// Deletes the group under `policy`: `PROTECT` (default) refuses while
    /// it has members; `SET_NULL` and `CASCADE` remove its memberships and
    /// permission links with it. `dryRun` only returns the plan; with
    /// `planToken`, deletes only if the plan is unchanged (`PLAN_CHANGED`).
    /// Needs `auth.delete_group` and every permission the group carries.
    #[graphql(guard = "Require::Permission(DELETE_GROUP)")]
    async fn delete_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group to delete.")] id: ID,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "What happens to the rows that reference it (see `DeletePolicy`); `PROTECT` by default."
        )]
        policy: Option<DeletePolicy>,
        #[graphql(default_with = "Some(false)", desc = "Only return the plan.")] dry_run: Option<
            bool,
        >,
        #[graphql(desc = "The `token` of a plan you reviewed.")] plan_token: Option<String>,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
        )]
        reason: Option<String>,
    ) -> Result<DeletePayload, AppError> {
        let id = decode::group_id(&id, "id")?;
        let request = request(ctx, id, policy, dry_run, plan_token, reason)?;
        let done =
            deletion::delete_one(ctx.pool(), &ctx.actor()?, TargetKind::Group, request).await?;
        Ok(done.into())
    }

    /// Deletes the question under `policy`: `PROTECT` (default) refuses
    /// while it has votes; `CASCADE` deletes its choices and votes (tallies
    /// go with them); `SET_NULL` means nothing here (`INVALID_INPUT`).
    /// `dryRun`, `planToken` as for `deleteGroup`. Needs `polls.delete_question`.
    #[graphql(guard = "Require::Permission(DELETE_QUESTION)")]
    async fn delete_question(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The question to delete.")] id: ID,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "What happens to the rows that reference it (see `DeletePolicy`); `PROTECT` by default."
        )]
        policy: Option<DeletePolicy>,
        #[graphql(default_with = "Some(false)", desc = "Only return the plan.")] dry_run: Option<
            bool,
        >,
        #[graphql(desc = "The `token` of a plan you reviewed.")] plan_token: Option<String>,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
        )]
        reason: Option<String>,
    ) -> Result<DeletePayload, AppError> {
        let id = decode::question_id(&id, "id")?;
        let request = request(ctx, id, policy, dry_run, plan_token, reason)?;
        let done =
            deletion::delete_one(ctx.pool(), &ctx.actor()?, TargetKind::Question, request).await?;
        Ok(done.into())
    }

    /// Deletes the choice under `policy`: `PROTECT` (default) refuses while
    /// it has votes; `CASCADE` deletes its votes; `SET_NULL` means nothing
    /// here. Its question keeps at least two choices (`INVALID_INPUT`).
    /// `dryRun`, `planToken` as for `deleteGroup`. Needs `polls.change_question`.
    #[graphql(guard = "Require::Permission(CHANGE_QUESTION)")]
    async fn delete_choice(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The choice to delete.")] id: ID,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "What happens to the rows that reference it (see `DeletePolicy`); `PROTECT` by default."
        )]
        policy: Option<DeletePolicy>,
        #[graphql(default_with = "Some(false)", desc = "Only return the plan.")] dry_run: Option<
            bool,
        >,
        #[graphql(desc = "The `token` of a plan you reviewed.")] plan_token: Option<String>,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
        )]
        reason: Option<String>,
    ) -> Result<DeletePayload, AppError> {
        let id = decode::choice_id(&id, "id")?;
        let request = request(ctx, id, policy, dry_run, plan_token, reason)?;
        let done =
            deletion::delete_one(ctx.pool(), &ctx.actor()?, TargetKind::Choice, request).await?;
        Ok(done.into())
    }

    /// Deletes the users named by `ids`, or every user matching `filter`,
    /// under `policy`, in one transaction. Users you may not delete are
    /// skipped with a code, and under `PROTECT` (default) so are users with
    /// votes or questions (`DELETE_PROTECTED`). `dryRun` returns the plan
    /// summed over the set; its token, passed as `planToken`, deletes exactly
    /// that set with those counts or nothing (`PLAN_CHANGED`). One
    /// `USER_DELETED` audit entry per user. Needs `auth.delete_user`.
    #[graphql(guard = "Require::Permission(DELETE_USER)")]
    // The contract's arguments, one Rust parameter each (as GraphQL sees them).
    #[expect(
        clippy::too_many_arguments,
        reason = "one parameter per GraphQL argument"
    )]
    async fn delete_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The users to delete; give `ids` or `filter`.")] ids: Option<Vec<ID>>,
        #[graphql(
            desc = "Delete every user it matches. A filter that matches everyone is refused unless it says `all: true`."
        )]
        filter: Option<UserFilter>,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "What happens to the rows that reference it (see `DeletePolicy`); `PROTECT` by default."
        )]
        policy: Option<DeletePolicy>,
        #[graphql(default_with = "Some(false)", desc = "Only return the plan.")] dry_run: Option<
            bool,
        >,
        #[graphql(desc = "The `token` of the bulk plan you reviewed.")] plan_token: Option<String>,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
        )]
        reason: Option<String>,
    ) -> Result<BulkDeletePayload, AppError> {
        let mode = Mode::from_dry_run(dry_run);
        let request = BulkDelete {
            selection: bulk_selection(ids, filter)?,
            policy: policy.unwrap_or_default(),
            mode,
            plan_token,
            reason: ctx.reason(reason, mode)?,
        };
        let done = deletion::delete_users(ctx.pool(), &ctx.actor()?, request).await?;
        Ok(BulkDeletePayload::new(done, Kind::User))
    }

    /// Deletes the questions named by `ids`, or every question matching
    /// `filter` (e.g. `{archived: true, createdBefore: …}`), as
    /// `deleteQuestion` would, in one transaction; under `PROTECT` (default)
    /// questions with votes are skipped (`DELETE_PROTECTED`). `dryRun` and
    /// `planToken` as for `deleteUsers`. Needs `polls.delete_question`.
    #[graphql(guard = "Require::Permission(DELETE_QUESTION)")]
    // The contract's arguments, one Rust parameter each (as GraphQL sees them).
    #[expect(
        clippy::too_many_arguments,
        reason = "one parameter per GraphQL argument"
    )]
    async fn delete_questions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The questions to delete; give `ids` or `filter`.")] ids: Option<Vec<ID>>,
        #[graphql(desc = "Delete every question it matches.")] filter: Option<QuestionFilter>,
        #[graphql(
            default_with = "Some(DeletePolicy::Protect)",
            desc = "What happens to the rows that reference it (see `DeletePolicy`); `PROTECT` by default."
        )]
        policy: Option<DeletePolicy>,
        #[graphql(default_with = "Some(false)", desc = "Only return the plan.")] dry_run: Option<
            bool,
        >,
        #[graphql(desc = "The `token` of the bulk plan you reviewed.")] plan_token: Option<String>,
        #[graphql(
            desc = "Why, for the audit log; required when the deployment sets `MEMBERDESK_REQUIRE_REASON` (not for a `dryRun`)."
        )]
        reason: Option<String>,
    ) -> Result<BulkDeletePayload, AppError> {
        let mode = Mode::from_dry_run(dry_run);
        let request = BulkDelete {
            selection: question_selection(ids, filter)?,
            policy: policy.unwrap_or_default(),
            mode,
            plan_token,
            reason: ctx.reason(reason, mode)?,
        };
        let done = deletion::delete_questions(ctx.pool(), &ctx.actor()?, request).await?;
        Ok(BulkDeletePayload::new(done, Kind::Question))
    }

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
            .map(Question)
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
            .map(Question)
    }
}
