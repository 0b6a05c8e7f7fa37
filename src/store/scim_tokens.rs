//! The `scim_tokens` table: the bearer tokens of SCIM provisioning clients.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

/// A provisioning client as stored (never its token, only the digest's
/// row). `permissions` are `app.codename` keys.
#[derive(Debug, Clone, FromRow)]
pub struct ScimTokenRow {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The columns of a [`ScimTokenRow`], for every statement that reads one.
macro_rules! scim_token_columns {
    () => {
        "id, name, permissions, created_at, revoked_at"
    };
}

/// The `SELECT` of a [`ScimTokenRow`] from `scim_tokens` where `$condition`
/// holds (with any order or lock clause after it), as one literal for `sqlx`.
macro_rules! scim_tokens_where {
    ($condition:literal) => {
        concat!(
            "SELECT ",
            scim_token_columns!(),
            " FROM scim_tokens WHERE ",
            $condition
        )
    };
}

pub const NAME_UNIQUE: &str = "scim_tokens_name_key";

pub async fn insert(
    ex: impl PgExecutor<'_>,
    name: &str,
    digest: &[u8],
    permissions: &[String],
) -> sqlx::Result<ScimTokenRow> {
    sqlx::query_as(concat!(
        "INSERT INTO scim_tokens (name, token_hash, permissions) VALUES ($1, $2, $3) RETURNING ",
        scim_token_columns!()
    ))
    .bind(name)
    .bind(digest)
    .bind(permissions)
    .fetch_optional(ex)
    .await?
    .ok_or(sqlx::Error::RowNotFound)
}

/// The unrevoked client whose token has this digest.
pub async fn find_live_by_digest(
    ex: impl PgExecutor<'_>,
    digest: &[u8],
) -> sqlx::Result<Option<ScimTokenRow>> {
    let sql = scim_tokens_where!("token_hash = $1 AND revoked_at IS NULL");
    super::row_by_key(ex, sql, digest).await
}

/// The client as it stands now, share-locked until the transaction ends:
/// a revocation waits for an operation using the token, or is seen by it.
pub async fn find_live_for_share(
    ex: impl PgExecutor<'_>,
    id: i64,
) -> sqlx::Result<Option<ScimTokenRow>> {
    let sql = scim_tokens_where!("id = $1 AND revoked_at IS NULL FOR SHARE");
    super::row_by_key(ex, sql, id).await
}

pub async fn all(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<ScimTokenRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        scim_token_columns!(),
        " FROM scim_tokens ORDER BY name"
    ))
    .fetch_all(ex)
    .await
}

/// The named token, locked until the transaction ends.
pub async fn find_by_name_for_update(
    ex: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<Option<ScimTokenRow>> {
    super::row_by_key(ex, scim_tokens_where!("name = $1 FOR UPDATE"), name).await
}

/// Revokes the named token; `None` when there is no such token, the row
/// (with its first revocation time) when there is.
pub async fn revoke(ex: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<ScimTokenRow>> {
    let sql = concat!(
        "UPDATE scim_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE name = $1 RETURNING ",
        scim_token_columns!()
    );
    super::row_by_key(ex, sql, name).await
}
