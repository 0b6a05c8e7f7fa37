use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Group, Permission, Vote};
use crate::error::AppError;
use crate::graphql::context::ContextExt;
use crate::graphql::context::load;
use crate::graphql::guards::{Require, VIEW_VOTE, ensure_self_or};
use crate::graphql::loaders::{
    DirectPermissionsOfUser, EffectivePermissionsOfUser, GroupsOfUser, VoteCountOfUser,
};
use crate::graphql::pagination::{Conn, TotalCount, connection, page_size};
use crate::ids::{self, Kind};
use crate::store::polls;
use crate::store::users::UserRow;

/// A member or staff account.
pub struct User(pub UserRow);

/// A member or staff account. Removing one safely: `deactivateUser` (reversible), `deleteUser` (with a plan), `anonymizeUser` (erasure, history kept).
#[Object]
impl User {
    /// Opaque id of the user.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::User, self.0.id))
    }
    /// Unique, case- and width-insensitively (`Admin`, `admin` and `ＡＤＭＩＮ` are one name).
    async fn username(&self) -> &str {
        &self.0.username
    }
    /// Contact address; may be empty.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Given name; may be empty.
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    /// Family name; may be empty.
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    /// False once deactivated or anonymized: the user cannot log in and holds no permission.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    /// Staff may use the admin operations their permissions allow.
    async fn is_staff(&self) -> bool {
        self.0.is_staff
    }
    /// An active superuser holds every permission.
    async fn is_superuser(&self) -> bool {
        self.0.is_superuser
    }
    /// When the account was created.
    async fn date_joined(&self) -> DateTime<Utc> {
        self.0.date_joined
    }
    /// When the user last logged in; null if never.
    async fn last_login(&self) -> Option<DateTime<Utc>> {
        self.0.last_login
    }
    /// When the user was last deactivated; null while active.
    async fn deactivated_at(&self) -> Option<DateTime<Utc>> {
        self.0.deactivated_at
    }
    /// The reason given at the last deactivation; null while active.
    async fn deactivation_reason(&self) -> Option<&str> {
        self.0.deactivation_reason.as_deref()
    }
    /// Set once the user is anonymized (erased); that cannot be undone.
    async fn anonymized_at(&self) -> Option<DateTime<Utc>> {
        self.0.anonymized_at
    }
    /// The groups the user belongs to.
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::GROUPS, child_complexity)"
    )]
    async fn groups(&self, ctx: &Context<'_>) -> Result<Vec<Group>, AppError> {
        Ok(load(ctx, GroupsOfUser(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Group)
            .collect())
    }
    /// Permissions granted to the user directly (not through groups).
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::PERMISSIONS, child_complexity)"
    )]
    async fn user_permissions(&self, ctx: &Context<'_>) -> Result<Vec<Permission>, AppError> {
        Ok(load(ctx, DirectPermissionsOfUser(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Permission)
            .collect())
    }
    /// Effective permissions as `app.codename`: direct grants and those of the
    /// user's groups; every permission for an active superuser; none for an inactive user.
    #[graphql(
        complexity = "crate::graphql::cost::list(crate::graphql::cost::PERMISSIONS, child_complexity)"
    )]
    async fn all_permissions(&self, ctx: &Context<'_>) -> Result<Vec<String>, AppError> {
        Ok(load(ctx, EffectivePermissionsOfUser(self.0.id))
            .await?
            .unwrap_or_default())
    }
    /// The user's votes, newest first. Visible to the user and to staff with `polls.view_vote`.
    #[graphql(complexity = "crate::graphql::cost::page(first, child_complexity)")]
    async fn votes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<Conn<Vote>, AppError> {
        ensure_self_or(ctx, Some(self.0.id), Require::AnyPermission(VIEW_VOTE))?;
        votes_of_user(ctx, self.0.id, first, after).await
    }
    /// How many votes the user has cast (detached votes no longer count).
    async fn vote_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        Ok(load(ctx, VoteCountOfUser(self.0.id)).await?.unwrap_or(0))
    }
}

/// A page of a user's votes, newest first.
pub async fn votes_of_user(
    ctx: &Context<'_>,
    user_id: i64,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Conn<Vote>, AppError> {
    let limit = page_size(first)?;
    let after = after
        .as_deref()
        .map(crate::ids::Cursor::decode)
        .transpose()?;
    let rows =
        polls::votes_of_user(ctx.pool(), user_id, after.as_ref().map(|c| c.id), limit + 1).await?;
    Ok(connection(
        rows,
        limit,
        after.is_some(),
        |v| {
            crate::ids::Cursor {
                key: None,
                id: v.id,
            }
            .encode()
        },
        Vote,
        TotalCount::VotesOfUser(user_id),
    ))
}
