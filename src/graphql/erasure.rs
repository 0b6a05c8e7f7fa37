//! The erasure requests of the API: `requestErasure` and `cancelErasure`.
//! Thin resolvers: each declares its guard, decodes the id and calls one
//! operation of `domain::erasure`. (`anonymizeUser`, the immediate erasure,
//! is with the other lifecycle operations in `graphql::lifecycle`.)

use async_graphql::{Context, ID, Object};

use super::context::ContextExt;
use super::decode;
use super::guards::Require;
use super::types::User;
use crate::domain::{Mode, erasure};
use crate::error::AppError;

#[derive(Default)]
pub struct ErasureMutation;

#[Object]
impl ErasureMutation {
    /// Asks for the erasure of a user: they are deactivated at once (every
    /// session revoked, groups and direct permissions taken away and
    /// remembered) and anonymized, as `anonymizeUser` does, once
    /// `MEMBERDESK_ERASURE_GRACE_DAYS` (default 7) have passed, by
    /// `memberdesk run-erasures`; with 0 days, at once. `erasureDueAt` says
    /// when. Until then `cancelErasure` withdraws it. Asking again while one
    /// is pending changes nothing. For yourself, or by a superuser for anyone.
    #[graphql(guard = "Require::Authenticated")]
    async fn request_erasure(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whose erasure: yourself, or (as a superuser) anyone.")] user_id: ID,
        #[graphql(
            desc = "Why, for the audit log; removed with everything else about the person when the erasure is done. Required when the deployment sets `MEMBERDESK_REQUIRE_REASON`."
        )]
        reason: Option<String>,
    ) -> Result<User, AppError> {
        let id = decode::user_id(&user_id, "userId")?;
        let reason = ctx.reason(reason, Mode::Execute)?;
        let grace = ctx.settings().erasure_grace;
        let user = erasure::request_erasure(ctx.pool(), &ctx.actor()?, id, reason, grace).await?;
        Ok(User::new(user))
    }

    /// Withdraws a pending erasure before it is due (`INVALID_INPUT` when
    /// none is pending or it is already due). The user stays deactivated
    /// until someone reactivates them. For yourself, or by a superuser.
    #[graphql(guard = "Require::Authenticated")]
    async fn cancel_erasure(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whose pending erasure to withdraw.")] user_id: ID,
        #[graphql(desc = "Why, for the audit log.")] reason: Option<String>,
    ) -> Result<User, AppError> {
        let id = decode::user_id(&user_id, "userId")?;
        let user = erasure::cancel_erasure(ctx.pool(), &ctx.actor()?, id, reason).await?;
        Ok(User::new(user))
    }
}
