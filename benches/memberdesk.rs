//! memberdesk's benchmark suite: a real `memberdesk serve`, over HTTP, against
//! the raw-SQL floor.
//!
//! `cargo bench --bench memberdesk -- [--size small|medium|large] [--runs R] [--json FILE] [--only GROUPS] [--webhook]`
//!
//! `--webhook` registers a webhook endpoint for every event before the
//! scenarios, so each audited change also writes its outbox row: run with
//! and without it to see what the outbox costs (the endpoint is refused at
//! delivery by the address rules, so only the outbox is measured).
//!
//! `--only reads,deletions` runs just those groups of scenarios (`reads`,
//! `deletions`, `records`, `deactivations`, `outbox`; default all; `outbox`
//! compares with and without an endpoint itself, so not with `--webhook`): a median of 5 at
//! `large` for one figure then costs minutes, not the whole suite.
//!
//! Absolute times on a shared 2-core machine are noise, so every scenario is
//! timed side by side with its *floor*: the same effect on the database done
//! directly through one sqlx connection in one transaction, in the same run,
//! on equivalent data built fresh for every measurement (a new victim with N
//! votes, a new cohort of dormant users). The ratio memberdesk/floor is what
//! we track; medians of `--runs` runs. The floors are written out here as
//! plain SQL, independent of `src/store`, so a slow statement in memberdesk
//! shows up as a ratio instead of being copied into its own yardstick. The
//! one exception is the read floor (a minimal poem+sqlx handler in this
//! process), which calls memberdesk's own store functions on purpose: it must
//! run the *same* statements, so its ratio measures GraphQL and HTTP overhead.
//!
//! The load generator is in-process (tokio tasks and one keep-alive reqwest
//! client): exact per-request latencies, nothing extra to install, and the
//! same client for memberdesk and its floor. See benches/README.md.
//!
//! `--serve-floor PORT` serves only the read floor on `DATABASE_URL` until
//! killed, for counting its instructions per request (`valgrind
//! --tool=callgrind`) beside the server's; see benches/README.md.
//!
//! The bench creates `memberdesk_bench_<pid>` on `MEMBERDESK_TEST_DATABASE_URL`'s
//! server (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops it
//! at the end, also when a scenario panics.

// Beside the npm files it runs; a bench root's modules sit next to it.
#[path = "postgraphile/server.rs"]
mod postgraphile;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memberdesk::store::user_facts::{self, Fact};
use memberdesk::store::users;
use poem::web::{Data, Json};
use poem::{EndpointExt, http::HeaderMap};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Executor, PgPool};

const PASSWORD: &str = "bench passphrase that is long";
const PAGE: &str = "query { users(first: 50) { edges { node { username groups { name } allPermissions voteCount } } } }";
const LOGIN: &str =
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";
const CLIENTS: usize = 32;
/// Clients in the login storm, each logging in as its own member.
const STORM_CLIENTS: usize = 64;
/// Users deactivated one at a time (the last ones), kept out of the cohorts.
const SINGLE_DEACTIVATIONS: i64 = 200;

struct Size {
    name: String,
    votes: i64,
    users: i64,
    read_secs: u64,
    /// Audit entries naming the victim of the audit-heavy anonymization.
    audit_entries: i64,
}

impl Size {
    fn named(name: String) -> Size {
        let (votes, users, read_secs, audit_entries) = match name.as_str() {
            "small" => (1_000, 2_000, 5, 1_000),
            "medium" => (100_000, 100_000, 15, 100_000),
            "large" => (1_000_000, 100_000, 15, 100_000),
            other => panic!("--size {other}: use small, medium or large"),
        };
        Size {
            name,
            votes,
            users,
            read_secs,
            audit_entries,
        }
    }
}

struct Args {
    size: Size,
    runs: usize,
    json: Option<String>,
    only: Only,
    /// Whether every audited change also queues a webhook delivery.
    webhook: bool,
}

/// The groups of scenarios a run measures (`--only`); empty means all.
struct Only(Vec<String>);

impl Only {
    const GROUPS: [&str; 5] = ["reads", "deletions", "records", "deactivations", "outbox"];

    fn parse(list: &str) -> Only {
        let groups: Vec<String> = list.split(',').map(|g| g.trim().to_owned()).collect();
        for g in &groups {
            assert!(
                Self::GROUPS.contains(&g.as_str()),
                "--only {g}: use a comma-separated list of {:?}",
                Self::GROUPS
            );
        }
        Only(groups)
    }

    fn wants(&self, group: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|g| g == group)
    }
}

fn args() -> Args {
    let (mut size, mut runs, mut json, mut only) = ("small".to_owned(), 3, None, Only(vec![]));
    let mut webhook = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--size" => size = value(),
            "--runs" => runs = value().parse().expect("--runs R"),
            "--json" => json = Some(value()),
            "--only" => only = Only::parse(&value()),
            "--webhook" => webhook = true,
            "--bench" => {} // added by `cargo bench`
            other => {
                panic!("unknown argument {other} (use --size, --runs, --json, --only, --webhook)")
            }
        }
    }
    let size = Size::named(size);
    assert!(runs >= 1, "--runs must be at least 1");
    Args {
        size,
        runs,
        json,
        only,
        webhook,
    }
}

/// Stops the server and drops the database, also when a scenario panics.
struct Cleanup {
    admin_url: String,
    db: String,
    server: Option<Child>,
}

impl Cleanup {
    /// This process's own database on `MEMBERDESK_TEST_DATABASE_URL`'s server.
    fn for_this_process() -> Cleanup {
        let admin_url = std::env::var("MEMBERDESK_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        Cleanup {
            admin_url,
            db: format!("memberdesk_bench_{}", std::process::id()),
            server: None,
        }
    }

    fn database_url(&self) -> String {
        let server = self.admin_url.rsplit_once('/').unwrap().0;
        format!("{server}/{}", self.db)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            stop(&mut server);
        }
        let (admin_url, db) = (self.admin_url.clone(), self.db.clone());
        // Drop may run inside the runtime; a small one on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = PgPool::connect(&admin_url).await?;
                let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
                admin.execute(sqlx::AssertSqlSafe(sql)).await.map(|_| ())
            })
        })
        .join();
    }
}

fn stop(server: &mut Child) {
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
}

struct Bench {
    pool: PgPool,
    url: String,
    http: reqwest::Client,
    base: String,
    token: String,
    server_pid: u32,
}

impl Bench {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let resp: Value = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON response");
        assert!(resp.get("errors").is_none(), "{query}: {resp}");
        resp["data"].clone()
    }

    async fn sql(&self, sql: &str) {
        run_sql(&self.pool, sql).await;
    }

    /// A fresh member with `votes` votes (one per question, first choice),
    /// three groups and two live sessions, so every relation has rows; then
    /// the table is vacuumed and checkpointed so the timed statement does
    /// not pay for the previous run's garbage or the insert's dirty pages.
    async fn victim(&self, votes: i64) -> i64 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, username_key, password_hash)
             SELECT 'victim' || n, 'victim' || n, (SELECT password_hash FROM users WHERE id = 1)
               FROM (SELECT nextval('bench_victims') AS n) s RETURNING id",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO votes (choice_id, question_id, user_id)
             SELECT c.id, c.question_id, $1 FROM choices c WHERE c.position = 1 AND c.question_id <= $2",
        )
        .bind(id)
        .bind(votes)
        .execute(&self.pool)
        .await
        .unwrap();
        for sql in [
            "INSERT INTO user_groups (user_id, group_id) SELECT $1, id FROM groups ORDER BY id LIMIT 3",
            "INSERT INTO sessions (token_hash, user_id, expires_at)
             SELECT sha256(($1 * 1000 + n)::text::bytea), $1, now() + interval '1 day' FROM generate_series(1, 2) n",
        ] {
            sqlx::query(sql).bind(id).execute(&self.pool).await.unwrap();
        }
        settle(&self.pool, "votes, users, sessions, user_groups").await;
        id
    }

    /// A fresh member (as [`Bench::victim`], no votes) named in `entries`
    /// audit entries as an active member is: logins from client addresses,
    /// failed ones, edits and deactivations by an admin with reasons about
    /// them. Entries are never deleted, so each run adds its own.
    async fn audit_victim(&self, entries: i64) -> i64 {
        let id = self.victim(0).await;
        sqlx::query(
            "INSERT INTO audit_entries (action, actor_id, actor_username, target_user_id, target_repr,
                                        reason, details, actor_username_fold, target_repr_fold)
             SELECT a.action, CASE WHEN a.own THEN $1 ELSE 1 END, CASE WHEN a.own THEN u.username ELSE 'member1' END,
                    $1, u.username, CASE WHEN a.own THEN NULL ELSE 'about ' || u.username END,
                    jsonb_build_object('clientAddress', '203.0.113.' || (n % 250)),
                    CASE WHEN a.own THEN u.username ELSE 'member1' END, u.username
               FROM generate_series(1, $2) n
               JOIN users u ON u.id = $1
               CROSS JOIN LATERAL (SELECT (ARRAY['LOGIN', 'LOGIN_FAILED', 'USER_UPDATED', 'USER_DEACTIVATED'])[1 + n % 4] AS action,
                                          n % 4 < 2 AS own) a",
        )
        .bind(id)
        .bind(entries)
        .execute(&self.pool)
        .await
        .unwrap();
        settle(&self.pool, "audit_entries").await;
        id
    }

    /// Removes what is left of a victim's votes, to keep the table the same size.
    async fn drop_votes(&self, victim: i64) {
        self.sql(&format!("DELETE FROM votes WHERE user_id = {victim}"))
            .await;
    }
}

async fn run_sql(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Vacuums and analyzes `tables` (all of them when empty), then checkpoints,
/// so the next timed statement starts from clean tables and pages.
async fn settle(pool: &PgPool, tables: &str) {
    run_sql(pool, &format!("VACUUM ANALYZE {tables}")).await;
    run_sql(pool, "CHECKPOINT").await;
}

fn enc(id: i64) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::User, id)
}

fn enc_question(id: i64) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::Question, id)
}

/// The variables of a query or mutation that takes one user `$id`.
fn user_id_var(id: i64) -> Value {
    json!({ "id": enc(id) })
}

async fn ms<T>(f: impl Future<Output = T>) -> f64 {
    let started = Instant::now();
    f.await;
    started.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A migrated, seeded database, `memberdesk serve` on it and an admin token.
async fn setup(size: &Size, cleanup: &mut Cleanup) -> Bench {
    let url = cleanup.database_url();
    migrate(&url).await;
    // The bench's own connections have no statement timeout (the server's is
    // 30 s): seeding a million votes may take longer, and the floor has none.
    let pool = PgPool::connect(&url).await.expect("connect");
    seed(&pool, size).await;
    let base = spawn_server(&url, cleanup).await;
    let http = reqwest::Client::new();
    let token = log_in(&http, &format!("{base}/graphql"), "bench-admin").await;
    let server_pid = cleanup.server.as_ref().unwrap().id();
    Bench {
        pool,
        url,
        http,
        base,
        token,
        server_pid,
    }
}

/// Migrates through memberdesk's own pool, as `memberdesk migrate` would.
async fn migrate(url: &str) {
    let server_pool = memberdesk::db::connect(url, true).await.expect("connect");
    memberdesk::db::migrate(&server_pool, url)
        .await
        .expect("migrate");
    server_pool.close().await;
}

/// The users, groups, permissions, questions and votes of `size`, set-based.
async fn seed(pool: &PgPool, size: &Size) {
    let hash = memberdesk::auth::password::hash_password(SecretString::from(PASSWORD))
        .await
        .expect("hash");
    // Member n has id n; the admin comes right after them.
    let started = Instant::now();
    let seed = format!(
        "CREATE SEQUENCE bench_victims;
         INSERT INTO users (username, username_key, email, first_name, password_hash, last_login, date_joined)
           SELECT 'member' || n, 'member' || n, 'member' || n || '@example.org', 'Member', '{hash}',
                  now() - n * interval '1 minute', now() - interval '2 years'
             FROM generate_series(1, {users}) n;
         INSERT INTO users (username, username_key, password_hash, is_staff, is_superuser)
           VALUES ('bench-admin', 'bench-admin', '{hash}', true, true);
         INSERT INTO groups (name) SELECT 'group-' || n FROM generate_series(1, 10) n;
         INSERT INTO group_permissions (group_id, permission_id)
           SELECT g.id, p.id FROM groups g, permissions p WHERE (g.id + p.id) % 5 = 0;
         INSERT INTO user_groups (user_id, group_id)
           SELECT u, (u + k) % 10 + 1 FROM generate_series(1, {users}) u, (VALUES (0), (3), (6)) k(k);
         INSERT INTO user_permissions (user_id, permission_id)
           SELECT u, (SELECT id FROM permissions WHERE codename = 'add_question')
             FROM generate_series(7, {users}, 7) u;
         INSERT INTO questions (text, pub_date)
           SELECT 'Question ' || n, now() - n * interval '1 second' FROM generate_series(1, {votes}) n;
         INSERT INTO choices (question_id, text, position)
           SELECT id, c.text, c.position FROM questions, (VALUES ('Yes', 1), ('No', 2)) c(text, position);
         INSERT INTO votes (choice_id, question_id, user_id)
           SELECT c.id, c.question_id, u FROM generate_series(1, 100) u
             JOIN choices c ON c.position = 1 + u % 2 AND c.question_id <= 1 + u % 10;
",
        users = size.users,
        votes = size.votes
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(seed))
        .execute(pool)
        .await
        .expect("seed");
    settle(pool, "").await;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
}

/// Logs `username` in with the bench password; returns the session token.
async fn log_in(http: &reqwest::Client, graphql_url: &str, username: &str) -> String {
    let body = json!({ "query": LOGIN, "variables": { "u": username, "p": PASSWORD } });
    let resp: Value = http
        .post(graphql_url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match resp["data"]["login"]["token"].as_str() {
        Some(token) => token.to_owned(),
        None => panic!("login: {resp}"),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until the server on `port` answers `/readyz`; returns its base URL.
async fn ready(port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/readyz");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return base;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

/// `memberdesk [global_args] serve` on `port` against `url`, stdout discarded.
fn serve_command(url: &str, port: u16, global_args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memberdesk"));
    command
        .args(global_args)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", url)
        .stdout(Stdio::null());
    command
}

/// Starts `memberdesk serve`, owned by the cleanup; returns its base URL.
async fn spawn_server(url: &str, cleanup: &mut Cleanup) -> String {
    let port = free_port();
    let server = serve_command(url, port, &[])
        .env("MEMBERDESK_LOG", "error")
        // The storm's 64 logins all come from 127.0.0.1, and an attempt counts
        // against the address while it is in flight: the default of 50 would
        // refuse some as RATE_LIMITED. Real storms come from many addresses.
        .env("MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS", "1000000")
        // Scenario 17 delivers to a receiver in this process, over plain HTTP.
        .env("MEMBERDESK_WEBHOOK_ALLOW_HTTP", "true")
        .env("MEMBERDESK_WEBHOOK_ALLOW_PRIVATE", "true")
        .spawn()
        .expect("memberdesk serve");
    cleanup.server = Some(server);
    ready(port).await
}

// ---- floors: the same effect, straight SQL, one connection, one transaction ----

/// What deleting a user does with the user's votes.
#[derive(Clone, Copy)]
enum VotePolicy {
    Cascade,
    SetNull,
}

impl VotePolicy {
    fn graphql_name(self) -> &'static str {
        match self {
            VotePolicy::Cascade => "CASCADE",
            VotePolicy::SetNull => "SET_NULL",
        }
    }

    fn floor_statement(self) -> &'static str {
        match self {
            VotePolicy::Cascade => "DELETE FROM votes WHERE user_id = $1",
            VotePolicy::SetNull => "UPDATE votes SET user_id = NULL WHERE user_id = $1",
        }
    }
}

async fn floor_delete(pool: &PgPool, user: i64, policy: VotePolicy) {
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        "INSERT INTO audit_entries (action, actor_username, target_user_id, target_repr)
         SELECT 'USER_DELETED', 'bench-admin', id, username FROM users WHERE id = $1",
        policy.floor_statement(),
        "UPDATE questions SET created_by = NULL WHERE created_by = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM user_groups WHERE user_id = $1",
        "DELETE FROM user_permissions WHERE user_id = $1",
        "DELETE FROM deactivations WHERE user_id = $1",
        "UPDATE audit_entries SET actor_id = NULL WHERE actor_id = $1",
        "UPDATE audit_entries SET target_user_id = NULL WHERE target_user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(sql).bind(user).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

const COUNTS: &str = "SELECT ARRAY[(SELECT count(*) FROM votes WHERE user_id = $1),
    (SELECT count(*) FROM questions WHERE created_by = $1), (SELECT count(*) FROM sessions WHERE user_id = $1),
    (SELECT count(*) FROM user_groups WHERE user_id = $1), (SELECT count(*) FROM user_permissions WHERE user_id = $1),
    (SELECT count(*) FROM deactivations WHERE user_id = $1), (SELECT count(*) FROM audit_entries WHERE actor_id = $1),
    (SELECT count(*) FROM audit_entries WHERE target_user_id = $1)]";

async fn floor_plan(pool: &PgPool, user: i64) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM users WHERE id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .unwrap();
    let counts: Vec<i64> = sqlx::query_scalar(COUNTS)
        .bind(user)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(counts[0] > 0);
    tx.commit().await.unwrap();
}

/// What `anonymizeUser` does, statement for statement: lock, find the last
/// export, erase the profile, take away access, forget the failed-login
/// counter, revoke sessions, redact every audit entry naming the user (the
/// redaction is written by the audit trigger, here as there), one entry.
async fn floor_anonymize(pool: &PgPool, user: i64) {
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        "SELECT at, details->>'sha256' FROM audit_entries
          WHERE target_user_ref = $1 AND action = 'USER_DATA_EXPORTED' ORDER BY id DESC LIMIT 1",
        "UPDATE users SET username = 'deleted-user-' || id, username_key = 'deleted-user-' || id,
             email = '', first_name = '', last_name = '', password_hash = NULL, is_active = false,
             is_staff = false, is_superuser = false, deactivation_reason = NULL, anonymized_at = now(),
             erasure_due_at = NULL
         WHERE id = $1",
        "DELETE FROM user_groups WHERE user_id = $1",
        "DELETE FROM user_permissions WHERE user_id = $1",
        "UPDATE deactivations SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL",
        "DELETE FROM login_failures WHERE scope = 'username' AND key = name_digest('victim' || $1::bigint)",
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        "SELECT set_config('memberdesk.erasure', $1::bigint::text, true)",
        "UPDATE audit_entries SET redacted_at = now() WHERE actor_ref = $1 OR target_user_ref = $1",
        "INSERT INTO audit_entries (action, actor_username, target_user_id, target_repr)
         VALUES ('USER_ANONYMIZED', 'bench-admin', $1, 'deleted-user-' || $1::bigint)",
    ] {
        sqlx::query(sql).bind(user).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

const DORMANT_BEFORE: &str = "2002-01-01T00:00:00Z";

/// Deactivates every active user who last logged in before 2002: lock, take
/// the groups and permissions away and remember them, flag, revoke sessions,
/// one audit entry each.
async fn floor_deactivate_dormant(pool: &PgPool) -> usize {
    let mut tx = pool.begin().await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM users WHERE is_active AND anonymized_at IS NULL AND last_login < $1::timestamptz
         ORDER BY id FOR UPDATE",
    )
    .bind(DORMANT_BEFORE)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    for sql in [
        "WITH g AS (DELETE FROM user_groups WHERE user_id = ANY($1) RETURNING user_id, group_id),
              gg AS (SELECT user_id, array_agg(group_id ORDER BY group_id) ids FROM g GROUP BY user_id),
              p AS (DELETE FROM user_permissions WHERE user_id = ANY($1) RETURNING user_id, permission_id),
              pp AS (SELECT user_id, array_agg(permission_id ORDER BY permission_id) ids FROM p GROUP BY user_id)
         INSERT INTO deactivations (user_id, group_ids, permission_ids, staff_revoked)
         SELECT u, coalesce(gg.ids, '{}'), coalesce(pp.ids, '{}'), false
           FROM unnest($1::bigint[]) u LEFT JOIN gg ON gg.user_id = u LEFT JOIN pp ON pp.user_id = u",
        "UPDATE users SET is_active = false, deactivated_at = now(), deactivation_reason = 'dormant'
          WHERE id = ANY($1)",
        "UPDATE sessions SET revoked_at = now() WHERE user_id = ANY($1) AND revoked_at IS NULL",
        "INSERT INTO audit_entries (action, actor_username, target_user_id, target_repr, reason, details)
         SELECT 'USER_DEACTIVATED', 'bench-admin', d.user_id, u.username, 'dormant',
                jsonb_build_object('removedGroupIds', d.group_ids, 'removedPermissionIds', d.permission_ids, 'bulk', true)
           FROM deactivations d JOIN users u ON u.id = d.user_id
          WHERE d.user_id = ANY($1) AND d.ended_at IS NULL",
    ] {
        sqlx::query(sql).bind(&ids).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    ids.len()
}

/// The statements of deleting users `ids` under CASCADE, set-based: the
/// superuser lock, the rows locked, every relation's rows deleted or
/// detached with one statement each, the users, one audit entry per user.
async fn floor_delete_users(pool: &PgPool, ids: &[i64]) {
    let mut tx = pool.begin().await.unwrap();
    run_sql_in(&mut tx, "SELECT pg_advisory_xact_lock(7263001)").await;
    let names: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    for sql in [
        "DELETE FROM votes WHERE user_id = ANY($1)",
        "UPDATE questions SET created_by = NULL WHERE created_by = ANY($1)",
        "DELETE FROM sessions WHERE user_id = ANY($1)",
        "DELETE FROM user_groups WHERE user_id = ANY($1)",
        "DELETE FROM user_permissions WHERE user_id = ANY($1)",
        "DELETE FROM deactivations WHERE user_id = ANY($1)",
        "UPDATE audit_entries SET actor_id = NULL WHERE actor_id = ANY($1)",
        "UPDATE audit_entries SET target_user_id = NULL WHERE target_user_id = ANY($1)",
        "DELETE FROM users WHERE id = ANY($1)",
    ] {
        sqlx::query(sql).bind(ids).execute(&mut *tx).await.unwrap();
    }
    let (ids, names): (Vec<i64>, Vec<String>) = names.into_iter().unzip();
    sqlx::query(
        "INSERT INTO audit_entries (action, actor_username, target_user_ref, target_repr, details)
         SELECT 'USER_DELETED', 'bench-admin', t.id, t.name, '{\"policy\": \"CASCADE\"}'
           FROM unnest($1::bigint[], $2::text[]) AS t(id, name)",
    )
    .bind(&ids)
    .bind(&names)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The users of a bulk plan locked and their rows counted (one statement,
/// as the plan counts), then rolled back: the floor of a bulk preview.
async fn floor_bulk_plan(pool: &PgPool, ids: &[i64]) {
    let mut tx = pool.begin().await.unwrap();
    run_sql_in(&mut tx, "SELECT pg_advisory_xact_lock(7263001)").await;
    sqlx::query("SELECT id, username FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(ids)
        .execute(&mut *tx)
        .await
        .unwrap();
    let counts: Vec<i64> = sqlx::query_scalar(BULK_COUNTS)
        .bind(ids)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(counts[0] > 0);
    tx.rollback().await.unwrap();
}

const BULK_COUNTS: &str = "SELECT ARRAY[(SELECT count(*) FROM votes WHERE user_id = ANY($1)),
    (SELECT count(*) FROM questions WHERE created_by = ANY($1)), (SELECT count(*) FROM sessions WHERE user_id = ANY($1)),
    (SELECT count(*) FROM user_groups WHERE user_id = ANY($1)), (SELECT count(*) FROM user_permissions WHERE user_id = ANY($1)),
    (SELECT count(*) FROM deactivations WHERE user_id = ANY($1)), (SELECT count(*) FROM audit_entries WHERE actor_id = ANY($1)),
    (SELECT count(*) FROM audit_entries WHERE target_user_id = ANY($1))]";

/// The question read and its votes and choices counted (one statement).
async fn floor_question_plan(pool: &PgPool, question: i64) {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT id, text, pub_date, created_by FROM questions WHERE id = $1")
        .bind(question)
        .execute(&mut *conn)
        .await
        .unwrap();
    let counts: Vec<i64> = sqlx::query_scalar(
        "SELECT ARRAY[(SELECT count(*) FROM votes WHERE question_id = ANY($1)),
                      (SELECT count(*) FROM choices WHERE question_id = ANY($1))]",
    )
    .bind([question])
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(counts[0] > 0);
}

/// The statements of deleting a question under CASCADE: locked, its votes,
/// its choices, itself, one audit entry.
async fn floor_delete_question(pool: &PgPool, question: i64) {
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "SELECT id FROM questions WHERE id = ANY($1) FOR UPDATE",
        "DELETE FROM votes WHERE question_id = ANY($1)",
        "DELETE FROM choices WHERE question_id = ANY($1)",
        "DELETE FROM questions WHERE id = ANY($1)",
        "INSERT INTO audit_entries (action, actor_username, target_repr, details)
         SELECT 'QUESTION_DELETED', 'bench-admin', 'question ' || q, jsonb_build_object('questionId', q)
           FROM unnest($1::bigint[]) q",
    ] {
        sqlx::query(sql)
            .bind([question])
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// What `purge-archived --older-than-days 30` runs for one batch of up to
/// 1,000 questions, in one transaction: the batch locked (the same
/// statement), its votes, choices and questions deleted, one audit entry
/// per question.
async fn floor_purge(pool: &PgPool) {
    let mut tx = pool.begin().await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM questions WHERE archived_at < now() - interval '30 days' AND id > 0
          ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(ids.len() as i64, PURGED);
    for sql in [
        "DELETE FROM votes WHERE question_id = ANY($1)",
        "DELETE FROM choices WHERE question_id = ANY($1)",
        "DELETE FROM questions WHERE id = ANY($1)",
        "INSERT INTO audit_entries (action, actor_username, target_repr, reason, details)
         SELECT 'QUESTION_DELETED', 'system', 'question ' || q, 'archived for more than 30 days',
                jsonb_build_object('questionId', q)
           FROM unnest($1::bigint[]) q",
    ] {
        sqlx::query(sql).bind(&ids).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn run_sql_in(tx: &mut sqlx::PgConnection, sql: &'static str) {
    sqlx::query(sql).execute(tx).await.unwrap();
}

// ---- the read floor: a minimal poem+sqlx handler running memberdesk's own statements ----

fn internal(e: impl std::fmt::Debug) -> poem::Error {
    poem::Error::from_string(
        format!("{e:?}"),
        poem::http::StatusCode::INTERNAL_SERVER_ERROR,
    )
}

#[poem::handler]
async fn floor_page(
    Data(pool): Data<&PgPool>,
    headers: &HeaderMap,
    Json(_request): Json<Value>,
) -> poem::Result<Json<Value>> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let settings = memberdesk::config::Settings::default();
    let caller = memberdesk::domain::accounts::authenticate(
        pool,
        &settings,
        bearer.trim_start_matches("Bearer "),
    )
    .await
    .map_err(internal)?;
    if !caller.is_some_and(|c| c.is_superuser || c.permissions.contains("auth.view_user")) {
        return Err(poem::Error::from_status(poem::http::StatusCode::FORBIDDEN));
    }
    let filter = users::UserFilter::default();
    let mut page = users::page(pool, &filter, users::UserOrder::IdAsc, None, 51)
        .await
        .map_err(internal)?;
    page.truncate(50);
    let ids: Vec<i64> = page.iter().map(|u| u.id).collect();
    let wanted =
        std::collections::HashSet::from([Fact::Groups, Fact::PermissionKeys, Fact::VoteCount]);
    let facts = user_facts::of_users(pool, &ids, &wanted)
        .await
        .map_err(internal)?;
    let (groups, perms, votes) = (facts.groups, facts.permission_keys, facts.vote_counts);
    let edges: Vec<Value> = page
        .iter()
        .map(|u| {
            let g: Vec<Value> = groups.iter().filter(|(o, _)| *o == u.id).map(|(_, g)| json!({ "name": g.name })).collect();
            let p: Vec<&String> = perms.iter().filter(|(o, _)| *o == u.id).map(|(_, k)| k).collect();
            let v = votes.iter().find(|(o, _)| *o == u.id).map_or(0, |(_, n)| *n);
            json!({ "node": { "username": u.username, "groups": g, "allPermissions": p, "voteCount": v } })
        })
        .collect();
    Ok(Json(json!({ "data": { "users": { "edges": edges } } })))
}

/// Serves the floor on `port` on its own 2-thread runtime, like memberdesk's
/// server; returns only if the server fails.
fn serve_floor(url: String, port: u16) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let pool = memberdesk::db::connect(&url, false)
            .await
            .expect("floor pool");
        let app = poem::Route::new()
            .at("/graphql", poem::post(floor_page))
            .at("/readyz", poem::get(poem::endpoint::make_sync(|_| "ok")))
            .data(pool);
        poem::Server::new(poem::listener::TcpListener::bind(format!(
            "127.0.0.1:{port}"
        )))
        .run(app)
        .await
    })
}

/// Starts the floor on a thread of its own; returns its base URL once ready.
async fn start_floor(url: String) -> String {
    let port = free_port();
    std::thread::spawn(move || serve_floor(url, port));
    ready(port).await
}

/// `--serve-floor PORT`: only the read floor, on `DATABASE_URL`, until
/// killed, so that a profiler (e.g. `valgrind --tool=callgrind`) can count
/// its instructions per request apart from the load generator's.
fn floor_only() -> Option<u16> {
    let mut it = std::env::args()
        .skip_while(|a| a != "--serve-floor")
        .skip(1);
    it.next().map(|p| p.parse().expect("--serve-floor PORT"))
}

struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// `CLIENTS` tasks send `query` back to back for `secs`; every latency is kept.
async fn read_load(http: &reqwest::Client, url: &str, token: &str, query: &str, secs: u64) -> Load {
    let body = bytes_of(&json!({ "query": query }));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, url, token, body) =
                (http.clone(), url.to_owned(), token.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let resp = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("read request");
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.bytes().await.expect("read body");
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Load {
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Peak resident memory of a process, from /proc (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so the next reading is
/// the peak of what follows.
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

// ---- the table ----

enum Target {
    Report,
    /// A target that applies at another size, shown but not judged.
    Elsewhere(&'static str),
    /// A target checked by the scenario itself.
    Check {
        label: &'static str,
        met: bool,
    },
    RatioMax(f64),
    RatioMin(f64),
    ValueMax(f64),
}

impl Target {
    /// `RatioMax(max)` once `value` reaches `from`; below it, shown as `elsewhere`.
    fn ratio_max_from(max: f64, value: i64, from: i64, elsewhere: &'static str) -> Target {
        if value >= from {
            Target::RatioMax(max)
        } else {
            Target::Elsewhere(elsewhere)
        }
    }
}

struct Row {
    scenario: String,
    unit: &'static str,
    memberdesk: f64,
    floor: Option<f64>,
    target: Target,
}

impl Row {
    /// A row with no floor, only reported.
    fn new(scenario: impl Into<String>, unit: &'static str, memberdesk: f64) -> Row {
        Row {
            scenario: scenario.into(),
            unit,
            memberdesk,
            floor: None,
            target: Target::Report,
        }
    }
    fn vs(self, floor: f64) -> Row {
        Row {
            floor: Some(floor),
            ..self
        }
    }
    fn judged_by(self, target: Target) -> Row {
        Row { target, ..self }
    }
    fn ratio(&self) -> Option<f64> {
        self.floor.map(|f| self.memberdesk / f)
    }
    fn target(&self) -> String {
        match self.target {
            Target::Report => "report".into(),
            Target::Elsewhere(t) | Target::Check { label: t, .. } => t.into(),
            Target::RatioMax(x) => format!("ratio <= {x}"),
            Target::RatioMin(x) => format!("ratio >= {x}"),
            Target::ValueMax(x) => format!("<= {x} {}", self.unit),
        }
    }
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::Report | Target::Elsewhere(_) => None,
            Target::Check { met, .. } => Some(met),
            Target::RatioMax(x) => self.ratio().map(|r| r <= x),
            Target::RatioMin(x) => self.ratio().map(|r| r >= x),
            Target::ValueMax(x) => Some(self.memberdesk <= x),
        }
    }
}

fn fmt(v: f64, unit: &str) -> String {
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

fn print_table(size: &str, rows: &[Row]) {
    println!(
        "\n| {:<62} | {:<6} | {:>13} | {:>13} | {:>6} | {:<17} | {:<4} |",
        "scenario", "size", "memberdesk", "floor", "ratio", "target", "met?"
    );
    println!(
        "|{:-<64}|{:-<8}|{:->15}|{:->15}|{:->8}|{:-<19}|{:-<6}|",
        "", "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<62} | {:<6} | {:>13} | {:>13} | {:>6} | {:<17} | {:<4} |",
            r.scenario,
            size,
            fmt(r.memberdesk, r.unit),
            r.floor.map_or("".into(), |f| fmt(f, r.unit)),
            r.ratio().map_or("".into(), |x| format!("{x:.2}")),
            r.target(),
            r.met().map_or("", |m| if m { "yes" } else { "NO" })
        );
    }
}

/// The table, the machine line and, with `--json`, the same rows as JSON.
async fn report(b: &Bench, a: &Args, rows: &[Row]) {
    print_table(&a.size.name, rows);
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    println!(
        "\n{version}; {} cores; {} runs",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        a.runs
    );
    if let Some(path) = &a.json {
        write_json(path, a, &version, rows);
    }
}

fn write_json(path: &str, a: &Args, version: &str, rows: &[Row]) {
    let size = a.size.name.as_str();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({ "scenario": r.scenario, "size": size, "unit": r.unit, "memberdesk": r.memberdesk,
                    "floor": r.floor, "ratio": r.ratio(), "target": r.target(), "met": r.met() })
        })
        .collect();
    let doc = json!({ "size": size, "votes": a.size.votes, "users": a.size.users, "runs": a.runs,
                      "postgres": version, "rows": rows });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).expect("write --json file");
}

// ---- paired measurements ----

/// Which side of a paired measurement runs: memberdesk over HTTP, or its floor.
#[derive(Clone, Copy)]
enum Side {
    Memberdesk,
    Floor,
}

impl Side {
    /// The two sides in the order of run `run`: memberdesk first in even
    /// runs, the floor first in odd ones, so neither always goes first.
    fn order(run: usize) -> [Side; 2] {
        if run.is_multiple_of(2) {
            [Side::Memberdesk, Side::Floor]
        } else {
            [Side::Floor, Side::Memberdesk]
        }
    }
}

/// Milliseconds per run of memberdesk and of its floor.
#[derive(Default)]
struct Paired {
    memberdesk: Vec<f64>,
    floor: Vec<f64>,
}

impl Paired {
    fn push(&mut self, side: Side, ms: f64) {
        match side {
            Side::Memberdesk => self.memberdesk.push(ms),
            Side::Floor => self.floor.push(ms),
        }
    }

    /// The medians of both sides as a row in milliseconds.
    fn row(self, scenario: String, target: Target) -> Row {
        Row::new(scenario, "ms", median(self.memberdesk))
            .vs(median(self.floor))
            .judged_by(target)
    }
}

// ---- the scenarios, numbered as in benches/README.md ----

/// Every scenario in order; reads first, so the server's peak RSS is the read load's.
async fn run_scenarios(b: &Bench, a: &Args) -> Vec<Row> {
    let (size, votes, runs) = (&a.size, a.size.votes, a.runs);
    let started = Instant::now();
    let progress = |what: &str| eprintln!("{what} at {:.0} s", started.elapsed().as_secs_f64());
    let mut rows = Vec::new();
    if a.only.wants("reads") {
        rows.extend(read_rows(b, size).await);
        progress("reads done");
    }
    if a.only.wants("deletions") {
        for policy in [VotePolicy::Cascade, VotePolicy::SetNull] {
            rows.push(delete_row(b, policy, votes, runs).await);
        }
        rows.extend(plan_rows(b, votes, runs).await);
        rows.extend(anonymize_rows(b, votes, runs).await);
        rows.push(anonymize_audit_row(b, a.size.audit_entries, runs).await);
        progress("deletions done");
    }
    if a.only.wants("records") {
        rows.extend(record_rows(b, size, runs).await);
        rows.push(purge_row(b, size, runs).await);
        progress("record deletions done");
    }
    if a.only.wants("deactivations") {
        rows.push(bulk_deactivate_row(b, size, runs).await);
        rows.extend(single_deactivate_rows(b, size.users).await);
    }
    if a.only.wants("outbox") {
        rows.push(outbox_row(b, size, runs).await);
        rows.extend(delivery_rows(b, size, runs).await);
    }
    progress("done");
    rows
}

/// 7, 8, 9: the users page under read load, beside its floor, then during a
/// login storm, and the SQL statements one page costs.
async fn read_rows(b: &Bench, size: &Size) -> Vec<Row> {
    let urls = read_urls(b).await;
    let quiet = QuietReads::measure(b, &urls, size.read_secs).await;
    let storm = Storm::measure(b, &urls.memberdesk, size.read_secs).await;
    let counts = count_page_statements(b).await;
    let mut rows = quiet.rows(size.users);
    rows.extend(storm.rows(&quiet.memberdesk));
    rows.push(statements_row(&counts));
    rows
}

/// Statements per page for 2, 10 and 50 users: the same count for all three.
fn statements_row(counts: &[usize]) -> Row {
    let constant = counts.iter().all(|c| *c == counts[0]);
    Row::new(
        format!("SQL statements per page, first 2/10/50: {counts:?}"),
        "",
        counts[2] as f64,
    )
    .vs(3.0)
    .judged_by(Target::Check {
        label: "constant",
        met: constant,
    })
}

/// Where memberdesk and its read floor serve the users page.
struct ReadUrls {
    memberdesk: String,
    floor: String,
}

/// Starts the read floor and checks it serves the same page as memberdesk.
async fn read_urls(b: &Bench) -> ReadUrls {
    let floor_base = start_floor(b.url.clone()).await;
    let urls = ReadUrls {
        memberdesk: format!("{}/graphql", b.base),
        floor: format!("{floor_base}/graphql"),
    };
    let ours = fetch_page(b, &urls.memberdesk).await;
    let floor = fetch_page(b, &urls.floor).await;
    assert_eq!(
        ours["data"]["users"]["edges"].as_array().map(Vec::len),
        Some(50),
        "{ours}"
    );
    if ours != floor {
        eprintln!("warning: the floor handler's page differs from memberdesk's:\n{ours}\n{floor}");
    }
    urls
}

async fn fetch_page(b: &Bench, url: &str) -> Value {
    fetch(b, url, PAGE).await
}

async fn fetch(b: &Bench, url: &str, query: &str) -> Value {
    let request = b.http.post(url).bearer_auth(&b.token);
    let resp = request.json(&json!({ "query": query })).send().await;
    resp.unwrap().json().await.unwrap()
}

/// The page under read load alone: memberdesk, its floor, the server's peak
/// RSS, and PostGraphile's equivalent page when it could be run.
struct QuietReads {
    memberdesk: Load,
    floor: Load,
    postgraphile: Option<Load>,
    peak_rss: f64,
}

impl QuietReads {
    async fn measure(b: &Bench, urls: &ReadUrls, secs: u64) -> QuietReads {
        let (http, token) = (&b.http, &b.token);
        read_load(http, &urls.floor, token, PAGE, 1).await; // warm-up, both
        read_load(http, &urls.memberdesk, token, PAGE, 1).await;
        let floor = read_load(http, &urls.floor, token, PAGE, secs).await;
        reset_peak_rss(b.server_pid);
        let memberdesk = read_load(http, &urls.memberdesk, token, PAGE, secs).await;
        let peak_rss = peak_rss_mib(b.server_pid);
        QuietReads {
            memberdesk,
            floor,
            postgraphile: postgraphile_load(b, secs).await,
            peak_rss,
        }
    }

    fn rows(&self, users: i64) -> Vec<Row> {
        let (ours, floor) = (&self.memberdesk, &self.floor);
        let page = format!("users(first: 50) page, {users} users, {CLIENTS} clients");
        let mut rows = vec![
            Row::new(format!("{page}: throughput"), "req/s", ours.rps)
                .vs(floor.rps)
                .judged_by(Target::RatioMin(0.8)),
            Row::new(format!("{page}: p50"), "ms", ours.p50).vs(floor.p50),
            Row::new(format!("{page}: p99"), "ms", ours.p99).vs(floor.p99),
        ];
        if let Some(theirs) = &self.postgraphile {
            rows.extend([
                Row::new(
                    "same page vs PostGraphile 5 (same run): throughput",
                    "req/s",
                    ours.rps,
                )
                .vs(theirs.rps)
                .judged_by(Target::RatioMin(2.0)),
                Row::new(
                    "same page vs PostGraphile 5 (same run): p99",
                    "ms",
                    ours.p99,
                )
                .vs(theirs.p99),
            ]);
        }
        rows.push(
            Row::new("peak RSS of the server, read load", "MiB", self.peak_rss)
                .judged_by(Target::ValueMax(100.0)),
        );
        rows
    }
}

/// PostGraphile 5's equivalent page under the same load, after a check that
/// it answers the same facts; `None`, said in one line, when it cannot run.
async fn postgraphile_load(b: &Bench, secs: u64) -> Option<Load> {
    let server = match postgraphile::start(&b.url).await {
        Ok(server) => server,
        Err(reason) => {
            eprintln!("PostGraphile comparison skipped: {reason}");
            return None;
        }
    };
    let theirs = fetch(b, &server.url, postgraphile::PAGE).await;
    let ours = fetch_page(b, &format!("{}/graphql", b.base)).await;
    let theirs = postgraphile::as_memberdesk_page(&theirs);
    if postgraphile::sorted_facts(&ours) != theirs {
        eprintln!("warning: PostGraphile's page differs from memberdesk's:\n{ours}\n{theirs}");
    }
    read_load(&b.http, &server.url, &b.token, postgraphile::PAGE, 1).await; // warm-up
    Some(read_load(&b.http, &server.url, &b.token, postgraphile::PAGE, secs).await)
}

/// The page under read load while `STORM_CLIENTS` clients log in back to back.
struct Storm {
    reads: Load,
    logins_per_sec: f64,
    peak_rss: f64,
}

impl Storm {
    async fn measure(b: &Bench, url: &str, secs: u64) -> Storm {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let logins = Arc::new(AtomicUsize::new(0));
        let storm: Vec<_> = (1..=STORM_CLIENTS)
            .map(|k| {
                let (http, url, logins) = (b.http.clone(), url.to_owned(), logins.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        log_in(&http, &url, &format!("member{k}")).await;
                        logins.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let reads = read_load(&b.http, url, &b.token, PAGE, secs).await;
        for t in storm {
            t.await.unwrap();
        }
        Storm {
            reads,
            logins_per_sec: logins.load(Ordering::Relaxed) as f64 / secs as f64,
            peak_rss: peak_rss_mib(b.server_pid),
        }
    }

    fn rows(&self, quiet: &Load) -> Vec<Row> {
        vec![
            Row::new(
                "read p99 during a 64-client login storm / without",
                "ms",
                self.reads.p99,
            )
            .vs(quiet.p99)
            .judged_by(Target::RatioMax(3.0)),
            Row::new(
                "login storm: logins/s (64 clients, argon2id)",
                "/s",
                self.logins_per_sec,
            ),
            Row::new("read throughput during the storm", "req/s", self.reads.rps).vs(quiet.rps),
            Row::new(
                "peak RSS of the server, read load + login storm",
                "MiB",
                self.peak_rss,
            ),
        ]
    }
}

/// A second server that logs every statement as one JSON line on stderr,
/// and the number of statement lines it has logged so far.
struct LoggingServer {
    server: Child,
    statements: Arc<AtomicUsize>,
    base: String,
}

impl LoggingServer {
    async fn start(url: &str) -> LoggingServer {
        let port = free_port();
        let mut server = serve_command(url, port, &["--log-format", "json"])
            .env("MEMBERDESK_LOG", "warn,sqlx::query=debug")
            .stderr(Stdio::piped())
            .spawn()
            .expect("memberdesk serve");
        let statements = Arc::new(AtomicUsize::new(0));
        let (stderr, seen) = (server.stderr.take().unwrap(), statements.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // The webhook delivery worker polls its outbox once a second
                // on its own: its statement is not the page's (it was the
                // fourth statement a count window of 0.3 s caught now and then).
                if line.contains("sqlx::query") && !line.contains("webhook_deliveries") {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let base = ready(port).await;
        LoggingServer {
            server,
            statements,
            base,
        }
    }

    /// The statements of one page of `first` users, after a warm-up request.
    async fn statements_per_page(&self, b: &Bench, first: usize) -> usize {
        let q = PAGE.replace("first: 50", &format!("first: {first}"));
        let post = || {
            b.http
                .post(format!("{}/graphql", self.base))
                .bearer_auth(&b.token)
                .json(&json!({ "query": q }))
        };
        post().send().await.unwrap().bytes().await.unwrap(); // warm the pool and the statement cache
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = self.statements.load(Ordering::SeqCst);
        post().send().await.unwrap().bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.statements.load(Ordering::SeqCst) - before
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        stop(&mut self.server);
    }
}

/// The SQL statements one page costs, for pages of 2, 10 and 50 users.
async fn count_page_statements(b: &Bench) -> Vec<usize> {
    let server = LoggingServer::start(&b.url).await;
    let mut counts = Vec::new();
    for first in [2, 10, 50] {
        counts.push(server.statements_per_page(b, first).await);
    }
    counts
}

/// 1, 2: deleteUser of a user with N votes, beside its floor.
async fn delete_row(b: &Bench, policy: VotePolicy, votes: i64, runs: usize) -> Row {
    let name = policy.graphql_name();
    let q = format!("mutation($id: ID!) {{ deleteUser(id: $id, policy: {name}) {{ deleted }} }}");
    let mut times = Paired::default();
    for run in 0..runs {
        for side in Side::order(run) {
            let v = b.victim(votes).await;
            let took = match side {
                Side::Memberdesk => ms(b.gql(&q, user_id_var(v))).await,
                Side::Floor => ms(floor_delete(&b.pool, v, policy)).await,
            };
            times.push(side, took);
        }
        b.sql("DELETE FROM votes WHERE user_id IS NULL").await; // keep the table the same size
    }
    times.row(
        format!("deleteUser {name}, user with {votes} votes"),
        Target::ratio_max_from(1.3, votes, 100_000, "<= 1.3 from 100k"),
    )
}

/// 3: the plan of a deletion, as a query and as a dry run, against one floor.
async fn plan_rows(b: &Bench, votes: i64, runs: usize) -> Vec<Row> {
    let v = b.victim(votes).await;
    let (mut plan, mut dry, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let pq = "query($id: ID!) { deletionPlan(userId: $id, policy: CASCADE) { allowed deleted { relation count } detached { relation count } token } }";
    let dq = "mutation($id: ID!) { deleteUser(id: $id, policy: CASCADE, dryRun: true) { deleted plan { token } } }";
    b.gql(pq, user_id_var(v)).await; // warm-up
    for _ in 0..runs.max(5) {
        plan.push(ms(b.gql(pq, user_id_var(v))).await);
        dry.push(ms(b.gql(dq, user_id_var(v))).await);
        floor.push(ms(floor_plan(&b.pool, v)).await);
    }
    let target = || Target::ratio_max_from(1.5, votes, 1_000_000, "<= 1.5 at 1M");
    let floor = median(floor);
    let rows = vec![
        Row::new(
            format!("deletionPlan, user with {votes} votes"),
            "ms",
            median(plan),
        )
        .vs(floor)
        .judged_by(target()),
        Row::new(
            format!("deleteUser dryRun, user with {votes} votes"),
            "ms",
            median(dry),
        )
        .vs(floor)
        .judged_by(target()),
    ];
    b.drop_votes(v).await;
    rows
}

/// 4: anonymizeUser must not grow with the votes; and beside its floor.
async fn anonymize_rows(b: &Bench, votes: i64, runs: usize) -> Vec<Row> {
    let small = votes.min(1_000);
    let (mut with_small, mut with_n, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let q = "mutation($id: ID!) { anonymizeUser(id: $id) { sessionsRevoked } }";
    for _ in 0..runs {
        for (victim_votes, times) in [(small, &mut with_small), (votes, &mut with_n)] {
            let v = b.victim(victim_votes).await;
            times.push(ms(b.gql(q, user_id_var(v))).await);
            b.drop_votes(v).await;
        }
        let v = b.victim(votes).await;
        floor.push(ms(floor_anonymize(&b.pool, v)).await);
        b.drop_votes(v).await;
    }
    let with_n = median(with_n);
    vec![
        Row::new(
            format!("anonymizeUser, {votes} votes vs {small} votes"),
            "ms",
            with_n,
        )
        .vs(median(with_small))
        .judged_by(Target::ratio_max_from(
            1.5,
            votes,
            100_000,
            "<= 1.5 from 100k",
        )),
        Row::new(
            format!("anonymizeUser, user with {votes} votes vs floor"),
            "ms",
            with_n,
        )
        .vs(median(floor)),
    ]
}

/// 4b: anonymizeUser of a user named in N audit entries, each of which it
/// redacts, beside the same statements run directly.
async fn anonymize_audit_row(b: &Bench, entries: i64, runs: usize) -> Row {
    let q = "mutation($id: ID!) { anonymizeUser(id: $id) { receipt } }";
    let mut times = Paired::default();
    for run in 0..runs {
        for side in Side::order(run) {
            let v = b.audit_victim(entries).await;
            let took = match side {
                Side::Memberdesk => ms(b.gql(q, user_id_var(v))).await,
                Side::Floor => ms(floor_anonymize(&b.pool, v)).await,
            };
            times.push(side, took);
        }
    }
    times.row(
        format!("anonymizeUser, user with {entries} audit entries vs floor"),
        Target::ratio_max_from(2.0, entries, 100_000, "<= 2 from 100k"),
    )
}

// ---- deleting records: a question, a bulk selection of users ----

/// 10 to 14: plans and deletions of a question with N votes and of a bulk
/// selection of N / 100 users holding N votes, and the server's peak RSS
/// during all of them.
async fn record_rows(b: &Bench, size: &Size, runs: usize) -> Vec<Row> {
    reset_peak_rss(b.server_pid);
    let mut rows = vec![
        question_plan_row(b, size, runs).await,
        question_delete_row(b, size, runs).await,
        bulk_plan_row(b, size.votes, runs).await,
        bulk_delete_row(b, size.votes, runs).await,
    ];
    rows.push(
        Row::new(
            "peak RSS of the server, deleting records (10 to 13)",
            "MiB",
            peak_rss_mib(b.server_pid),
        )
        .judged_by(Target::ValueMax(100.0)),
    );
    rows
}

/// A fresh question with N votes on its two choices: one each by members
/// 1, 2, … (member n has id n), detached beyond their number (one vote per
/// user and question; a detached vote's user was deleted); settled.
/// Returns its id.
async fn question_with_votes(b: &Bench, size: &Size) -> i64 {
    let id: i64 =
        sqlx::query_scalar("INSERT INTO questions (text) VALUES ('bench question') RETURNING id")
            .fetch_one(&b.pool)
            .await
            .unwrap();
    for sql in [
        "INSERT INTO choices (question_id, text, position) VALUES ($1, 'Yes', 1), ($1, 'No', 2)",
        "INSERT INTO votes (choice_id, question_id, user_id)
         SELECT c.id, $1, CASE WHEN n <= $3 THEN n END
           FROM generate_series(1, $2) n JOIN choices c ON c.question_id = $1 AND c.position = 1 + n % 2",
    ] {
        sqlx::query(sql)
            .bind(id)
            .bind(size.votes)
            .bind(size.users)
            .execute(&b.pool)
            .await
            .unwrap();
    }
    settle(&b.pool, "votes, choices, questions").await;
    id
}

/// 10: the plan of deleting a question with N votes, against the counting floor.
async fn question_plan_row(b: &Bench, size: &Size, runs: usize) -> Row {
    let question = question_with_votes(b, size).await;
    let q = "query($id: ID!) { deletionPlan(id: $id, policy: CASCADE) { allowed deleted { relation count } token } }";
    let vars = json!({ "id": enc_question(question) });
    b.gql(q, vars.clone()).await; // warm-up
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(5) {
        ours.push(ms(b.gql(q, vars.clone())).await);
        floor.push(ms(floor_question_plan(&b.pool, question)).await);
    }
    floor_delete_question(&b.pool, question).await;
    Row::new(
        format!("deletionPlan, question with {} votes", size.votes),
        "ms",
        median(ours),
    )
    .vs(median(floor))
    .judged_by(Target::ratio_max_from(
        2.0,
        size.votes,
        1_000_000,
        "<= 2 at 1M",
    ))
}

/// 11: deleteQuestion CASCADE of a question with N votes, beside its floor.
async fn question_delete_row(b: &Bench, size: &Size, runs: usize) -> Row {
    let q = "mutation($id: ID!) { deleteQuestion(id: $id, policy: CASCADE) { deleted } }";
    let mut times = Paired::default();
    for run in 0..runs {
        for side in Side::order(run) {
            let question = question_with_votes(b, size).await;
            let took = match side {
                Side::Memberdesk => ms(b.gql(q, json!({ "id": enc_question(question) }))).await,
                Side::Floor => ms(floor_delete_question(&b.pool, question)).await,
            };
            times.push(side, took);
        }
    }
    times.row(
        format!("deleteQuestion CASCADE, question with {} votes", size.votes),
        Target::ratio_max_from(1.3, size.votes, 1_000_000, "<= 1.3 at 1M"),
    )
}

/// `votes / 100` fresh users with 100 votes each (questions 1 to 100), a
/// group and a session each; settled. Returns their ids.
async fn bulk_victims(b: &Bench, votes: i64) -> Vec<i64> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, username_key)
         SELECT 'bulk' || k || '-' || n, 'bulk' || k || '-' || n
           FROM (SELECT nextval('bench_victims') AS k) s, generate_series(1, $1) n RETURNING id",
    )
    .bind((votes / 100).max(1))
    .fetch_all(&b.pool)
    .await
    .unwrap();
    for sql in [
        "INSERT INTO votes (choice_id, question_id, user_id)
         SELECT c.id, c.question_id, u FROM unnest($1::bigint[]) u
           JOIN choices c ON c.position = 1 AND c.question_id <= 100",
        "INSERT INTO user_groups (user_id, group_id) SELECT u, 1 FROM unnest($1::bigint[]) u",
        "INSERT INTO sessions (token_hash, user_id, expires_at)
         SELECT sha256(('bulk' || u)::bytea), u, now() + interval '1 day' FROM unnest($1::bigint[]) u",
    ] {
        sqlx::query(sql).bind(&ids).execute(&b.pool).await.unwrap();
    }
    settle(&b.pool, "votes, users, sessions, user_groups").await;
    ids
}

fn user_ids_var(ids: &[i64]) -> Value {
    json!({ "ids": ids.iter().map(|id| enc(*id)).collect::<Vec<_>>() })
}

/// 12: the preview of deleting a bulk selection (`deleteUsers(dryRun: true)`)
/// of N / 100 users holding N votes, against the counting floor.
async fn bulk_plan_row(b: &Bench, votes: i64, runs: usize) -> Row {
    let ids = bulk_victims(b, votes).await;
    let q = "mutation($ids: [ID!]) { deleteUsers(ids: $ids, policy: CASCADE, dryRun: true) {
        plan { targetCount deleted { relation count } token } } }";
    let vars = user_ids_var(&ids);
    b.gql(q, vars.clone()).await; // warm-up
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(5) {
        ours.push(ms(b.gql(q, vars.clone())).await);
        floor.push(ms(floor_bulk_plan(&b.pool, &ids)).await);
    }
    floor_delete_users(&b.pool, &ids).await;
    let scenario = format!("deleteUsers dryRun, {} users with {votes} votes", ids.len());
    Row::new(scenario, "ms", median(ours))
        .vs(median(floor))
        .judged_by(Target::ratio_max_from(2.0, votes, 1_000_000, "<= 2 at 1M"))
}

/// 13: deleteUsers CASCADE of N / 100 users holding N votes, beside its floor.
async fn bulk_delete_row(b: &Bench, votes: i64, runs: usize) -> Row {
    let q = "mutation($ids: [ID!]) { deleteUsers(ids: $ids, policy: CASCADE) { plan { targetCount } } }";
    let mut times = Paired::default();
    let mut users = 0;
    for run in 0..runs {
        for side in Side::order(run) {
            let ids = bulk_victims(b, votes).await;
            users = ids.len();
            let took = match side {
                Side::Memberdesk => ms(b.gql(q, user_ids_var(&ids))).await,
                Side::Floor => ms(floor_delete_users(&b.pool, &ids)).await,
            };
            times.push(side, took);
        }
    }
    times.row(
        format!("deleteUsers CASCADE, {users} users with {votes} votes"),
        Target::ratio_max_from(1.3, votes, 1_000_000, "<= 1.3 at 1M"),
    )
}

/// Questions archived long ago for each measurement of `purge-archived`.
const PURGED: i64 = 1_000;

/// [`PURGED`] fresh questions archived 100 days ago, two choices each, with
/// N votes among them (N / 1,000 each: by members 1, 2, … while there are
/// members, detached beyond); settled.
async fn archived_for_purge(b: &Bench, size: &Size) {
    sqlx::query(
        "WITH q AS (
             INSERT INTO questions (text, archived_at)
             SELECT 'archived ' || n, now() - interval '100 days' FROM generate_series(1, $1) n
             RETURNING id),
         c AS (
             INSERT INTO choices (question_id, text, position)
             SELECT q.id, t, p FROM q, (VALUES ('Yes', 1), ('No', 2)) x(t, p)
             RETURNING id, question_id, position)
         INSERT INTO votes (choice_id, question_id, user_id)
         SELECT c.id, c.question_id, CASE WHEN k <= $3 THEN k END
           FROM c, generate_series(1, $2) k WHERE c.position = 1 + k % 2",
    )
    .bind(PURGED)
    .bind((size.votes / PURGED).max(1))
    .bind(size.users)
    .execute(&b.pool)
    .await
    .unwrap();
    settle(&b.pool, "votes, choices, questions").await;
}

/// `memberdesk purge-archived --older-than-days 30` as cron runs it: the
/// binary, end to end (start, connect, check the migrations, purge).
fn purge_archived(url: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args(["purge-archived", "--older-than-days", "30"])
        .env("DATABASE_URL", url)
        .env("MEMBERDESK_LOG", "error")
        .stdout(Stdio::null())
        .status()
        .expect("memberdesk purge-archived");
    assert!(status.success(), "purge-archived failed");
}

/// 15: `purge-archived` of 1,000 questions holding N votes, beside its floor.
async fn purge_row(b: &Bench, size: &Size, runs: usize) -> Row {
    let mut times = Paired::default();
    for run in 0..runs {
        for side in Side::order(run) {
            archived_for_purge(b, size).await;
            let took = match side {
                Side::Memberdesk => ms(async { purge_archived(&b.url) }).await,
                Side::Floor => ms(floor_purge(&b.pool)).await,
            };
            times.push(side, took);
        }
    }
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM questions WHERE archived_at IS NOT NULL")
            .fetch_one(&b.pool)
            .await
            .unwrap();
    assert_eq!(left, 0, "every archived question was purged");
    // Judged where the deletion outweighs what a command costs to start
    // (a process, a connection, the migration check): with N = 1M votes.
    times.row(
        format!(
            "purge-archived, {PURGED} questions with {} votes",
            size.votes
        ),
        Target::ratio_max_from(1.5, size.votes, 1_000_000, "<= 1.5 at 1M"),
    )
}

/// 5: bulk deactivation of a dormant cohort (a tenth of the users, each in
/// 3 groups), a fresh cohort for every measurement, beside its floor.
async fn bulk_deactivate_row(b: &Bench, size: &Size, runs: usize) -> Row {
    let cohort = (size.users / 10).min(10_000);
    let cohorts = ((size.users - 100 - SINGLE_DEACTIVATIONS) / cohort) as usize;
    let q = format!(
        "mutation {{ deactivateUsers(filter: {{ isActive: true, lastLoginBefore: \"{DORMANT_BEFORE}\" }}) {{ skipped {{ code }} }} }}"
    );
    let mut times = Paired::default();
    let sides = (0..runs.min(cohorts / 2)).flat_map(Side::order);
    for (k, side) in sides.enumerate() {
        make_dormant(b, 101 + k as i64 * cohort, cohort).await;
        let took = match side {
            Side::Memberdesk => ms(b.gql(&q, json!({}))).await,
            Side::Floor => {
                ms(async { assert_eq!(floor_deactivate_dormant(&b.pool).await as i64, cohort) })
                    .await
            }
        };
        times.push(side, took);
    }
    times.row(
        format!(
            "deactivateUsers by filter, {cohort} of {} users in 3 groups",
            size.users
        ),
        Target::ratio_max_from(1.5, cohort, 10_000, "<= 1.5 at 10k"),
    )
}

/// Makes `count` users from id `from` on dormant (last login in 2001).
async fn make_dormant(b: &Bench, from: i64, count: i64) {
    b.sql(&format!(
        "UPDATE users SET last_login = '2001-01-01' WHERE id BETWEEN {from} AND {}",
        from + count - 1
    ))
    .await;
    settle(&b.pool, "users, user_groups").await;
}

/// 6: deactivateUser, one at a time, end to end, on the last users.
async fn single_deactivate_rows(b: &Bench, users: i64) -> Vec<Row> {
    let mut latencies = Vec::new();
    let q =
        "mutation($id: ID!) { deactivateUser(id: $id) { sessionsRevoked removedGroups { name } } }";
    for id in users - SINGLE_DEACTIVATIONS + 1..=users {
        latencies.push(ms(b.gql(q, user_id_var(id))).await);
    }
    latencies.sort_by(f64::total_cmp);
    let scenario =
        |q| format!("deactivateUser single over HTTP: {q} ({SINGLE_DEACTIVATIONS} users)");
    vec![
        Row::new(scenario("p50"), "ms", percentile(&latencies, 0.5)),
        Row::new(scenario("p99"), "ms", percentile(&latencies, 0.99)),
    ]
}

/// 16: what the webhook outbox costs a bulk deactivation. The same
/// `deactivateUsers` of a fresh cohort of N / 100 users over HTTP, with an
/// endpoint subscribed to every event (each audit entry queues a delivery in
/// the transaction) on the "memberdesk" side and with none on the "floor"
/// side, alternating. The cohorts are the users just below the last
/// [`SINGLE_DEACTIVATIONS`], which the deactivation scenarios leave alone.
async fn outbox_row(b: &Bench, size: &Size, runs: usize) -> Row {
    let cohort = (size.users / 100).max(1);
    let pairs = runs.max(5) as i64;
    let first = size.users - SINGLE_DEACTIVATIONS - 2 * pairs * cohort + 1;
    let q = format!(
        "mutation {{ deactivateUsers(filter: {{ isActive: true, lastLoginBefore: \"{DORMANT_BEFORE}\" }}) {{ skipped {{ code }} }} }}"
    );
    let mut times = Paired::default();
    let sides = (0..pairs as usize).flat_map(Side::order);
    for (k, side) in sides.enumerate() {
        make_dormant(b, first + k as i64 * cohort, cohort).await;
        if let Side::Memberdesk = side {
            subscribe_to_every_event(&b.pool).await;
        }
        times.push(side, ms(b.gql(&q, json!({}))).await);
        b.sql("DELETE FROM webhook_attempts; DELETE FROM webhook_deliveries; DELETE FROM webhooks")
            .await;
    }
    times.row(
        format!("deactivateUsers of {cohort} users, webhook outbox vs none"),
        Target::ratio_max_from(1.1, cohort, 1_000, "<= 1.1 at 1k"),
    )
}

/// An endpoint for every event (`--webhook`, scenario 16), at an address
/// where nothing listens: each attempt fails at once (connection refused)
/// and waits for its retry, so only the outbox is measured.
async fn subscribe_to_every_event(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO webhooks (url, events, secret)
         SELECT 'https://127.0.0.1:9/', array_agg(event), 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
           FROM webhook_events",
    )
    .execute(pool)
    .await
    .expect("register the benchmark's webhook");
}

/// 17: whether delivering a bulk deactivation's events slows the API. The
/// users page under the read load, right after `deactivateUsers` of a fresh
/// cohort of `min(N, 10k)` users, with an endpoint subscribed to every event
/// (a receiver in this process answering 204) on the "memberdesk" side, so
/// the worker delivers the cohort's events during the load, and with none
/// on the "floor" side, alternating. Also how long the deliveries took.
async fn delivery_rows(b: &Bench, size: &Size, runs: usize) -> Vec<Row> {
    let cohort = size.users.min(10_000);
    let receiver = Receiver::start().await;
    let page = format!("{}/graphql", b.base);
    read_load(&b.http, &page, &b.token, PAGE, 1).await; // warm-up
    let mut sides = DeliverySides::default();
    for (k, side) in (0..runs).flat_map(Side::order).enumerate() {
        let prefix = format!("outbox{k}-");
        add_cohort(b, &prefix, cohort).await;
        if let Side::Memberdesk = side {
            subscribe_receiver(&b.pool, &receiver.url).await;
        }
        let before = receiver.count();
        let started = Instant::now();
        let q = format!(
            "mutation {{ deactivateUsers(filter: {{ isActive: true, search: \"{prefix}\" }}) {{ skipped {{ code }} }} }}"
        );
        b.gql(&q, json!({})).await;
        let load = read_load(&b.http, &page, &b.token, PAGE, size.read_secs).await;
        match side {
            Side::Memberdesk => {
                let in_window = receiver.count() - before;
                receiver.wait_for(before + cohort as usize).await;
                let took = started.elapsed().as_secs_f64();
                eprintln!("{cohort} deliveries in {took:.1} s, {in_window} during the read load");
                sides.busy.push(load);
                sides.took.push(took);
                sides.in_window.push(in_window as f64);
            }
            Side::Floor => sides.quiet.push(load),
        }
        b.sql("DELETE FROM webhook_attempts; DELETE FROM webhook_deliveries; DELETE FROM webhooks")
            .await;
    }
    sides.rows(cohort)
}

/// Scenario 17's read loads and delivery times, per side.
#[derive(Default)]
struct DeliverySides {
    busy: Vec<Load>,
    quiet: Vec<Load>,
    /// Seconds from the deactivation to the last delivery.
    took: Vec<f64>,
    /// Deliveries made during the read load.
    in_window: Vec<f64>,
}

impl DeliverySides {
    fn rows(self, cohort: i64) -> Vec<Row> {
        let of = |loads: &[Load], f: fn(&Load) -> f64| median(loads.iter().map(f).collect());
        let (busy, quiet) = (&self.busy, &self.quiet);
        let page = format!("users page, {cohort} webhook deliveries going vs none");
        let p50 = Target::ratio_max_from(1.1, cohort, 10_000, "<= 1.1 at 10k");
        let throughput = if cohort >= 10_000 {
            Target::RatioMin(0.9)
        } else {
            Target::Elsewhere(">= 0.9 at 10k")
        };
        vec![
            Row::new(format!("{page}: throughput"), "req/s", of(busy, |l| l.rps))
                .vs(of(quiet, |l| l.rps))
                .judged_by(throughput),
            Row::new(format!("{page}: p50"), "ms", of(busy, |l| l.p50))
                .vs(of(quiet, |l| l.p50))
                .judged_by(p50),
            Row::new(format!("{page}: p99"), "ms", of(busy, |l| l.p99)).vs(of(quiet, |l| l.p99)),
            Row::new(
                format!("{cohort} webhook deliveries to a local receiver: all in"),
                "s",
                median(self.took),
            ),
            Row::new(
                format!("  of them during the read load ({CLIENTS} clients)"),
                "",
                median(self.in_window),
            ),
        ]
    }
}

/// `count` fresh active members named `<prefix><n>`, each in 3 groups.
async fn add_cohort(b: &Bench, prefix: &str, count: i64) {
    b.sql(&format!(
        "WITH u AS (
             INSERT INTO users (username, username_key, password_hash, last_login)
             SELECT '{prefix}' || n, '{prefix}' || n, NULL, now() FROM generate_series(1, {count}) n
             RETURNING id
         )
         INSERT INTO user_groups (user_id, group_id)
         SELECT u.id, (u.id + k) % 10 + 1 FROM u, (VALUES (0), (3), (6)) k(k)"
    ))
    .await;
    settle(&b.pool, "users, user_groups").await;
}

/// An endpoint for every event at the bench's own receiver.
async fn subscribe_receiver(pool: &PgPool, url: &str) {
    sqlx::query(
        "INSERT INTO webhooks (url, events, secret)
         SELECT $1, array_agg(event), 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' FROM webhook_events",
    )
    .bind(url)
    .execute(pool)
    .await
    .expect("register the receiver");
}

/// A webhook receiver on its own thread and runtime (so it takes nothing
/// from the load generator's): answers every POST with 204 and counts them.
struct Receiver {
    url: String,
    received: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> Receiver {
        let port = free_port();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let hook = poem::endpoint::make_sync(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
                poem::http::StatusCode::NO_CONTENT
            });
            let app = poem::Route::new()
                .at("/hook", poem::post(hook))
                .at("/readyz", poem::get(poem::endpoint::make_sync(|_| "ok")));
            let listener = poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"));
            rt.block_on(poem::Server::new(listener).run(app))
        });
        ready(port).await;
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
        }
    }

    fn count(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until `n` deliveries arrived (at most 10 minutes), then a
    /// second more: none may arrive twice.
    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(self.count(), n, "deliveries sent twice");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(port) = floor_only() {
        let url = std::env::var("DATABASE_URL").expect("--serve-floor needs DATABASE_URL");
        let floor = std::thread::spawn(move || serve_floor(url, port));
        floor.join().unwrap().expect("the floor server");
        return;
    }
    let args = args();
    let mut cleanup = Cleanup::for_this_process();
    let bench = setup(&args.size, &mut cleanup).await;
    if args.webhook {
        subscribe_to_every_event(&bench.pool).await;
    }
    let rows = run_scenarios(&bench, &args).await;
    report(&bench, &args, &rows).await;
    drop(bench);
    drop(cleanup);
}
