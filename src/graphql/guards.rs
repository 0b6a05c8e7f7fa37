//! The guard layer: who may call a field, declared on the field itself.
//!
//! ```ignore
//! #[graphql(guard = "Require::Permission(\"auth.change_user\")")]
//! async fn update_user(...)
//! ```
//!
//! Every permission guard also requires active staff: the contract lets only
//! active staff call admin operations, whatever permissions a non-staff user
//! may have been granted. Inactive users never get this far: their tokens do
//! not authenticate. Rules that depend on the target (superuser accounts, no
//! escalation, acting on yourself) are the domain layer's.

use async_graphql::{Context, Guard};

use super::context::ContextExt;
use crate::error::AppError;

pub enum Require {
    /// Any active, logged-in user.
    Authenticated,
    /// Active staff, whatever their permissions.
    Staff,
    /// Active staff holding this `app.codename` permission.
    Permission(&'static str),
    /// Active staff holding at least one of these (e.g. view or change).
    AnyPermission(&'static [&'static str]),
    /// Active staff holding every one of these.
    AllPermissions(&'static [&'static str]),
    /// An active superuser.
    Superuser,
}

/// Django's rule: whoever may change an object may also view it.
pub const VIEW_USER: &[&str] = &["auth.view_user", "auth.change_user"];
pub const VIEW_GROUP: &[&str] = &["auth.view_group", "auth.change_group"];
pub const VIEW_VOTE: &[&str] = &["polls.view_vote"];
pub const VIEW_AUDIT: &[&str] = &["admin.view_logentry"];
/// An export shows the user, their votes and their audit trail.
pub const EXPORT_USER_DATA: &[&str] = &["auth.view_user", "polls.view_vote", "admin.view_logentry"];

impl Require {
    pub fn check_now(&self, ctx: &Context<'_>) -> Result<(), AppError> {
        let user = ctx.current_user()?;
        let staff_only = || AppError::forbidden("only active staff may do this");
        match self {
            Require::Authenticated => Ok(()),
            Require::Staff if user.is_staff => Ok(()),
            Require::Staff => Err(staff_only()),
            Require::Superuser if user.is_superuser => Ok(()),
            Require::Superuser => Err(AppError::forbidden("only a superuser may do this")),
            Require::Permission(_) | Require::AnyPermission(_) | Require::AllPermissions(_)
                if !user.is_staff =>
            {
                Err(staff_only())
            }
            Require::Permission(key) if user.has_perm(key) => Ok(()),
            Require::Permission(key) => Err(AppError::forbidden(format!(
                "this needs the '{key}' permission"
            ))),
            Require::AnyPermission(keys) if keys.iter().any(|key| user.has_perm(key)) => Ok(()),
            Require::AnyPermission(keys) => Err(AppError::forbidden(format!(
                "this needs the '{}' permission",
                keys[0]
            ))),
            Require::AllPermissions(keys) => match keys.iter().find(|key| !user.has_perm(key)) {
                Some(key) => Err(AppError::forbidden(format!(
                    "this needs the '{key}' permission"
                ))),
                None => Ok(()),
            },
        }
    }
}

impl Guard for Require {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        self.check_now(ctx).map_err(Into::into)
    }
}

/// For fields about one user: the user themselves may see them, others need
/// `require`.
pub fn ensure_self_or(
    ctx: &Context<'_>,
    user_id: Option<i64>,
    require: Require,
) -> Result<(), AppError> {
    let me = ctx.current_user()?;
    if user_id == Some(me.id) {
        return Ok(());
    }
    require.check_now(ctx)
}

/// Another user's personal fields (every `User` field but `id` and
/// `username`): the user themself, or active staff who may view users. Runs
/// once per field of every user on a page, so it reads only the request
/// context, never the database.
pub fn ensure_may_see_personal(ctx: &Context<'_>, user_id: i64) -> Result<(), AppError> {
    ensure_self_or(ctx, Some(user_id), Require::AnyPermission(VIEW_USER)).map_err(|e| match e {
        AppError::Forbidden(_) => AppError::forbidden(
            "another user's personal fields need the 'auth.view_user' permission",
        ),
        other => other,
    })
}
