//! Failed-login counters per username (over all addresses), per username
//! from one client address, and per client address, in PostgreSQL so that
//! the limits hold across every server instance.
//!
//! A counter is keyed by a digest of what it counts, never the name or
//! address itself: people type passwords into the username box, and a
//! failed login must not keep a clear-text copy of what was typed (nor of
//! an erased person's address). The digest is HMAC-SHA256 under a key made
//! for each database by migration 0006 (`name_digest`, in SQL, so a counter
//! statement stays one round trip). A key in the database rather than a
//! setting: every instance must count under the same one, and nothing has
//! to be configured or can be mismatched. Its limit: whoever holds the
//! whole database, key included, can confirm a name they already guess,
//! though never read one back; the API, the log and the audit entries (which
//! show digests for correlation) do not hold the key.

use std::time::Duration;

use sqlx::PgExecutor;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryScalar;

#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Username,
    /// Keyed `"<address> <username key>"`.
    UsernameAndAddress,
    Address,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Username => "username",
            Scope::UsernameAndAddress => "username_address",
            Scope::Address => "address",
        }
    }
}

/// One counter: what it counts (`scope`) and of whom (`key`, digested in
/// SQL). The two always travel together, so every statement on a counter
/// is a method of it.
#[derive(Debug, Clone, Copy)]
pub struct Counter<'a> {
    pub scope: Scope,
    pub key: &'a str,
}

/// How many attempts a counter allows (`max`) within `window`; a `max` of
/// zero or less allows none.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub window: Duration,
    pub max: i32,
}

impl Limit {
    fn allows_none(self) -> bool {
        self.max <= 0
    }
}

impl<'a> Counter<'a> {
    /// Counts one attempt before its password is checked, unless the window
    /// still open already holds `limit.max` attempts; `false` means the
    /// caller is over the limit and nothing was counted.
    ///
    /// The check and the count are one statement, so parallel attempts
    /// serialize on the row lock: a burst cannot all pass a check made before
    /// any of them has been counted. A closed window restarts at one.
    pub async fn reserve(self, ex: impl PgExecutor<'_>, limit: Limit) -> sqlx::Result<bool> {
        if limit.allows_none() {
            return Ok(false);
        }
        let counted = sqlx::query_scalar::<_, i32>(
            "INSERT INTO login_failures (scope, key, failures, window_start) VALUES ($1, name_digest($2), 1, now()) \
             ON CONFLICT (scope, key) DO UPDATE SET \
               failures = CASE WHEN login_failures.window_start > now() - make_interval(secs => $3) \
                               THEN login_failures.failures + 1 ELSE 1 END, \
               window_start = CASE WHEN login_failures.window_start > now() - make_interval(secs => $3) \
                                   THEN login_failures.window_start ELSE now() END \
             WHERE login_failures.window_start <= now() - make_interval(secs => $3) \
                OR login_failures.failures < $4 \
             RETURNING failures",
        );
        let counted = self.bind_limit(counted, limit).fetch_optional(ex).await?;
        Ok(counted.is_some())
    }

    /// Whether the window still open already holds `limit.max` attempts (a
    /// read only: for limits that count failures after the check, see
    /// `domain::provisioning::authenticate`).
    pub async fn is_over(self, ex: impl PgExecutor<'_>, limit: Limit) -> sqlx::Result<bool> {
        if limit.allows_none() {
            return Ok(true);
        }
        let over = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM login_failures \
              WHERE scope = $1 AND key = name_digest($2) AND failures >= $4 \
                AND window_start > now() - make_interval(secs => $3))",
        );
        self.bind_limit(over, limit).fetch_one(ex).await
    }

    /// Binds the counter's `$1` scope and `$2` key, and the limit's `$3`
    /// window (seconds) and `$4` maximum, the order both limit statements
    /// above use.
    fn bind_limit<'q, O>(
        self,
        statement: QueryScalar<'q, Postgres, O, PgArguments>,
        limit: Limit,
    ) -> QueryScalar<'q, Postgres, O, PgArguments>
    where
        'a: 'q,
    {
        statement
            .bind(self.scope.as_str())
            .bind(self.key)
            .bind(limit.window.as_secs_f64())
            .bind(limit.max)
    }

    /// Takes back one attempt counted by [`Counter::reserve`] that turned
    /// out not to be a failed guess (the right password).
    pub async fn release(self, ex: impl PgExecutor<'_>) -> sqlx::Result<()> {
        self.write(
            ex,
            "UPDATE login_failures SET failures = failures - 1 \
             WHERE scope = $1 AND key = name_digest($2) AND failures > 0",
        )
        .await
    }

    pub async fn clear(self, ex: impl PgExecutor<'_>) -> sqlx::Result<()> {
        let sql = "DELETE FROM login_failures WHERE scope = $1 AND key = name_digest($2)";
        self.write(ex, sql).await
    }

    /// Runs `sql`, a write to this counter's row (`$1` scope, `$2` key).
    async fn write(self, ex: impl PgExecutor<'_>, sql: &'static str) -> sqlx::Result<()> {
        sqlx::query(sql)
            .bind(self.scope.as_str())
            .bind(self.key)
            .execute(ex)
            .await?;
        Ok(())
    }
}

/// Removes the per-username counter of `username_key` (an erasure: the old
/// name is gone, so is what counted against it); how many rows went.
pub async fn forget_username(ex: impl PgExecutor<'_>, username_key: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM login_failures WHERE scope = 'username' AND key = name_digest($1)",
    )
    .bind(username_key)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// The digest a counter and an audit entry keep instead of `name` (hex).
pub async fn digest(ex: impl PgExecutor<'_>, name: &str) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT name_digest($1)")
        .bind(name)
        .fetch_one(ex)
        .await
}
