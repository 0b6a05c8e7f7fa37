use async_graphql::{Context, ID, Object, SimpleObject};

use super::User;
use crate::error::AppError;
use crate::graphql::context::{load_count, load_list};
use crate::graphql::guards::{Require, VIEW_USER};
use crate::graphql::loaders::{MemberCountOfGroup, PermissionsOfGroup};
use crate::graphql::pagination::{CountedConnection, page_size, users_page};
use crate::ids::{self, Kind};
use crate::store::groups::GroupRow;
use crate::store::permissions::PermissionRow;
use crate::store::users::{UserFilter, UserOrder};

/// A named set of permissions; members hold all of them.
pub struct Group(pub GroupRow);

/// A named set of permissions; its members hold all of them.
#[Object]
impl Group {
    /// Opaque id of the group.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::Group, self.0.id))
    }
    /// The group's unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What every member holds through this group.
    #[graphql(complexity = "crate::graphql::cost::permissions(child_complexity)")]
    async fn permissions(&self, ctx: &Context<'_>) -> Result<Vec<Permission>, AppError> {
        load_list(ctx, PermissionsOfGroup(self.0.id), Permission::from).await
    }
    /// The group's members, by id. Needs `auth.view_user`.
    #[graphql(
        guard = "Require::AnyPermission(VIEW_USER)",
        complexity = "crate::graphql::cost::page(first, child_complexity)"
    )]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<CountedConnection<User>, AppError> {
        let limit = page_size(first)?;
        let filter = UserFilter {
            group_id: Some(self.0.id),
            ..Default::default()
        };
        users_page(ctx, filter, UserOrder::IdAsc, limit, after.as_deref()).await
    }
    /// How many users are in the group.
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        load_count(ctx, MemberCountOfGroup(self.0.id)).await
    }
}

/// A permission, Django-style: `appLabel.codename`, e.g. `auth.change_user`. Seeded by migration; granted directly or through groups.
#[derive(SimpleObject)]
pub struct Permission {
    /// Opaque id of the permission.
    pub id: ID,
    /// e.g. `change_user`.
    pub codename: String,
    /// e.g. `auth`.
    pub app_label: String,
    /// Human-readable, e.g. "Can change user".
    pub name: String,
    /// `appLabel.codename`, the form every permission argument takes.
    pub key: String,
}

impl From<PermissionRow> for Permission {
    fn from(row: PermissionRow) -> Self {
        Permission {
            id: ID(ids::encode(Kind::Permission, row.id)),
            key: row.key(),
            codename: row.codename,
            app_label: row.app_label,
            name: row.name,
        }
    }
}
