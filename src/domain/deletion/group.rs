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

use super::plan::{check_request, finish};
use super::{DeleteOutcome, DeleteRequest, Target, TargetKind};
use crate::domain::access::{DELETE_GROUP, Rule, ensure_holds_all};
use crate::domain::{Actor, authority};
use crate::error::{AppError, AppResult};
use crate::store::groups::{self, GroupRow};
use crate::store::permissions;

/// Refuses unless `actor` holds every permission `group` carries.
async fn ensure_holds_group(
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

/// The group `id`, if the caller may plan its deletion.
pub(super) async fn previewable(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
) -> AppResult<Target> {
    Rule::Permission(DELETE_GROUP).check_actor(actor)?;
    let group = groups::find(&mut *conn, id)
        .await?
        .ok_or(AppError::NotFound("group"))?;
    ensure_holds_group(conn, actor, &group).await?;
    Ok(Target::Group(group))
}

/// Deletes the group under the request's policy (PROTECT while it has
/// members; otherwise its memberships and permission links go with it), or
/// in preview only plans it. Audited `GROUP_DELETED`.
pub async fn delete_group(
    pool: &PgPool,
    actor: &Actor,
    request: DeleteRequest,
) -> AppResult<DeleteOutcome> {
    let steps = check_request(TargetKind::Group, &request)?;
    let mut tx = pool.begin().await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(DELETE_GROUP)).await?;
    let group = groups::find_for_update(&mut *tx, request.id)
        .await?
        .ok_or(AppError::NotFound("group"))?;
    ensure_holds_group(&mut tx, actor, &group).await?;
    finish(tx, actor, Target::Group(group), &steps, request).await
}
