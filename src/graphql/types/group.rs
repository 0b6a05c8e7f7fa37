use async_graphql::{ComplexObject, Context, ID, SimpleObject};

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

/// A named set of permissions; its members hold all of them.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Group {
    /// Opaque id of the group.
    id: ID,
    /// The group's unique name.
    name: String,
    /// The id the store knows it by, for the fields loaded through it.
    #[graphql(skip)]
    row_id: i64,
}

impl From<GroupRow> for Group {
    fn from(row: GroupRow) -> Self {
        Group {
            id: ID(ids::encode(Kind::Group, row.id)),
            name: row.name,
            row_id: row.id,
        }
    }
}

#[ComplexObject]
impl Group {
    /// What every member holds through this group.
    #[graphql(complexity = "crate::graphql::cost::permissions(child_complexity)")]
    async fn permissions(&self, ctx: &Context<'_>) -> Result<Vec<Permission>, AppError> {
        load_list(ctx, PermissionsOfGroup(self.row_id), Permission::from).await
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
            group_id: Some(self.row_id),
            ..Default::default()
        };
        users_page(ctx, filter, UserOrder::IdAsc, limit, after.as_deref()).await
    }
    /// How many users are in the group.
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        load_count(ctx, MemberCountOfGroup(self.row_id)).await
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
