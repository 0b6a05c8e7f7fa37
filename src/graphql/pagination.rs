//! Relay connections: `first`/`after` arguments, keyset cursors, `totalCount`.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, OutputType};

use super::context::ContextExt;
use super::types::User;
use crate::domain::filters::AuditFilter;
use crate::error::AppError;
use crate::ids::Cursor;
use crate::store::polls::{self, VotesOf};
use crate::store::{PageAfter, audit, users, webhooks};

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// A connection whose `totalCount` is counted only when asked for.
pub type CountedConnection<N> = Connection<String, N, TotalCount, EmptyFields>;

/// Checks `first` (default 20, at most 100) and returns it as a row limit.
pub fn page_size(first: Option<i32>) -> Result<i64, AppError> {
    match first.unwrap_or(DEFAULT_PAGE) {
        n if (0..=MAX_PAGE).contains(&n) => Ok(n as i64),
        _ => Err(AppError::invalid(
            "first",
            format!("first must be between 0 and {MAX_PAGE}"),
        )),
    }
}

/// What `totalCount` counts.
pub enum TotalCount {
    Users(users::UserFilter),
    VotesOfUser(i64),
    Audit(AuditFilter),
    /// An endpoint's deliveries, by its id.
    WebhookDeliveries(i64),
}

#[Object]
impl TotalCount {
    /// How many items the whole list holds, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let pool = ctx.pool();
        Ok(match self {
            TotalCount::Users(filter) => {
                users::count(pool, filter).await.map_err(AppError::from)?
            }
            TotalCount::VotesOfUser(user_id) => {
                polls::vote_counts(pool, VotesOf::User, &[*user_id])
                    .await
                    .map_err(AppError::from)?
                    .first()
                    .map(|(_, n)| *n)
                    .unwrap_or(0)
            }
            TotalCount::Audit(filter) => {
                audit::count(pool, filter).await.map_err(AppError::from)?
            }
            TotalCount::WebhookDeliveries(webhook_id) => {
                webhooks::count_deliveries(pool, *webhook_id)
                    .await
                    .map_err(AppError::from)?
            }
        })
    }
}

/// Builds a connection from up to `limit + 1` rows: the extra row only tells
/// that there is a next page.
pub fn connection<R, N: OutputType>(
    mut rows: Vec<R>,
    limit: i64,
    has_previous: bool,
    cursor_of: impl Fn(&R) -> String,
    mut node: impl FnMut(R) -> N,
    total: TotalCount,
) -> CountedConnection<N> {
    let has_next = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut conn = Connection::with_additional_fields(has_previous, has_next, total);
    conn.edges.extend(
        rows.into_iter()
            .map(|row| Edge::new(cursor_of(&row), node(row))),
    );
    conn
}

/// Decodes an `after` cursor for a user list in `order`.
fn user_cursor(after: Option<&str>, order: users::UserOrder) -> Result<Option<Cursor>, AppError> {
    match after.map(Cursor::decode).transpose()? {
        Some(cursor) if !order.accepts(&cursor) => Err(AppError::invalid(
            "after",
            "'after' is a cursor of another list or order",
        )),
        cursor => Ok(cursor),
    }
}

/// One page of the users `filter` matches, in `order`, after the cursor
/// `after`, as a connection: `users` and `Group.members`. `limit` is
/// already checked (see [`page_size`]).
pub async fn users_page(
    ctx: &Context<'_>,
    filter: users::UserFilter,
    order: users::UserOrder,
    limit: i64,
    after: Option<&str>,
) -> Result<CountedConnection<User>, AppError> {
    let after = user_cursor(after, order)?;
    let rows = users::page(ctx.pool(), &filter, order, after.as_ref(), limit + 1).await?;
    let shown = &rows[..rows.len().min(limit as usize)];
    let mut read_ahead = super::types::read_ahead(ctx, shown).await?;
    let cursor_of = |u: &users::UserRow| {
        Cursor {
            key: order.key_of(u),
            id: u.id,
        }
        .encode()
    };
    let total = TotalCount::Users(filter);
    Ok(connection(
        rows,
        limit,
        after.is_some(),
        cursor_of,
        |row| {
            let facts = read_ahead.remove(&row.id).unwrap_or_default();
            User::with_facts(row, facts)
        },
        total,
    ))
}

/// The row id an `after` cursor of a list in id order (votes, audit
/// entries) points at.
pub fn id_after(after: Option<&str>) -> Result<Option<i64>, AppError> {
    Ok(after.map(Cursor::decode).transpose()?.map(|c| c.id))
}

/// The cursor of a row in a list in id order.
pub fn id_cursor(id: i64) -> String {
    Cursor { key: None, id }.encode()
}

/// The `first` and `after` of a list in id order (votes, audit entries,
/// webhook deliveries), checked: read [`Self::rows`] rows after the id
/// [`Self::after`], then make them a [`Self::connection`].
pub struct IdPage {
    limit: i64,
    /// The id of the last row of the previous page; none for the first page.
    pub after: Option<i64>,
}

impl IdPage {
    pub fn new(first: Option<i32>, after: Option<String>) -> Result<Self, AppError> {
        Ok(IdPage {
            limit: page_size(first)?,
            after: id_after(after.as_deref())?,
        })
    }

    /// How many rows to read: the page, and one more that only tells that
    /// there is a next page.
    pub fn rows(&self) -> i64 {
        self.limit + 1
    }

    /// The rows to read, as the store takes them.
    pub fn read(&self) -> PageAfter {
        PageAfter {
            after: self.after,
            limit: self.rows(),
        }
    }

    /// The page of `rows`, each row's cursor its `id_of`, each node its `node`.
    pub fn connection<R, N: OutputType>(
        &self,
        rows: Vec<R>,
        id_of: impl Fn(&R) -> i64,
        node: impl FnMut(R) -> N,
        total: TotalCount,
    ) -> CountedConnection<N> {
        let cursor_of = |row: &R| id_cursor(id_of(row));
        connection(
            rows,
            self.limit,
            self.after.is_some(),
            cursor_of,
            node,
            total,
        )
    }
}
