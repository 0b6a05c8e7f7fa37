//! Failed-login counters per username and per client address, in PostgreSQL
//! so that the limit holds across every server instance.

use std::time::Duration;

use sqlx::PgExecutor;

#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Username,
    Address,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Username => "username",
            Scope::Address => "address",
        }
    }
}

/// Failures counted for `key` in the window that is still open.
pub async fn current(
    ex: impl PgExecutor<'_>,
    scope: Scope,
    key: &str,
    window: Duration,
) -> sqlx::Result<i32> {
    let n: Option<i32> = sqlx::query_scalar(
        "SELECT failures FROM login_failures \
         WHERE scope = $1 AND key = $2 AND window_start > now() - make_interval(secs => $3)",
    )
    .bind(scope.as_str())
    .bind(key)
    .bind(window.as_secs_f64())
    .fetch_optional(ex)
    .await?;
    Ok(n.unwrap_or(0))
}

/// Counts one failure, opening a new window when the last one has closed.
pub async fn record(
    ex: impl PgExecutor<'_>,
    scope: Scope,
    key: &str,
    window: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO login_failures (scope, key, failures, window_start) VALUES ($1, $2, 1, now()) \
         ON CONFLICT (scope, key) DO UPDATE SET \
           failures = CASE WHEN login_failures.window_start > now() - make_interval(secs => $3) \
                           THEN login_failures.failures + 1 ELSE 1 END, \
           window_start = CASE WHEN login_failures.window_start > now() - make_interval(secs => $3) \
                               THEN login_failures.window_start ELSE now() END",
    )
    .bind(scope.as_str())
    .bind(key)
    .bind(window.as_secs_f64())
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn clear(ex: impl PgExecutor<'_>, scope: Scope, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE scope = $1 AND key = $2")
        .bind(scope.as_str())
        .bind(key)
        .execute(ex)
        .await?;
    Ok(())
}
