//! memberdesk's benchmark suite: a real `memberdesk serve`, over HTTP, against
//! the raw-SQL floor.
//!
//! `cargo bench --bench memberdesk -- [--size small|medium|large] [--runs R] [--json FILE]`
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
//! The bench creates `memberdesk_bench_<pid>` on `MEMBERDESK_TEST_DATABASE_URL`'s
//! server (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops it
//! at the end, also when a scenario panics.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memberdesk::store::{groups, permissions, polls, users};
use poem::web::{Data, Json};
use poem::{EndpointExt, http::HeaderMap};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Executor, PgPool};

const PASSWORD: &str = "bench passphrase that is long";
const PAGE: &str = "query { users(first: 50) { edges { node { username groups { name } allPermissions voteCount } } } }";
const CLIENTS: usize = 32;

struct Size {
    name: String,
    votes: i64,
    users: i64,
    read_secs: u64,
}

struct Args {
    size: Size,
    runs: usize,
    json: Option<String>,
}

fn args() -> Args {
    let (mut size, mut runs, mut json) = ("small".to_owned(), 3, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--size" => size = value(),
            "--runs" => runs = value().parse().expect("--runs R"),
            "--json" => json = Some(value()),
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other} (use --size, --runs, --json)"),
        }
    }
    let (votes, users, read_secs) = match size.as_str() {
        "small" => (1_000, 2_000, 5),
        "medium" => (100_000, 100_000, 15),
        "large" => (1_000_000, 100_000, 15),
        other => panic!("--size {other}: use small, medium or large"),
    };
    assert!(runs >= 1, "--runs must be at least 1");
    let size = Size {
        name: size,
        votes,
        users,
        read_secs,
    };
    Args { size, runs, json }
}

/// Stops the server and drops the database, also when a scenario panics.
struct Cleanup {
    admin_url: String,
    db: String,
    server: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("kill").arg(server.id().to_string()).status();
            let _ = server.wait();
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
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
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
        self.sql("VACUUM ANALYZE votes, users, sessions, user_groups")
            .await;
        self.sql("CHECKPOINT").await;
        id
    }
}

fn enc(id: i64) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::User, id)
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

async fn setup(size: &Size, cleanup: &mut Cleanup) -> Bench {
    let url = format!(
        "{}/{}",
        cleanup.admin_url.rsplit_once('/').unwrap().0,
        cleanup.db
    );
    let server_pool = memberdesk::db::connect(&url, true).await.expect("connect");
    memberdesk::db::migrate(&server_pool, &url)
        .await
        .expect("migrate");
    server_pool.close().await;
    // The bench's own connections have no statement timeout (the server's is
    // 30 s): seeding a million votes may take longer, and the floor has none.
    let pool = PgPool::connect(&url).await.expect("connect");
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
        .execute(&pool)
        .await
        .expect("seed");
    for sql in ["VACUUM ANALYZE", "CHECKPOINT"] {
        pool.execute(sql).await.expect(sql);
    }
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());

    let base = spawn_server(&url, cleanup).await;
    let http = reqwest::Client::new();
    let login =
        "mutation($p: String!) { login(username: \"bench-admin\", password: $p) { token } }";
    let resp: Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": login, "variables": { "p": PASSWORD } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = resp["data"]["login"]["token"]
        .as_str()
        .expect("login")
        .to_owned();
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

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

/// Starts `memberdesk serve`, owned by the cleanup; returns its base URL.
async fn spawn_server(url: &str, cleanup: &mut Cleanup) -> String {
    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", url)
        .env("MEMBERDESK_LOG", "error")
        // The storm's 64 logins all come from 127.0.0.1, and an attempt counts
        // against the address while it is in flight: the default of 50 would
        // refuse some as RATE_LIMITED. Real storms come from many addresses.
        .env("MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS", "1000000")
        .stdout(Stdio::null())
        .spawn()
        .expect("memberdesk serve");
    cleanup.server = Some(server);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz")).await;
    base
}

// ---- floors: the same effect, straight SQL, one connection, one transaction ----

async fn floor_delete(pool: &PgPool, user: i64, cascade: bool) {
    let mut tx = pool.begin().await.unwrap();
    let votes = if cascade {
        "DELETE FROM votes WHERE user_id = $1"
    } else {
        "UPDATE votes SET user_id = NULL WHERE user_id = $1"
    };
    for sql in [
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        "INSERT INTO audit_entries (action, actor_username, target_user_id, target_repr)
         SELECT 'USER_DELETED', 'bench-admin', id, username FROM users WHERE id = $1",
        votes,
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

async fn floor_anonymize(pool: &PgPool, user: i64) {
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        "UPDATE users SET username = 'deleted-user-' || id, username_key = 'deleted-user-' || id,
             email = '', first_name = '', last_name = '', password_hash = NULL, is_active = false,
             is_staff = false, is_superuser = false, deactivation_reason = NULL, anonymized_at = now()
         WHERE id = $1",
        "DELETE FROM user_groups WHERE user_id = $1",
        "DELETE FROM user_permissions WHERE user_id = $1",
        "UPDATE deactivations SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL",
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        "UPDATE audit_entries SET actor_username = 'deleted-user-' || $1::bigint WHERE actor_id = $1",
        "UPDATE audit_entries SET target_repr = 'deleted-user-' || $1::bigint WHERE target_user_id = $1",
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
    let (groups, perms, votes) = tokio::join!(
        groups::for_users(pool, &ids),
        permissions::effective_keys_for_users(pool, &ids),
        polls::vote_counts_by_user(pool, &ids)
    );
    let (groups, perms, votes) = (
        groups.map_err(internal)?,
        perms.map_err(internal)?,
        votes.map_err(internal)?,
    );
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

/// Serves the floor on its own 2-thread runtime, like memberdesk's server.
async fn start_floor(url: String) -> String {
    let port = free_port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
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
    });
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz")).await;
    base
}

struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// `CLIENTS` tasks send the page back to back for `secs`; every latency is kept.
async fn read_load(http: &reqwest::Client, url: &str, token: &str, secs: u64) -> Load {
    let body = bytes_of(&json!({ "query": PAGE }));
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
    Check(&'static str, bool),
    RatioMax(f64),
    RatioMin(f64),
    ValueMax(f64),
}

struct Row {
    scenario: String,
    unit: &'static str,
    memberdesk: f64,
    floor: Option<f64>,
    target: Target,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.floor.map(|f| self.memberdesk / f)
    }
    fn target(&self) -> String {
        match self.target {
            Target::Report => "report".into(),
            Target::Elsewhere(t) | Target::Check(t, _) => t.into(),
            Target::RatioMax(x) => format!("ratio <= {x}"),
            Target::RatioMin(x) => format!("ratio >= {x}"),
            Target::ValueMax(x) => format!("<= {x} {}", self.unit),
        }
    }
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::Report | Target::Elsewhere(_) => None,
            Target::Check(_, met) => Some(met),
            Target::RatioMax(x) => self.ratio().map(|r| r <= x),
            Target::RatioMin(x) => self.ratio().map(|r| r >= x),
            Target::ValueMax(x) => Some(self.memberdesk <= x),
        }
    }
}

fn row(
    scenario: String,
    unit: &'static str,
    memberdesk: f64,
    floor: Option<f64>,
    target: Target,
) -> Row {
    Row {
        scenario,
        unit,
        memberdesk,
        floor,
        target,
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

/// The SQL statements one page costs, for pages of 2, 10 and 50 users.
async fn count_page_statements(b: &Bench) -> Vec<usize> {
    // A second server that logs every statement as one JSON line on stderr.
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env("DATABASE_URL", &b.url)
        .env("MEMBERDESK_LOG", "warn,sqlx::query=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memberdesk serve");
    let lines = Arc::new(AtomicUsize::new(0));
    let (stderr, seen) = (server.stderr.take().unwrap(), lines.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("sqlx::query") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz")).await;
    let mut counts = Vec::new();
    for n in [2, 10, 50] {
        let q = PAGE.replace("first: 50", &format!("first: {n}"));
        let post = || {
            b.http
                .post(format!("{base}/graphql"))
                .bearer_auth(&b.token)
                .json(&json!({ "query": q }))
        };
        post().send().await.unwrap().bytes().await.unwrap(); // warm the pool and the statement cache
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = lines.load(Ordering::SeqCst);
        post().send().await.unwrap().bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        counts.push(lines.load(Ordering::SeqCst) - before);
    }
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    counts
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let admin_url = std::env::var("MEMBERDESK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut cleanup = Cleanup {
        admin_url,
        db: format!("memberdesk_bench_{}", std::process::id()),
        server: None,
    };
    let b = setup(&a.size, &mut cleanup).await;
    let (n, size, runs) = (a.size.votes, a.size.name.as_str(), a.runs);
    let mut rows = Vec::new();
    let started = Instant::now();

    // 7, 8, 9: reads first, so the server's peak RSS is the read load's.
    let floor_base = start_floor(b.url.clone()).await;
    let ours_url = format!("{}/graphql", b.base);
    let floor_url = format!("{floor_base}/graphql");
    let post = |url: &str| {
        b.http
            .post(url)
            .bearer_auth(&b.token)
            .json(&json!({ "query": PAGE }))
            .send()
    };
    let ours_page: Value = post(&ours_url).await.unwrap().json().await.unwrap();
    let floor_json: Value = post(&floor_url).await.unwrap().json().await.unwrap();
    assert_eq!(
        ours_page["data"]["users"]["edges"].as_array().map(Vec::len),
        Some(50),
        "{ours_page}"
    );
    if ours_page != floor_json {
        eprintln!(
            "warning: the floor handler's page differs from memberdesk's:\n{ours_page}\n{floor_json}"
        );
    }
    let secs = a.size.read_secs;
    read_load(&b.http, &floor_url, &b.token, 1).await; // warm-up, both
    read_load(&b.http, &ours_url, &b.token, 1).await;
    let floor = read_load(&b.http, &floor_url, &b.token, secs).await;
    reset_peak_rss(b.server_pid);
    let ours = read_load(&b.http, &ours_url, &b.token, secs).await;
    let rss = peak_rss_mib(b.server_pid);
    let users_n = a.size.users;
    let page = format!("users(first: 50) page, {users_n} users, {CLIENTS} clients");
    rows.push(row(
        format!("{page}: throughput"),
        "req/s",
        ours.rps,
        Some(floor.rps),
        Target::RatioMin(0.5),
    ));
    rows.push(row(
        format!("{page}: p50"),
        "ms",
        ours.p50,
        Some(floor.p50),
        Target::Report,
    ));
    rows.push(row(
        format!("{page}: p99"),
        "ms",
        ours.p99,
        Some(floor.p99),
        Target::Report,
    ));
    rows.push(row(
        "same page vs PostGraphile 5's reported 1,400 req/s (other run)".into(),
        "req/s",
        ours.rps,
        Some(1400.0),
        Target::RatioMin(2.0),
    ));
    rows.push(row(
        "peak RSS of the server, read load".into(),
        "MiB",
        rss,
        None,
        Target::ValueMax(100.0),
    ));

    // 8: 64 clients logging in back to back for the whole read window.
    let storm_deadline = Instant::now() + Duration::from_secs(secs);
    let logins = Arc::new(AtomicUsize::new(0));
    let storm: Vec<_> = (1..=64)
        .map(|k| {
            let (http, url, logins) = (b.http.clone(), ours_url.clone(), logins.clone());
            tokio::spawn(async move {
                let q = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";
                while Instant::now() < storm_deadline {
                    let body = json!({ "query": q, "variables": { "u": format!("member{k}"), "p": PASSWORD } });
                    let resp: Value = http.post(&url).json(&body).send().await.unwrap().json().await.unwrap();
                    assert!(resp["data"]["login"]["token"].is_string(), "{resp}");
                    logins.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let stormy = read_load(&b.http, &ours_url, &b.token, secs).await;
    for t in storm {
        t.await.unwrap();
    }
    let storm_rss = peak_rss_mib(b.server_pid);
    rows.push(row(
        "read p99 during a 64-client login storm / without".into(),
        "ms",
        stormy.p99,
        Some(ours.p99),
        Target::RatioMax(3.0),
    ));
    rows.push(row(
        "login storm: logins/s (64 clients, argon2id)".into(),
        "/s",
        logins.load(Ordering::Relaxed) as f64 / secs as f64,
        None,
        Target::Report,
    ));
    rows.push(row(
        "read throughput during the storm".into(),
        "req/s",
        stormy.rps,
        Some(ours.rps),
        Target::Report,
    ));
    rows.push(row(
        "peak RSS of the server, read load + login storm".into(),
        "MiB",
        storm_rss,
        None,
        Target::Report,
    ));

    let counts = count_page_statements(&b).await;
    let constant = counts.iter().all(|c| *c == counts[0]);
    rows.push(row(
        format!("SQL statements per page, first 2/10/50: {counts:?}"),
        "",
        counts[2] as f64,
        Some(5.0),
        Target::Check("constant", constant),
    ));
    eprintln!("reads done at {:.0} s", started.elapsed().as_secs_f64());

    // 1, 2: deleteUser of a user with N votes.
    for (policy, cascade) in [("CASCADE", true), ("SET_NULL", false)] {
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        let q =
            format!("mutation($id: ID!) {{ deleteUser(id: $id, policy: {policy}) {{ deleted }} }}");
        for run in 0..runs {
            for side in [run % 2, 1 - run % 2] {
                let v = b.victim(n).await;
                if side == 0 {
                    ours.push(ms(b.gql(&q, json!({ "id": enc(v) }))).await);
                } else {
                    floor.push(ms(floor_delete(&b.pool, v, cascade)).await);
                }
            }
            b.sql("DELETE FROM votes WHERE user_id IS NULL").await; // keep the table the same size
        }
        let target = if n >= 100_000 {
            Target::RatioMax(1.3)
        } else {
            Target::Elsewhere("<= 1.3 from 100k")
        };
        rows.push(row(
            format!("deleteUser {policy}, user with {n} votes"),
            "ms",
            median(ours),
            Some(median(floor)),
            target,
        ));
    }

    // 3: the plan of a deletion, as a query and as a dry run.
    let v = b.victim(n).await;
    let (mut plan, mut dry, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let pq = "query($id: ID!) { deletionPlan(userId: $id, policy: CASCADE) { allowed deleted { relation count } detached { relation count } token } }";
    let dq = "mutation($id: ID!) { deleteUser(id: $id, policy: CASCADE, dryRun: true) { deleted plan { token } } }";
    b.gql(pq, json!({ "id": enc(v) })).await; // warm-up
    for _ in 0..runs.max(5) {
        plan.push(ms(b.gql(pq, json!({ "id": enc(v) }))).await);
        dry.push(ms(b.gql(dq, json!({ "id": enc(v) }))).await);
        floor.push(ms(floor_plan(&b.pool, v)).await);
    }
    let plan_target = || match n {
        1_000_000.. => Target::RatioMax(1.5),
        _ => Target::Elsewhere("<= 1.5 at 1M"),
    };
    let floor = median(floor);
    rows.push(row(
        format!("deletionPlan, user with {n} votes"),
        "ms",
        median(plan),
        Some(floor),
        plan_target(),
    ));
    rows.push(row(
        format!("deleteUser dryRun, user with {n} votes"),
        "ms",
        median(dry),
        Some(floor),
        plan_target(),
    ));
    b.sql(&format!("DELETE FROM votes WHERE user_id = {v}"))
        .await;

    // 4: anonymizeUser must not grow with the votes.
    let small = n.min(1_000);
    let (mut with_small, mut with_n, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let q = "mutation($id: ID!) { anonymizeUser(id: $id) { sessionsRevoked } }";
    for _ in 0..runs {
        for (votes, times) in [(small, &mut with_small), (n, &mut with_n)] {
            let v = b.victim(votes).await;
            times.push(ms(b.gql(q, json!({ "id": enc(v) }))).await);
            b.sql(&format!("DELETE FROM votes WHERE user_id = {v}"))
                .await;
        }
        let v = b.victim(n).await;
        floor.push(ms(floor_anonymize(&b.pool, v)).await);
        b.sql(&format!("DELETE FROM votes WHERE user_id = {v}"))
            .await;
    }
    let with_n = median(with_n);
    rows.push(row(
        format!("anonymizeUser, {n} votes vs {small} votes"),
        "ms",
        with_n,
        Some(median(with_small)),
        match n {
            100_000.. => Target::RatioMax(1.5),
            _ => Target::Elsewhere("<= 1.5 from 100k"),
        },
    ));
    rows.push(row(
        format!("anonymizeUser, user with {n} votes vs floor"),
        "ms",
        with_n,
        Some(median(floor)),
        Target::Report,
    ));
    eprintln!("deletions done at {:.0} s", started.elapsed().as_secs_f64());

    // 5: bulk deactivation of a dormant cohort (a tenth of the users, each in 3 groups).
    let cohort = (a.size.users / 10).min(10_000);
    let single = 200;
    let cohorts = ((a.size.users - 100 - single) / cohort) as usize;
    let bulk_runs = runs.min(cohorts / 2);
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let q = "mutation { deactivateUsers(filter: { isActive: true, lastLoginBefore: \"2002-01-01T00:00:00Z\" }) { skipped { code } } }";
    for k in 0..bulk_runs * 2 {
        let from = 101 + k as i64 * cohort;
        b.sql(&format!(
            "UPDATE users SET last_login = '2001-01-01' WHERE id BETWEEN {from} AND {}",
            from + cohort - 1
        ))
        .await;
        b.sql("VACUUM ANALYZE users, user_groups").await;
        b.sql("CHECKPOINT").await;
        if (k + k / 2) % 2 == 0 {
            ours.push(ms(b.gql(q, json!({}))).await);
        } else {
            floor.push(
                ms(async { assert_eq!(floor_deactivate_dormant(&b.pool).await as i64, cohort) })
                    .await,
            );
        }
    }
    rows.push(row(
        format!("deactivateUsers by filter, {cohort} of {users_n} users in 3 groups"),
        "ms",
        median(ours),
        Some(median(floor)),
        match cohort {
            10_000.. => Target::RatioMax(1.5),
            _ => Target::Elsewhere("<= 1.5 at 10k"),
        },
    ));

    // 6: deactivateUser, one at a time, end to end.
    let mut latencies = Vec::new();
    let q =
        "mutation($id: ID!) { deactivateUser(id: $id) { sessionsRevoked removedGroups { name } } }";
    for id in a.size.users - single + 1..=a.size.users {
        latencies.push(ms(b.gql(q, json!({ "id": enc(id) }))).await);
    }
    latencies.sort_by(f64::total_cmp);
    rows.push(row(
        format!("deactivateUser single over HTTP: p50 ({single} users)"),
        "ms",
        percentile(&latencies, 0.5),
        None,
        Target::Report,
    ));
    rows.push(row(
        format!("deactivateUser single over HTTP: p99 ({single} users)"),
        "ms",
        percentile(&latencies, 0.99),
        None,
        Target::Report,
    ));
    eprintln!("done at {:.0} s", started.elapsed().as_secs_f64());

    print_table(size, &rows);
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    println!(
        "\n{version}; {} cores; {runs} runs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Some(path) = &a.json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({ "scenario": r.scenario, "size": size, "unit": r.unit, "memberdesk": r.memberdesk,
                        "floor": r.floor, "ratio": r.ratio(), "target": r.target(), "met": r.met() })
            })
            .collect();
        let doc = json!({ "size": size, "votes": n, "users": users_n, "runs": runs, "postgres": version, "rows": rows });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap())
            .expect("write --json file");
    }
    drop(b);
    drop(cleanup);
}
