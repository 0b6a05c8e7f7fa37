//! The write side of the API. Each resolver declares its guard, decodes its
//! arguments and calls one domain operation; the rules live in the domain.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::context::ContextExt;
use super::decode;
use super::guards::Require;
use super::types::{Group, Question, User, Vote};
use crate::domain::access::{ADD_GROUP, ADD_QUESTION, ADD_USER, CHANGE_GROUP, CHANGE_USER};
use crate::domain::groups::{Access, Change};
use crate::domain::{accounts, groups, polls};
use crate::error::AppError;

#[derive(Default)]
pub struct MutationRoot;

/// A new session.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// The bearer token: send it as `Authorization: Bearer <token>`. Shown only once.
    pub token: String,
    /// The user now logged in.
    pub user: User,
    /// When the token stops working; log in again after.
    pub expires_at: DateTime<Utc>,
}

/// A new account. Only a superuser may create staff or superusers.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// 1 to 150 letters, digits and `@ . + - _`; unique regardless of case and width.
    pub username: String,
    /// Contact address; empty when left out.
    #[graphql(default)]
    pub email: String,
    /// At least 12 characters (`MEMBERDESK_PASSWORD_MIN_LENGTH`) and hard to guess (zxcvbn score 3 or more).
    pub password: String,
    /// Given name, up to 150 characters.
    #[graphql(default)]
    pub first_name: String,
    /// Family name, up to 150 characters.
    #[graphql(default)]
    pub last_name: String,
    /// Only a superuser may set it.
    #[graphql(default)]
    pub is_staff: bool,
    /// Only a superuser may set it.
    #[graphql(default)]
    pub is_superuser: bool,
}

impl From<CreateUserInput> for accounts::NewUserInput {
    // The password leaves the request as a secret at once (never in a Debug
    // or a log line); everything else is checked by the domain.
    fn from(input: CreateUserInput) -> Self {
        accounts::NewUserInput {
            username: input.username,
            email: input.email,
            password: SecretString::from(input.password),
            first_name: input.first_name,
            last_name: input.last_name,
            is_staff: input.is_staff,
            is_superuser: input.is_superuser,
        }
    }
}

// Merged into the schema's root (see `graphql::Query`/`Mutation`); this
// name never reaches the SDL.
#[Object(name = "BaseMutation")]
impl MutationRoot {
    /// Starts a session and sets `lastLogin`. Unknown usernames and wrong
    /// passwords give the same `INVALID_CREDENTIALS`; `ACCOUNT_INACTIVE` only
    /// with the right password; `RATE_LIMITED` after too many failures for the
    /// username or the client address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Matched regardless of case and width.")] username: String,
        #[graphql(
            desc = "Each wrong guess counts toward the limits per username and per client address (`RATE_LIMITED`)."
        )]
        password: String,
    ) -> Result<LoginPayload, AppError> {
        let credentials = accounts::Credentials {
            username: &username,
            password: SecretString::from(password),
        };
        let address = ctx.request().client_address.as_deref();
        let outcome = accounts::login(ctx.pool(), ctx.settings(), credentials, address).await?;
        Ok(LoginPayload {
            token: outcome.token,
            user: User::seen_by_owner(outcome.user),
            expires_at: outcome.expires_at,
        })
    }

    /// Revokes the token this request was sent with.
    #[graphql(guard = "Require::Authenticated")]
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool, AppError> {
        accounts::logout(ctx.pool(), ctx.current_user()?).await
    }

    /// Needs `auth.add_user`; `isStaff` and `isSuperuser` only by a superuser.
    #[graphql(guard = "Require::Permission(ADD_USER)")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account.")] input: CreateUserInput,
    ) -> Result<User, AppError> {
        accounts::create_user(
            ctx.pool(),
            &ctx.actor()?,
            input.into(),
            &ctx.settings().password_policy,
        )
        .await
        .map(User::new)
    }

    /// Needs `auth.change_user`; the flags and superusers' accounts only by a superuser.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to change.")] id: ID,
        #[graphql(desc = "The fields to change; those left out stay as they are.")]
        input: accounts::UserPatch,
    ) -> Result<User, AppError> {
        accounts::update_user(
            ctx.pool(),
            &ctx.actor()?,
            decode::user_id(&id, "id")?,
            input,
        )
        .await
        .map(User::new)
    }

    /// Your own password (give the current one), or with `auth.change_user`
    /// the password of a user within your scope (a superuser's only by a
    /// superuser). Revokes the user's other sessions.
    #[graphql(guard = "Require::Authenticated")]
    async fn set_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whose password: your own, or anyone's with `auth.change_user`.")] user_id: ID,
        #[graphql(
            desc = "At least 12 characters (`MEMBERDESK_PASSWORD_MIN_LENGTH`) and hard to guess (zxcvbn score 3 or more)."
        )]
        password: String,
        #[graphql(
            desc = "Your current password: required to change your own (`INVALID_INPUT` when missing, `INVALID_CREDENTIALS` when wrong, both counted like failed logins); not needed for someone else's."
        )]
        current_password: Option<String>,
    ) -> Result<bool, AppError> {
        let change = accounts::PasswordChange {
            user_id: decode::user_id(&user_id, "userId")?,
            new_password: SecretString::from(password),
            current_password: current_password.map(SecretString::from),
        };
        let address = ctx.request().client_address.as_deref();
        accounts::set_password(
            ctx.pool(),
            ctx.settings(),
            ctx.current_user()?,
            change,
            address,
        )
        .await
    }

    /// Needs `auth.add_group`, and holding every permission given to the group.
    #[graphql(guard = "Require::Permission(ADD_GROUP)")]
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A unique name.")] name: String,
        #[graphql(
            default,
            desc = "Permission keys (`app.codename`) the group grants; you must hold each one yourself."
        )]
        permissions: Vec<String>,
    ) -> Result<Group, AppError> {
        groups::create_group(ctx.pool(), &ctx.actor()?, &name, &permissions)
            .await
            .map(Group::from)
    }

    /// Replaces the group's permissions (as `app.codename`). Needs
    /// `auth.change_group`, and holding every permission it adds.
    #[graphql(guard = "Require::Permission(CHANGE_GROUP)")]
    async fn set_group_permissions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group to change.")] group_id: ID,
        #[graphql(desc = "The whole new set of permission keys; you must hold each one you add.")]
        permissions: Vec<String>,
    ) -> Result<Group, AppError> {
        let id = decode::group_id(&group_id, "groupId")?;
        groups::set_group_permissions(ctx.pool(), &ctx.actor()?, id, &permissions)
            .await
            .map(Group::from)
    }

    /// Needs `auth.change_user`, and holding every permission the group carries.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn add_user_to_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to add.")] user_id: ID,
        #[graphql(desc = "The group; you must hold each of its permissions yourself.")]
        group_id: ID,
    ) -> Result<User, AppError> {
        let user = decode::user_id(&user_id, "userId")?;
        let group = Access::Group(decode::group_id(&group_id, "groupId")?);
        change_access(ctx, user, group, Change::Give).await
    }

    /// Takes the user out of the group. Needs `auth.change_user`.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn remove_user_from_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to take out.")] user_id: ID,
        #[graphql(desc = "The group.")] group_id: ID,
    ) -> Result<User, AppError> {
        let user = decode::user_id(&user_id, "userId")?;
        let group = Access::Group(decode::group_id(&group_id, "groupId")?);
        change_access(ctx, user, group, Change::Take).await
    }

    /// Grants `permission` (`app.codename`) directly. Needs `auth.change_user`
    /// and holding the permission yourself.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn grant_permission(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to grant to.")] user_id: ID,
        #[graphql(
            desc = "A permission key, e.g. `polls.add_question`; you must hold it yourself."
        )]
        permission: String,
    ) -> Result<User, AppError> {
        let user = decode::user_id(&user_id, "userId")?;
        change_access(ctx, user, Access::Permission(&permission), Change::Give).await
    }

    /// Revokes a permission granted directly (those held through groups stay). Needs `auth.change_user`.
    #[graphql(guard = "Require::Permission(CHANGE_USER)")]
    async fn revoke_permission(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to revoke from.")] user_id: ID,
        #[graphql(desc = "A permission key, e.g. `polls.add_question`.")] permission: String,
    ) -> Result<User, AppError> {
        let user = decode::user_id(&user_id, "userId")?;
        change_access(ctx, user, Access::Permission(&permission), Change::Take).await
    }

    /// A question with 2 to 20 choices. Needs `polls.add_question`.
    #[graphql(guard = "Require::Permission(ADD_QUESTION)")]
    async fn create_question(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The question, up to 2000 characters.")] text: String,
        #[graphql(desc = "At least two answers, in the order to show them.")] choices: Vec<String>,
    ) -> Result<Question, AppError> {
        polls::create_question(ctx.pool(), &ctx.actor()?, &text, &choices)
            .await
            .map(Question::from)
    }

    /// One vote per user per question. Any active user.
    #[graphql(guard = "Require::Authenticated")]
    async fn cast_vote(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The chosen answer (`INVALID_INPUT` on a second vote for the same question)."
        )]
        choice_id: ID,
    ) -> Result<Vote, AppError> {
        let choice = decode::choice_id(&choice_id, "choiceId")?;
        polls::cast_vote(ctx.pool(), ctx.current_user()?, choice)
            .await
            .map(Vote)
    }
}

/// What `addUserToGroup`, `removeUserFromGroup`, `grantPermission` and
/// `revokePermission` share: one domain operation, the user as changed.
async fn change_access(
    ctx: &Context<'_>,
    user_id: i64,
    access: Access<'_>,
    change: Change,
) -> Result<User, AppError> {
    groups::change_access(ctx.pool(), &ctx.actor()?, user_id, access, change)
        .await
        .map(User::new)
}
