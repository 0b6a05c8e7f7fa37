//! What must hold after any fault, whatever was under way (README
//! "Guarantees"), written as statements that count the rows breaking a
//! rule: each must find none.

use sqlx::PgPool;

/// Rules over the whole database, each a count of offending rows.
const RULES: [(&str, &str); 6] = [
    (
        "no active superuser is left",
        "SELECT (count(*) = 0)::int::int8 FROM users WHERE is_active AND is_superuser",
    ),
    (
        "an inactive user keeps a live session",
        "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.revoked_at IS NULL AND s.expires_at > now() AND NOT u.is_active",
    ),
    (
        "two votes of one user on one question",
        "SELECT count(*) FROM (SELECT 1 FROM votes WHERE user_id IS NOT NULL
          GROUP BY user_id, question_id HAVING count(*) > 1) d",
    ),
    (
        "a vote's question disagrees with its choice",
        "SELECT count(*) FROM votes v JOIN choices c ON c.id = v.choice_id WHERE c.question_id <> v.question_id",
    ),
    (
        // A deactivation is the flag, the open record of what it took, and
        // its entry: all three or none of them.
        "a user's flag and open deactivation record disagree",
        "SELECT count(*) FROM users u WHERE anonymized_at IS NULL
            AND u.is_active = EXISTS (SELECT 1 FROM deactivations d WHERE d.user_id = u.id AND d.ended_at IS NULL)",
    ),
    (
        "a user's flag disagrees with the last deactivation or reactivation in the audit log",
        "SELECT count(*) FROM users u WHERE anonymized_at IS NULL AND u.is_active <> coalesce(
            (SELECT a.action = 'USER_REACTIVATED' FROM audit_entries a
              WHERE a.target_user_id = u.id AND a.action IN ('USER_DEACTIVATED', 'USER_REACTIVATED')
              ORDER BY a.id DESC LIMIT 1), true)",
    ),
];

/// Asserts every rule of [`RULES`].
pub async fn assert_hold(pool: &PgPool) {
    for (broken, sql) in RULES {
        let offending: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(offending, 0, "{broken} ({offending} rows)");
    }
}

/// How many audit entries record `action` about user `id` (by reference,
/// or by the snapshot of `username` once the user is deleted).
pub async fn entries_about(pool: &PgPool, action: &str, id: i64, username: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_entries
          WHERE action = $1 AND (target_user_id = $2 OR (target_user_id IS NULL AND target_repr = $3))",
    )
    .bind(action)
    .bind(id)
    .bind(username)
    .fetch_one(pool)
    .await
    .expect("count audit entries")
}

/// Server connections (not the test's own) still open on the database:
/// after a SIGKILL, PostgreSQL ends them (rolling back what they had not
/// committed) once it notices the client is gone.
pub async fn server_backends(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend'
            AND application_name <> $1",
    )
    .bind(crate::seed::TEST_APPLICATION)
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}
