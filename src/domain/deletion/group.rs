//! Deleting a group. Its members lose what it gave them, so only someone who
//! holds every permission the group carries may delete it (as only they may
//! add a member to it): otherwise deleting a group would be a way to take
//! access from people beyond one's own reach.
//!
//! The group row is locked for the whole deletion, which blocks new members
//! and permission links (their foreign keys need a share lock on it).
//! Deactivations that remembered the group keep its id; `restoreAccess`
//! reports it in `missingGroupIds`, as for any group gone since.

use sqlx::{PgConnection, PgPool};

use super::plan::delete_one;
use super::{DeleteOutcome, DeleteRequest, TargetKind};
use crate::domain::Actor;
use crate::domain::access::ensure_holds_all;
use crate::error::{AppError, AppResult};
use crate::store::groups::GroupRow;
use crate::store::permissions;

/// Refuses unless `actor` holds every permission `group` carries.
pub(super) async fn ensure_holds_group(
    conn: &mut PgConnection,
    actor: &Actor,
    group: &GroupRow,
) -> AppResult<()> {
    let carried: Vec<String> = permissions::for_groups(&mut *conn, &[group.id])
        .await?
        .into_iter()
        .map(|(_, p)| p.key())
        .collect();
    ensure_holds_all(actor, &carried).map_err(|_| {
        AppError::forbidden(format!(
            "you cannot delete group {}: it carries permissions you do not hold",
            group.name
        ))
    })
}

/// Deletes the group under the request's policy (PROTECT while it has
/// members; otherwise its memberships and permission links go with it), or
/// in preview only plans it. Audited `GROUP_DELETED`.
pub async fn delete_group(
    pool: &PgPool,
    actor: &Actor,
    request: DeleteRequest,
) -> AppResult<DeleteOutcome> {
    delete_one(pool, actor, TargetKind::Group, request).await
}
