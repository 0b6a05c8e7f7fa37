use std::collections::{HashMap, HashSet};

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Group, Permission, Vote};
use crate::error::AppError;
use crate::graphql::context::ContextExt;
use crate::graphql::context::{load, load_list};
use crate::graphql::guards::{Require, VIEW_VOTE, ensure_may_see_personal, ensure_self_or};
use crate::graphql::lists::{Listed, Texts};
use crate::graphql::loaders::{DirectPermissionsOfUser, FactOfUser, FactValue};
use crate::graphql::pagination::{CountedConnection, IdPage, TotalCount};
use crate::ids::{self, Kind};
use crate::store::polls;
use crate::store::user_facts::{self, Fact};
use crate::store::users::UserRow;

/// A member or staff account, as one reader sees it.
///
/// The row is private on purpose: a field reads `id` and `username` from it
/// directly, and everything else through [`User::personal`], which applies the
/// personal-fields rule. So the rule holds on every path that reaches a
/// `User` (an audit entry's actor, a vote's voter, a mutation's payload...),
/// and a new field cannot forget it.
pub struct User {
    row: UserRow,
    viewer: Viewer,
    read_ahead: FactsReadAhead,
}

/// The facts about a user that their page read ahead (see [`read_ahead`]);
/// a fact left `None` goes through the DataLoader when asked for. A field
/// lends its fact from here ([`Listed`]) rather than copying it.
#[derive(Default)]
pub struct FactsReadAhead {
    groups: Option<Vec<Group>>,
    permission_keys: Option<Vec<String>>,
    vote_count: Option<i64>,
}

impl FactsReadAhead {
    /// The `wanted` facts, as for a user who has none of them.
    fn none_of(wanted: &HashSet<Fact>) -> Self {
        FactsReadAhead {
            groups: wanted.contains(&Fact::Groups).then(Vec::new),
            permission_keys: wanted.contains(&Fact::PermissionKeys).then(Vec::new),
            vote_count: wanted.contains(&Fact::VoteCount).then_some(0),
        }
    }
}

/// The facts of a page's users that the selection under `ctx` (a `users`
/// or `members` field) asks for on its nodes, read in one statement with
/// the page instead of one DataLoader round trip per user and field: on a
/// page of 50 users with three facts that was 150 loads, the largest part
/// of the server's own time after the allocator. The personal-fields rule
/// still applies when a field is resolved.
pub async fn read_ahead(
    ctx: &Context<'_>,
    rows: &[UserRow],
) -> Result<HashMap<i64, FactsReadAhead>, AppError> {
    let wanted = facts_asked(ctx);
    if wanted.is_empty() || rows.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = rows.iter().map(|u| u.id).collect();
    let facts = user_facts::of_users(ctx.pool(), &ids, &wanted).await?;
    let mut by_user: HashMap<i64, FactsReadAhead> = ids
        .iter()
        .map(|id| (*id, FactsReadAhead::none_of(&wanted)))
        .collect();
    for (id, group) in facts.groups {
        if let Some(list) = by_user.get_mut(&id).and_then(|f| f.groups.as_mut()) {
            list.push(Group::from(group));
        }
    }
    for (id, key) in facts.permission_keys {
        if let Some(list) = by_user
            .get_mut(&id)
            .and_then(|f| f.permission_keys.as_mut())
        {
            list.push(key);
        }
    }
    for (id, count) in facts.vote_counts {
        if let Some(f) = by_user.get_mut(&id) {
            f.vote_count = Some(count);
        }
    }
    Ok(by_user)
}

/// Which facts the nodes under `ctx`'s connection select, through
/// `edges { node }` or `nodes`.
fn facts_asked(ctx: &Context<'_>) -> HashSet<Fact> {
    let look = ctx.look_ahead();
    let nodes = [look.field("edges").field("node"), look.field("nodes")];
    let fields = [
        (Fact::Groups, "groups"),
        (Fact::PermissionKeys, "allPermissions"),
        (Fact::VoteCount, "voteCount"),
    ];
    fields
        .into_iter()
        .filter(|(_, name)| nodes.iter().any(|n| n.field(name).exists()))
        .map(|(fact, _)| fact)
        .collect()
}

/// Who reads the user's personal fields, decided when the object is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Viewer {
    /// The request's caller: they see them for their own account, or with
    /// `auth.view_user` (guards::VIEW_USER).
    Caller,
    /// The account's owner, who proved it in this very request although the
    /// request carries no token yet: the `login` payload.
    Owner,
}

impl User {
    /// The user as the request's caller may see them.
    pub fn new(row: UserRow) -> Self {
        Self::with_facts(row, FactsReadAhead::default())
    }

    /// The user as the request's caller may see them, with the facts their
    /// page read ahead.
    pub fn with_facts(row: UserRow, read_ahead: FactsReadAhead) -> Self {
        User {
            row,
            viewer: Viewer::Caller,
            read_ahead,
        }
    }

    /// The user as they see themselves; only for a payload whose request has
    /// just proved who the caller is (`login`).
    pub fn seen_by_owner(row: UserRow) -> Self {
        User {
            row,
            viewer: Viewer::Owner,
            read_ahead: FactsReadAhead::default(),
        }
    }

    /// The row's personal fields, for the owner or when
    /// [`ensure_may_see_personal`] lets the caller see them; FORBIDDEN otherwise.
    fn personal(&self, ctx: &Context<'_>) -> Result<&UserRow, AppError> {
        if self.viewer == Viewer::Caller {
            ensure_may_see_personal(ctx, self.row.id)?;
        }
        Ok(&self.row)
    }

    /// One of the user's facts through the DataLoader, once the
    /// personal-fields rule allows it, for a user whose page did not read it
    /// ahead (a field checks [`FactsReadAhead`] first, under the same rule).
    async fn loaded_fact(
        &self,
        ctx: &Context<'_>,
        fact: Fact,
    ) -> Result<Option<FactValue>, AppError> {
        let id = self.personal(ctx)?.id;
        load(ctx, FactOfUser(id, fact)).await
    }
}

/// A member or staff account. Removing one safely: `deactivateUser` (reversible), `deleteUser` (with a plan), `anonymizeUser` (erasure, history kept). Anyone who reaches a user sees `id` and `username`; every other field is for the user themself and staff with `auth.view_user`, and is null with a `FORBIDDEN` error for anyone else.
#[Object]
impl User {
    /// Opaque id of the user.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::User, self.row.id))
    }
    /// Unique, case- and width-insensitively (`Admin`, `admin` and `ＡＤＭＩＮ` are one name).
    async fn username(&self) -> &str {
        &self.row.username
    }
    /// Contact address; may be empty.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>, AppError> {
        Ok(Some(&self.personal(ctx)?.email))
    }
    /// Given name; may be empty.
    async fn first_name(&self, ctx: &Context<'_>) -> Result<Option<&str>, AppError> {
        Ok(Some(&self.personal(ctx)?.first_name))
    }
    /// Family name; may be empty.
    async fn last_name(&self, ctx: &Context<'_>) -> Result<Option<&str>, AppError> {
        Ok(Some(&self.personal(ctx)?.last_name))
    }
    /// False once deactivated or anonymized: the user cannot log in and holds no permission.
    async fn is_active(&self, ctx: &Context<'_>) -> Result<Option<bool>, AppError> {
        Ok(Some(self.personal(ctx)?.is_active))
    }
    /// Staff may use the admin operations their permissions allow.
    async fn is_staff(&self, ctx: &Context<'_>) -> Result<Option<bool>, AppError> {
        Ok(Some(self.personal(ctx)?.is_staff))
    }
    /// An active superuser holds every permission.
    async fn is_superuser(&self, ctx: &Context<'_>) -> Result<Option<bool>, AppError> {
        Ok(Some(self.personal(ctx)?.is_superuser))
    }
    /// When the account was created.
    async fn date_joined(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
        Ok(Some(self.personal(ctx)?.date_joined))
    }
    /// When the user last logged in; null if never.
    async fn last_login(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
        Ok(self.personal(ctx)?.last_login)
    }
    /// When the user was last deactivated; null while active.
    async fn deactivated_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
        Ok(self.personal(ctx)?.deactivated_at)
    }
    /// The reason given at the last deactivation; null while active.
    async fn deactivation_reason(&self, ctx: &Context<'_>) -> Result<Option<&str>, AppError> {
        Ok(self.personal(ctx)?.deactivation_reason.as_deref())
    }
    /// Set once the user is anonymized (erased); that cannot be undone.
    async fn anonymized_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
        Ok(self.personal(ctx)?.anonymized_at)
    }
    /// When a requested erasure (`requestErasure`) falls due; null when none is pending.
    async fn erasure_due_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
        Ok(self.personal(ctx)?.erasure_due_at)
    }
    /// The groups the user belongs to.
    #[graphql(complexity = "crate::graphql::cost::groups(child_complexity)")]
    async fn groups(&self, ctx: &Context<'_>) -> Result<Option<Listed<'_, Group>>, AppError> {
        if let Some(groups) = &self.read_ahead.groups {
            self.personal(ctx)?;
            return Ok(Some(Listed::Borrowed(groups)));
        }
        let groups = match self.loaded_fact(ctx, Fact::Groups).await? {
            Some(FactValue::Groups(groups)) => groups.into_iter().map(Group::from).collect(),
            _ => Vec::new(),
        };
        Ok(Some(Listed::Owned(groups)))
    }
    /// Permissions granted to the user directly (not through groups).
    #[graphql(complexity = "crate::graphql::cost::permissions(child_complexity)")]
    async fn user_permissions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Vec<Permission>>, AppError> {
        let id = self.personal(ctx)?.id;
        load_list(ctx, DirectPermissionsOfUser(id), Permission::from)
            .await
            .map(Some)
    }
    /// Effective permissions as `app.codename`: direct grants and those of the
    /// user's groups; every permission for an active superuser; none for an inactive user.
    #[graphql(complexity = "crate::graphql::cost::permissions(child_complexity)")]
    async fn all_permissions(&self, ctx: &Context<'_>) -> Result<Option<Texts<'_>>, AppError> {
        if let Some(keys) = &self.read_ahead.permission_keys {
            self.personal(ctx)?;
            return Ok(Some(Texts(Listed::Borrowed(keys))));
        }
        let keys = match self.loaded_fact(ctx, Fact::PermissionKeys).await? {
            Some(FactValue::PermissionKeys(keys)) => keys,
            _ => Vec::new(),
        };
        Ok(Some(Texts(Listed::Owned(keys))))
    }
    /// The user's votes, newest first. Visible to the user and to staff with both `auth.view_user` and `polls.view_vote`.
    #[graphql(complexity = "crate::graphql::cost::page(first, child_complexity)")]
    async fn votes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<Option<CountedConnection<Vote>>, AppError> {
        let id = self.personal(ctx)?.id;
        if self.viewer == Viewer::Caller {
            ensure_self_or(ctx, Some(id), Require::AnyPermission(VIEW_VOTE))?;
        }
        votes_of_user(ctx, id, first, after).await.map(Some)
    }
    /// How many votes the user has cast (detached votes no longer count).
    async fn vote_count(&self, ctx: &Context<'_>) -> Result<Option<i64>, AppError> {
        if let Some(count) = self.read_ahead.vote_count {
            self.personal(ctx)?;
            return Ok(Some(count));
        }
        match self.loaded_fact(ctx, Fact::VoteCount).await? {
            Some(FactValue::VoteCount(count)) => Ok(Some(count)),
            _ => Ok(Some(0)),
        }
    }
}

/// A page of a user's votes, newest first.
pub async fn votes_of_user(
    ctx: &Context<'_>,
    user_id: i64,
    first: Option<i32>,
    after: Option<String>,
) -> Result<CountedConnection<Vote>, AppError> {
    let page = IdPage::new(first, after)?;
    let rows = polls::votes_of_user(ctx.pool(), user_id, page.read()).await?;
    let total = TotalCount::VotesOfUser(user_id);
    Ok(page.connection(rows, |v| v.id, Vote, total))
}
