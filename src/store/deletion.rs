//! The SQL of a user's deletion. Table and column names come only from the
//! deletion registry (`domain::deletion::RELATIONS`, compile-time constants),
//! never from a request, which is why building these statements from them is
//! safe; every value is a bound parameter.

use sqlx::{AssertSqlSafe, PgConnection};

/// `count(*)` of rows referencing the user, per `(table, column)`, in one
/// statement: index-only counts, no row is loaded.
pub async fn count_references(
    ex: &mut PgConnection,
    user_id: i64,
    relations: &[(&'static str, &'static str)],
) -> sqlx::Result<Vec<i64>> {
    let counts: Vec<String> = relations
        .iter()
        .map(|(table, column)| format!("(SELECT count(*) FROM {table} WHERE {column} = $1)"))
        .collect();
    let sql = format!("SELECT ARRAY[{}]::bigint[]", counts.join(", "));
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_one(ex)
        .await
}

pub async fn delete_references(
    ex: &mut PgConnection,
    table: &'static str,
    column: &'static str,
    user_id: i64,
) -> sqlx::Result<u64> {
    let sql = format!("DELETE FROM {table} WHERE {column} = $1");
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .execute(ex)
        .await?
        .rows_affected())
}

pub async fn detach_references(
    ex: &mut PgConnection,
    table: &'static str,
    column: &'static str,
    user_id: i64,
) -> sqlx::Result<u64> {
    let sql = format!("UPDATE {table} SET {column} = NULL WHERE {column} = $1");
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .execute(ex)
        .await?
        .rows_affected())
}

pub async fn delete_user_row(ex: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(ex)
        .await?;
    Ok(())
}

/// Every `(table, column)` with a foreign key to `users`, from PostgreSQL's
/// catalog: what the registry must cover.
pub async fn foreign_keys_to_users(ex: &mut PgConnection) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text
           FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
          WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass
          ORDER BY 1, 2",
    )
    .fetch_all(ex)
    .await
}
