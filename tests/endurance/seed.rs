//! Data for the endurance tests, written straight into PostgreSQL with
//! set-based statements: a million votes through the API would take hours,
//! and what is measured here is what the server does with them afterwards.
//! Every member shares one argon2 hash, computed once.

use memberdesk::ids::{Kind, encode};
use secrecy::SecretString;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub const PASSWORD: &str = "endurance passphrase that is long";

/// The `application_name` of the tests' own connections, so that the
/// server's can be told apart in `pg_stat_activity`.
pub const TEST_APPLICATION: &str = "memberdesk-endurance-test";

/// A pool for the test's own statements (no statement timeout: seeding a
/// million rows may take longer than the server's).
pub async fn test_pool(url: &str) -> PgPool {
    let options: PgConnectOptions = url.parse().expect("database URL");
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.application_name(TEST_APPLICATION))
        .await
        .expect("connect to the test cluster")
}

/// The PHC string of [`PASSWORD`].
pub async fn password_hash() -> String {
    memberdesk::auth::password::hash_password(SecretString::from(PASSWORD))
        .await
        .expect("hash")
}

/// A staff superuser named `username`; its id.
pub async fn superuser(pool: &PgPool, username: &str, hash: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO users (username, username_key, password_hash, is_staff, is_superuser)
         VALUES ($1, $1, $2, true, true) RETURNING id",
    )
    .bind(username)
    .bind(hash)
    .fetch_one(pool)
    .await
    .expect("insert superuser")
}

/// Members `<prefix>1` to `<prefix><count>`, dormant (last seen in 1999);
/// their ids, ascending.
pub async fn members(pool: &PgPool, prefix: &str, count: i64, hash: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, username_key, email, password_hash, last_login, date_joined)
         SELECT $1 || n, $1 || n, $1 || n || '@example.org', $2,
                '1999-01-01'::timestamptz, '1998-01-01'::timestamptz
           FROM generate_series(1, $3) n ORDER BY n RETURNING id",
    )
    .bind(prefix)
    .bind(hash)
    .bind(count)
    .fetch_all(pool)
    .await
    .expect("insert members");
    ids.sort_unstable();
    ids
}

/// Three groups (created once) for each of `ids`, and one live session
/// each: every relation a deactivation or a deletion touches has rows.
pub async fn memberships_and_sessions(pool: &PgPool, ids: &[i64]) {
    for sql in [
        "INSERT INTO groups (name) SELECT 'group-' || n FROM generate_series(1, 3) n
         ON CONFLICT DO NOTHING",
        "INSERT INTO user_groups (user_id, group_id)
         SELECT u, g.id FROM unnest($1::bigint[]) u, groups g WHERE g.name LIKE 'group-%'",
        "INSERT INTO sessions (token_hash, user_id, expires_at)
         SELECT sha256(('endurance-' || u)::bytea), u, now() + interval '1 day'
           FROM unnest($1::bigint[]) u",
    ] {
        sqlx::query(sql)
            .bind(ids)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// `count` questions with two choices each; the API ids of their first
/// choices, in question order.
pub async fn questions(pool: &PgPool, count: i64) -> Vec<String> {
    let mut first_choices: Vec<i64> = sqlx::query_scalar::<_, Option<i64>>(
        "WITH q AS (INSERT INTO questions (text) SELECT 'Question ' || n FROM generate_series(1, $1) n RETURNING id)
         INSERT INTO choices (question_id, text, position)
         SELECT q.id, c.text, c.position FROM q, (VALUES ('Yes', 1), ('No', 2)) c(text, position)
         RETURNING CASE WHEN position = 1 THEN id END",
    )
    .bind(count)
    .fetch_all(pool)
    .await
    .expect("insert questions")
    .into_iter()
    .flatten()
    .collect();
    first_choices.sort_unstable();
    first_choices
        .into_iter()
        .map(|id| encode(Kind::Choice, id))
        .collect()
}

/// One vote of `user` on the first choice of each of `count` fresh
/// questions, written in one statement.
pub async fn votes_of(pool: &PgPool, user: i64, count: i64) {
    sqlx::query(
        "WITH q AS (INSERT INTO questions (text) SELECT 'Poll ' || n FROM generate_series(1, $2) n RETURNING id),
              c AS (INSERT INTO choices (question_id, text, position)
                    SELECT q.id, c.text, c.position FROM q, (VALUES ('Yes', 1), ('No', 2)) c(text, position)
                    RETURNING id, question_id, position)
         INSERT INTO votes (choice_id, question_id, user_id)
         SELECT id, question_id, $1 FROM c WHERE position = 1",
    )
    .bind(user)
    .bind(count)
    .execute(pool)
    .await
    .expect("insert votes");
    sqlx::raw_sql("VACUUM ANALYZE votes, choices, questions")
        .execute(pool)
        .await
        .expect("vacuum");
}

/// The API id of user `id`.
pub fn user_id(id: i64) -> String {
    encode(Kind::User, id)
}
