//! The SQL of every deletion: counting, deleting and detaching the rows a
//! deleted record's references reach, at any depth, for one record or a set.
//!
//! Table, column and condition names come only from the deletion registry
//! (`domain::deletion::registry`, compile-time constants), never from a
//! request, which is why building these statements from them is safe; the
//! ids are always a bound array parameter.

use sqlx::{AssertSqlSafe, FromRow, PgConnection};

/// How a column refers to the rows of the table one hop up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A foreign key column holding one id.
    Key,
    /// An array of ids with no foreign key (what a deactivation remembers):
    /// never deleted through, only counted.
    Array,
}

/// One hop of a path from the deleted records: the rows of `table` whose
/// `column` refers to the rows of the previous hop (or to the records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub table: &'static str,
    pub column: &'static str,
    pub link: Link,
    /// Only the rows matching this SQL condition (e.g. open deactivations).
    pub condition: Option<&'static str>,
}

/// Which ids a path starts from in a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The array bound as `$1`.
    First,
    /// The array bound as `$2`.
    Second,
    /// The row `r` of the outer query (a correlated subquery).
    Outer,
}

/// `column` matching the ids of `from`, as the hop's link reads them.
fn matches_root(hop: &Hop, from: Start) -> String {
    let column = hop.column;
    match (hop.link, from) {
        (Link::Key, Start::First) => format!("{column} = ANY($1)"),
        (Link::Key, Start::Second) => format!("{column} = ANY($2)"),
        (Link::Key, Start::Outer) => format!("{column} = r.id"),
        (Link::Array, Start::First) => format!("{column} && $1"),
        (Link::Array, Start::Second) => format!("{column} && $2"),
        (Link::Array, Start::Outer) => format!("r.id = ANY({column})"),
    }
}

/// The condition selecting the rows of the last hop's table reached from
/// the ids of `from` through `hops` (the first hop refers to the records).
fn reached(hops: &[Hop], from: Start) -> String {
    let (last, before) = hops.split_last().expect("a path has at least one hop");
    let mut condition = match before.last() {
        None => matches_root(last, from),
        Some(up) => {
            let ids = format!(
                "SELECT id FROM {} WHERE {}",
                up.table,
                reached(before, from)
            );
            match last.link {
                Link::Key => format!("{} IN ({ids})", last.column),
                Link::Array => format!("{} && ARRAY({ids})", last.column),
            }
        }
    };
    if let Some(only) = last.condition {
        condition = format!("{condition} AND ({only})");
    }
    condition
}

fn table_of(hops: &[Hop]) -> &'static str {
    hops.last().expect("a path has at least one hop").table
}

/// `count(*)` of the rows each path reaches, every path from the ids it
/// names (`first` bound as `$1`, `second` as `$2`), in one statement:
/// counted through the indexes, no row is loaded.
pub async fn count_reached(
    ex: &mut PgConnection,
    paths: &[(&[Hop], Start)],
    first: &[i64],
    second: &[i64],
) -> sqlx::Result<Vec<i64>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let counts: Vec<String> = paths
        .iter()
        .map(|(hops, from)| {
            format!(
                "(SELECT count(*) FROM {} WHERE {})",
                table_of(hops),
                reached(hops, *from)
            )
        })
        .collect();
    let sql = format!("SELECT ARRAY[{}]::bigint[]", counts.join(", "));
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(first)
        .bind(second)
        .fetch_one(ex)
        .await
}

/// Deletes the rows `hops` reaches from `ids`; returns how many.
pub async fn delete_reached(ex: &mut PgConnection, hops: &[Hop], ids: &[i64]) -> sqlx::Result<u64> {
    let sql = format!(
        "DELETE FROM {} WHERE {}",
        table_of(hops),
        reached(hops, Start::First)
    );
    execute_on_ids(ex, sql, ids).await
}

/// Sets the last hop's column to NULL in the rows `hops` reaches from
/// `ids`; returns how many rows.
pub async fn detach_reached(ex: &mut PgConnection, hops: &[Hop], ids: &[i64]) -> sqlx::Result<u64> {
    let last = hops.last().expect("a path has at least one hop");
    let sql = format!(
        "UPDATE {} SET {} = NULL WHERE {}",
        last.table,
        last.column,
        reached(hops, Start::First)
    );
    execute_on_ids(ex, sql, ids).await
}

/// Runs a statement built from registry names against the bound `ids`;
/// returns how many rows it changed.
async fn execute_on_ids(ex: &mut PgConnection, sql: String, ids: &[i64]) -> sqlx::Result<u64> {
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(ids)
        .execute(ex)
        .await?
        .rows_affected())
}

/// Deletes the records themselves; returns how many.
pub async fn delete_records(
    ex: &mut PgConnection,
    table: &'static str,
    ids: &[i64],
) -> sqlx::Result<u64> {
    let sql = format!("DELETE FROM {table} WHERE id = ANY($1)");
    execute_on_ids(ex, sql, ids).await
}

/// The ids among `ids` (records of `table`) that any of `paths` reaches a
/// row from: the ones a protecting relation holds. One statement, stopping
/// at the first row found per record and path.
pub async fn records_reaching(
    ex: &mut PgConnection,
    table: &'static str,
    paths: &[&[Hop]],
    ids: &[i64],
) -> sqlx::Result<Vec<i64>> {
    if paths.is_empty() || ids.is_empty() {
        return Ok(Vec::new());
    }
    let exists: Vec<String> = paths
        .iter()
        .map(|hops| {
            format!(
                "EXISTS (SELECT 1 FROM {} WHERE {})",
                table_of(hops),
                reached(hops, Start::Outer)
            )
        })
        .collect();
    let sql = format!(
        "SELECT r.id FROM {table} r WHERE r.id = ANY($1) AND ({}) ORDER BY r.id",
        exists.join(" OR ")
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(ex)
        .await
}

/// A foreign key as PostgreSQL's catalog has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, FromRow)]
pub struct ForeignKey {
    /// The referencing table and column.
    pub table: String,
    pub column: String,
    /// The referenced table and column.
    pub references: String,
    pub referenced_column: String,
    /// `ON DELETE` as the catalog spells it: `r` RESTRICT, `a` NO ACTION,
    /// `c` CASCADE, `n` SET NULL, `d` SET DEFAULT.
    pub on_delete: String,
}

/// Every single-column foreign key of the schema, from PostgreSQL's
/// catalog: what the deletion registry must cover.
pub async fn foreign_keys(ex: &mut PgConnection) -> sqlx::Result<Vec<ForeignKey>> {
    sqlx::query_as(
        "SELECT c.conrelid::regclass::text AS table, a.attname::text AS column,
                c.confrelid::regclass::text AS references, fa.attname::text AS referenced_column,
                c.confdeltype::text AS on_delete
           FROM pg_constraint c
           JOIN pg_namespace n ON n.oid = c.connamespace
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
           JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
          WHERE c.contype = 'f' AND n.nspname = current_schema()
          ORDER BY 1, 2",
    )
    .fetch_all(ex)
    .await
}

/// Foreign keys over more than one column, which the registry cannot
/// describe (there are none; a test keeps it so).
pub async fn composite_foreign_keys(ex: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.conname::text FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE c.contype = 'f' AND n.nspname = current_schema() AND cardinality(c.conkey) > 1",
    )
    .fetch_all(ex)
    .await
}
