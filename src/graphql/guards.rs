//! The guard layer: who may call a field, declared on the field itself.
//!
//! ```ignore
//! #[graphql(guard = "Require::Permission(CHANGE_USER)")]
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
use crate::domain::access::{self, VIEW_USER as VIEW_USER_PERMISSION};
use crate::error::AppError;

/// The rule a field asks of its caller; the domain holds the same rule to
/// the caller's rights again inside the transaction that uses them.
pub use crate::domain::access::Rule as Require;

/// Django's rule: whoever may change an object may also view it.
pub const VIEW_USER: &[&str] = &[VIEW_USER_PERMISSION, access::CHANGE_USER];
pub const VIEW_GROUP: &[&str] = &[access::VIEW_GROUP, access::CHANGE_GROUP];
pub const VIEW_VOTE: &[&str] = &[access::VIEW_VOTE];
pub const VIEW_AUDIT: &[&str] = &[access::VIEW_LOGENTRY];
/// The permissions of the deletions `deletionPlan` previews (users, groups,
/// questions, and choices, whose deletion is changing their question); the
/// domain holds the caller to the one the record's kind needs.
pub const DELETE_ANYTHING: &[&str] = &[
    access::DELETE_USER,
    access::DELETE_GROUP,
    access::DELETE_QUESTION,
    access::CHANGE_QUESTION,
];
/// An export shows the user, their votes and their audit trail.
pub const EXPORT_USER_DATA: &[&str] = &[
    VIEW_USER_PERMISSION,
    access::VIEW_VOTE,
    access::VIEW_LOGENTRY,
];

/// The rule applied to the caller this request authenticated.
fn check_authenticated_caller(rule: &Require, ctx: &Context<'_>) -> Result<(), AppError> {
    rule.check(ctx.current_user()?)
}

impl Guard for Require {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        check_authenticated_caller(self, ctx).map_err(Into::into)
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
    check_authenticated_caller(&require, ctx)
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
