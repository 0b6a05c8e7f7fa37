//! The read side of the API. Resolvers are thin: decode ids and arguments,
//! call the store, wrap rows in types. Who may read what is the guard on each field.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::context::{ContextExt, wrap_all};
use super::cost;
use super::decode;
use super::guards::{Require, VIEW_AUDIT, VIEW_GROUP, VIEW_USER, VIEW_VOTE};
use super::pagination::{CountedConnection, IdPage, TotalCount, page_size, users_page};
use super::types::{AuditEntry, Group, Permission, Question, User, Vote, votes_of_user};
use crate::domain::filters::{AuditFilter, UserFlagFilter, UserLifecycleFilter, UserOrder};
use crate::domain::validation;
use crate::error::{AppError, OrNotFound};
use crate::store::{audit, groups, permissions, polls, users};

#[derive(Default)]
pub struct QueryRoot;

// The filter as a client sends it: ids opaque, text unchecked, and `all`,
// which only bulk operations read. `to_store` parses it into the store's
// `users::UserFilter` (decoded ids, trimmed search, checked instants): two
// types because they hold different things, the unchecked and the checked,
// as zero2prod's `FormData` and `NewSubscriber` do. The account's flags and
// lifecycle states need no checking, so both hold the same
// `UserFlagFilter` and `UserLifecycleFilter` (flattened here: the API shows
// their fields in place, as ever). What needs checking stays apart: a
// shared, flattened `lastLoginBefore` would name the inner type in
// async-graphql's parse error for a malformed instant.
/// Filters for `users`; every field left out matches everything.
#[derive(InputObject, Default)]
pub struct UserFilter {
    #[graphql(flatten)]
    pub flags: UserFlagFilter,
    /// Case-insensitive substring of username, email, first or last name.
    pub search: Option<String>,
    /// Members of this group.
    pub group_id: Option<ID>,
    /// Users whose last login (or, if they never logged in, whose joining) is
    /// before this instant: the dormant accounts.
    pub last_login_before: Option<DateTime<Utc>>,
    #[graphql(flatten)]
    pub lifecycle: UserLifecycleFilter,
    /// True: a bulk operation given no other field acts on every user it
    /// may. Without it such a filter (a blank `search` counts as none) is
    /// refused there, so a forgotten field cannot hit everyone. Reads ignore it.
    pub all: Option<bool>,
}

impl UserFilter {
    /// The filter for a bulk operation (`deactivateUsers`): as [`Self::to_store`],
    /// but one that matches every user by leaving every field out or blank is
    /// `INVALID_INPUT` (field `filter`) unless `all: true` says so on purpose.
    pub fn to_store_for_bulk(&self) -> Result<users::UserFilter, AppError> {
        let filter = self.to_store()?;
        if filter.is_empty() && self.all != Some(true) {
            return Err(AppError::invalid(
                "filter",
                "this filter matches every user: give a field, or `all: true` to mean everyone",
            ));
        }
        Ok(filter)
    }

    /// The store's filter; a blank `search` is no filter (see [`users::UserFilter::is_empty`]).
    pub fn to_store(&self) -> Result<users::UserFilter, AppError> {
        let search = match &self.search {
            Some(s) => Some(validation::line(
                "search",
                s,
                validation::MAX_USERNAME,
                false,
            )?)
            .filter(|s| !s.is_empty()),
            None => None,
        };
        Ok(users::UserFilter {
            flags: self.flags,
            search,
            group_id: self
                .group_id
                .as_ref()
                .map(|id| decode::group_id(id, "groupId"))
                .transpose()?,
            last_login_before: self
                .last_login_before
                .map(|at| validation::instant("lastLoginBefore", at))
                .transpose()?,
            lifecycle: self.lifecycle,
        })
    }
}

// The input is the domain's filter with the client's ids; checking it here,
// after parsing, keeps a bad id or name the resolver's error.
impl AuditFilter<ID> {
    /// The store's filter, every id decoded and instant checked.
    fn to_store(&self) -> Result<AuditFilter, AppError> {
        let user = |id: &Option<ID>, field: &str| {
            id.as_ref().map(|id| decode::user_id(id, field)).transpose()
        };
        let name = |name: &Option<String>, field: &str| {
            name.as_deref()
                .map(|n| validation::line(field, n, validation::MAX_USERNAME, true))
                .transpose()
        };
        let instant = |at: Option<DateTime<Utc>>, field: &str| {
            at.map(|at| validation::instant(field, at)).transpose()
        };
        Ok(AuditFilter {
            actor_id: user(&self.actor_id, "actorId")?,
            target_user_id: user(&self.target_user_id, "targetUserId")?,
            actor_username: name(&self.actor_username, "actorUsername")?,
            target_username: name(&self.target_username, "targetUsername")?,
            action: self.action,
            since: instant(self.since, "since")?,
            until: instant(self.until, "until")?,
        })
    }
}

// Merged into the schema's root (see `graphql::Query`/`Mutation`); this
// name never reaches the SDL.
#[Object(name = "BaseQuery")]
impl QueryRoot {
    /// The logged-in user.
    #[graphql(guard = "Require::Authenticated")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        let me = ctx.current_user()?;
        users::find(ctx.pool(), me.id)
            .await?
            .map(User::new)
            .ok_or(AppError::Unauthenticated)
    }

    /// One user, by `id` or by `username` (case-insensitive). Needs `auth.view_user`.
    #[graphql(guard = "Require::AnyPermission(VIEW_USER)")]
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user's id; give `id` or `username`.")] id: Option<ID>,
        #[graphql(desc = "Matched regardless of case and width; null when no user has it.")]
        username: Option<String>,
    ) -> Result<Option<User>, AppError> {
        let row = match (id, username) {
            // The contract: an id that names nothing is NOT_FOUND; a
            // username is a search, so an unknown one is simply null.
            (Some(id), None) => Some(
                users::find(ctx.pool(), decode::user_id(&id, "id")?)
                    .await
                    .or_not_found("user")?,
            ),
            (None, Some(name)) => {
                crate::domain::accounts::find_by_username(ctx.pool(), &name).await?
            }
            _ => {
                return Err(AppError::invalid(
                    "id",
                    "give exactly one of id and username",
                ));
            }
        };
        Ok(row.map(User::new))
    }

    /// Users, filtered and ordered, as a Relay connection (`first` at most 100).
    /// Needs `auth.view_user`.
    #[graphql(
        guard = "Require::AnyPermission(VIEW_USER)",
        complexity = "cost::page(first, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which users; all when left out.")] filter: Option<UserFilter>,
        #[graphql(default, desc = "Sort order (default `ID_ASC`).")] order_by: UserOrder,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<CountedConnection<User>, AppError> {
        let limit = page_size(first)?;
        let filter = filter.unwrap_or_default().to_store()?;
        users_page(ctx, filter, order_by, limit, after.as_deref()).await
    }

    /// Needs `auth.view_group`.
    #[graphql(guard = "Require::AnyPermission(VIEW_GROUP)")]
    async fn group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group's id.")] id: ID,
    ) -> Result<Option<Group>, AppError> {
        let group = groups::find(ctx.pool(), decode::group_id(&id, "id")?).await?;
        Ok(Some(Group::from(group.or_not_found("group")?)))
    }

    /// Every group, by name. Needs `auth.view_group`.
    #[graphql(
        guard = "Require::AnyPermission(VIEW_GROUP)",
        complexity = "cost::groups(child_complexity)"
    )]
    async fn groups(&self, ctx: &Context<'_>) -> Result<Vec<Group>, AppError> {
        Ok(wrap_all(groups::all(ctx.pool()).await?, Group::from))
    }

    /// Every permission there is. Any active staff member.
    #[graphql(
        guard = "Require::Staff",
        complexity = "cost::permissions(child_complexity)"
    )]
    async fn permissions(&self, ctx: &Context<'_>) -> Result<Vec<Permission>, AppError> {
        Ok(wrap_all(
            permissions::all(ctx.pool()).await?,
            Permission::from,
        ))
    }

    /// Every live question, newest first (archived ones too with
    /// `includeArchived`). Any logged-in user.
    #[graphql(
        guard = "Require::Authenticated",
        complexity = "cost::questions(child_complexity)"
    )]
    async fn questions(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Also list archived questions (see `Question.archivedAt`)."
        )]
        include_archived: Option<bool>,
    ) -> Result<Vec<Question>, AppError> {
        let listing = match include_archived {
            Some(true) => polls::Listing::WithArchived,
            _ => polls::Listing::LiveOnly,
        };
        Ok(wrap_all(
            polls::questions(ctx.pool(), listing).await?,
            Question::from,
        ))
    }

    /// One question by id, with its choices. Any logged-in user.
    #[graphql(guard = "Require::Authenticated")]
    async fn question(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The question's id.")] id: ID,
    ) -> Result<Option<Question>, AppError> {
        let id = decode::question_id(&id, "id")?;
        let question = polls::find_questions(ctx.pool(), &[id]).await?.pop();
        Ok(Some(Question::from(question.or_not_found("question")?)))
    }

    /// A user's votes, newest first. Needs `polls.view_vote`.
    #[graphql(
        guard = "Require::AnyPermission(VIEW_VOTE)",
        complexity = "cost::page(first, child_complexity)"
    )]
    async fn votes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user whose votes to list.")] user_id: ID,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<CountedConnection<Vote>, AppError> {
        let user_id = decode::user_id(&user_id, "userId")?;
        users::find(ctx.pool(), user_id)
            .await
            .or_not_found("user")?;
        votes_of_user(ctx, user_id, first, after).await
    }

    /// The audit log, newest first. Needs `admin.view_logentry`.
    #[graphql(
        guard = "Require::AnyPermission(VIEW_AUDIT)",
        complexity = "cost::page(first, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which entries; all when left out.")] filter: Option<AuditFilter<ID>>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<CountedConnection<AuditEntry>, AppError> {
        let page = IdPage::new(first, after)?;
        let filter = filter.unwrap_or_default().to_store()?;
        let rows = audit::page(ctx.pool(), &filter, page.read()).await?;
        Ok(page.connection(rows, |e| e.id, AuditEntry, TotalCount::Audit(filter)))
    }
}
