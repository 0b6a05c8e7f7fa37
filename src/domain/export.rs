//! The data export for an access or erasure request (GDPR articles 15 and
//! 20): everything memberdesk holds about one person, in one document, to
//! hand over before `anonymizeUser` erases it.

use sqlx::PgPool;

use super::{Actor, authority};
use crate::error::{AppError, AppResult};
use crate::store::{export, users};

/// The export shows everything about the person, so it follows the scope
/// rule like any action on their account.
pub async fn export_user_data(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
) -> AppResult<serde_json::Value> {
    let mut conn = pool.acquire().await?;
    let user = users::find(&mut *conn, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    authority::ensure_scope(&mut conn, actor, &user).await?;
    export::user_data(&mut *conn, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))
}
