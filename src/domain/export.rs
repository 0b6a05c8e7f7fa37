//! The data export for an access or erasure request (GDPR articles 15 and
//! 20): everything memberdesk holds about one person, in one document, to
//! hand over before `anonymizeUser` erases it.

use sqlx::PgPool;

use crate::error::{AppError, AppResult};
use crate::store::export;

pub async fn export_user_data(pool: &PgPool, user_id: i64) -> AppResult<serde_json::Value> {
    export::user_data(pool, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))
}
