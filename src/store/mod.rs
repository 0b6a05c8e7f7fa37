//! SQL, one module per table or aggregate. Nothing else in memberdesk writes SQL.
//!
//! Functions take any executor (`&PgPool`, `&mut PgConnection`, a transaction)
//! so the domain layer decides what runs in one transaction. All SQL is static
//! text or built with `QueryBuilder::push_bind`: user input is always a bind
//! parameter, never spliced into the statement.
//!
//! Why runtime-checked SQL (`sqlx::query_as` on strings) rather than the
//! compile-time-checked `sqlx::query!` macros:
//! - the statements that matter most are built, not written: the `users`
//!   page (filters and orders), the audit filters and the deletion registry's
//!   per-relation statements go through `QueryBuilder`, which the macros
//!   cannot check at all;
//! - the macros take only a string literal, so every statement reading a
//!   user would spell out the `user_columns!` list again (twenty columns,
//!   a dozen times): the drift the macro exists to prevent;
//! - a clean clone would need either PostgreSQL at build time or a committed
//!   `.sqlx/` cache kept fresh by `cargo sqlx prepare --check` in CI, which
//!   means building `sqlx-cli` (minutes on a two-core runner) for every
//!   landing;
//! - what the macros would catch, the tests catch: every statement here runs
//!   against a real PostgreSQL in `cargo test` (a fresh database per test),
//!   and `tests/statements.rs` counts the statements each request sends.
//!
//! Revisit if the static statements come to dominate, or sqlx's macros learn
//! to check `QueryBuilder` output.

use sqlx::postgres::PgRow;
use sqlx::{Encode, FromRow, PgExecutor, Postgres, QueryBuilder, Type};

pub mod access;
pub mod audit;
pub mod deactivations;
pub mod deletion;
pub mod directory;
pub mod erasure;
pub mod export;
pub mod groups;
pub mod login_failures;
pub mod permissions;
pub mod polls;
pub mod scim_tokens;
pub mod sessions;
pub mod user_facts;
pub mod users;
pub mod webhooks;

/// A row type the store reads whole (`query_as`): the bound every helper
/// below puts on what it reads, named once.
trait Row: for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<T> Row for T where T: for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// A value bound as one parameter of a statement: the bound every helper
/// below puts on a key or a value, named once.
trait Param<'q>: 'q + Send + Encode<'q, Postgres> + Type<Postgres> {}

impl<'q, T> Param<'q> for T where T: 'q + Send + Encode<'q, Postgres> + Type<Postgres> {}

/// Every row `sql` reads for the batch of ids bound as `$1` (`= ANY($1)`):
/// the one shape of the statements behind the DataLoaders and the bulk
/// reads, so each of them is its SQL and nothing else.
async fn rows_for_ids<T: Row>(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    ids: &[i64],
) -> sqlx::Result<Vec<T>> {
    sqlx::query_as(sql).bind(ids).fetch_all(ex).await
}

/// The row `sql` reads for the key bound as `$1`, if there is one: a
/// lookup by primary key (plain or locked, `FOR UPDATE`) or by another
/// unique key (a token's digest, a name).
async fn row_by_key<'q, T: Row>(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    key: impl Param<'q>,
) -> sqlx::Result<Option<T>> {
    sqlx::query_as(sql).bind(key).fetch_optional(ex).await
}

/// The `count(*)` `sql` makes for the key bound as `$1`: the shape of the
/// plain counts, so each of them is its SQL and nothing else.
async fn count_by_key<'q>(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    key: impl Param<'q>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(sql).bind(key).fetch_one(ex).await
}

/// Runs `sql`, a write to the row whose id is bound as `$1` of the value
/// bound as `$2`: the shape of the single-column updates.
async fn update_by_id<'q>(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    id: i64,
    value: impl Param<'q>,
) -> sqlx::Result<()> {
    sqlx::query(sql).bind(id).bind(value).execute(ex).await?;
    Ok(())
}

/// [`update_by_id`] for a statement that returns the row it wrote.
async fn updated_row<'q, T: Row>(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    id: i64,
    value: impl Param<'q>,
) -> sqlx::Result<T> {
    sqlx::query_as(sql).bind(id).bind(value).fetch_one(ex).await
}

/// One page of a list read newest first: the rows with an id below `after`
/// (the last row of the page before; none for the first page), at most
/// `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct PageAfter {
    pub after: Option<i64>,
    pub limit: i64,
}

/// The `page` of the rows `sql` reads for the owner bound as `$1`, with
/// the page's `after` bound as `$2` and its limit as `$3`: the shape of the
/// newest-first lists of one owner's rows (a user's votes, an endpoint's
/// deliveries).
async fn page_of_owner<T: Row>(
    ex: impl PgExecutor<'_>,
    sql: &'static str,
    owner: i64,
    page: PageAfter,
) -> sqlx::Result<Vec<T>> {
    sqlx::query_as(sql)
        .bind(owner)
        .bind(page.after)
        .bind(page.limit)
        .fetch_all(ex)
        .await
}

/// Adds `AND <column> IS NOT NULL` when `set` is true, `AND <column> IS
/// NULL` when false, nothing when `None`: the filters on whether something
/// happened to a row (deactivated, anonymized, archived). `column` is a
/// name from the code, never input.
fn push_is_set(qb: &mut QueryBuilder<Postgres>, column: &'static str, set: Option<bool>) {
    if let Some(set) = set {
        qb.push(" AND ")
            .push(column)
            .push(if set { " IS NOT NULL" } else { " IS NULL" });
    }
}
