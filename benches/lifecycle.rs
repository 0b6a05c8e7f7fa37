//! Lifecycle benchmarks: memberdesk over HTTP against the raw-SQL floor.
//!
//! Each scenario is timed through a real `memberdesk serve` (HTTP, JSON,
//! guards, audit) and side by side with its *floor*: the same effect on the
//! database done directly through one sqlx connection in one transaction, on
//! equivalent data built fresh for every run. The ratio memberdesk/floor is
//! what we track: absolute times on these shared machines are noise.
//!
//! `cargo bench --bench lifecycle -- [--votes N] [--users M] [--runs R] [--json FILE]`
//! (defaults: 1,000 votes, 2,000 users, 3 runs; see benches/README.md).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memberdesk::domain::Actor;
use memberdesk::domain::accounts::{self, NewUserInput};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Executor, PgPool};

const PASSWORD: &str = "bench passphrase that is long";

struct Args {
    votes: i64,
    users: i64,
    runs: usize,
    json: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        votes: 1_000,
        users: 2_000,
        runs: 3,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--votes" => a.votes = value().parse().expect("--votes N"),
            "--users" => a.users = value().parse().expect("--users M"),
            "--runs" => a.runs = value().parse().expect("--runs R"),
            "--json" => a.json = Some(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.runs >= 1 && a.votes >= 1 && a.users >= 10);
    a
}

struct Bench {
    pool: PgPool,
    http: reqwest::Client,
    url: String,
    token: String,
    server: Child,
    admin_url: String,
    db: String,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.server.id().to_string())
            .status();
        let _ = self.server.wait();
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db),
            ])
            .output();
    }
}

impl Bench {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let resp: Value = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        assert!(resp.get("errors").is_none(), "{resp}");
        resp["data"].clone()
    }

    /// A fresh member who voted in the first `votes` questions.
    async fn victim(&self, votes: i64) -> i64 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, username_key) SELECT 'v' || n, 'v' || n
               FROM (SELECT nextval('bench_victims') AS n) s RETURNING id",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO votes (choice_id, question_id, user_id)
             SELECT c.id, c.question_id, $1 FROM choices c WHERE c.question_id <= $2",
        )
        .bind(id)
        .bind(votes)
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query("VACUUM ANALYZE votes")
            .execute(&self.pool)
            .await
            .unwrap();
        id
    }
}

fn enc(id: i64) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::User, id)
}

async fn timed<F: std::future::Future<Output = T>, T>(f: F) -> Duration {
    let started = Instant::now();
    f.await;
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The floor of a deletion: the registry's statements, run directly.
async fn floor_delete(pool: &PgPool, user: i64, cascade: bool) {
    let mut tx = pool.begin().await.unwrap();
    let votes = if cascade {
        "DELETE FROM votes WHERE user_id = $1"
    } else {
        "UPDATE votes SET user_id = NULL WHERE user_id = $1"
    };
    for sql in [
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

struct Row {
    scenario: String,
    memberdesk: Duration,
    floor: Option<Duration>,
    target: &'static str,
    ratio_limit: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.floor
            .map(|f| self.memberdesk.as_secs_f64() / f.as_secs_f64().max(1e-9))
    }
}

async fn setup(a: &Args) -> Bench {
    let admin_url = std::env::var("MEMBERDESK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("memberdesk_bench_{}", std::process::id());
    let url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
    let server_pool = memberdesk::db::connect(&url, true).await.expect("connect");
    memberdesk::db::migrate(&server_pool, &url)
        .await
        .expect("migrate");
    server_pool.close().await;
    // The bench's own connections: seeding a million votes may take longer
    // than the server's statement timeout, and the floor has none either.
    let pool = PgPool::connect(&url).await.expect("connect");
    let seed = format!(
        "CREATE SEQUENCE bench_victims;
         INSERT INTO questions (text) SELECT 'Question ' || n FROM generate_series(1, {votes}) n;
         INSERT INTO choices (question_id, text, position) SELECT id, 'Yes', 1 FROM questions;
         INSERT INTO groups (name) VALUES ('g1'), ('g2'), ('g3');
         INSERT INTO users (username, username_key, last_login)
           SELECT 'member' || n, 'member' || n, now() FROM generate_series(1, {users}) n;
         INSERT INTO user_groups (user_id, group_id) SELECT u.id, g.id FROM users u, groups g;",
        votes = a.votes,
        users = a.users
    );
    pool.execute(sqlx::AssertSqlSafe(seed)).await.expect("seed");
    pool.execute("VACUUM ANALYZE").await.expect("vacuum");
    let input = NewUserInput {
        username: "bench-admin".into(),
        email: String::new(),
        password: SecretString::from(PASSWORD),
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
    };
    accounts::create_user(&pool, &Actor::System, input)
        .await
        .expect("admin");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("MEMBERDESK_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("memberdesk serve");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut bench = Bench {
        pool,
        http,
        url: format!("{base}/graphql"),
        token: String::new(),
        server,
        admin_url,
        db,
    };
    let login = bench
        .http
        .post(&bench.url)
        .json(&json!({ "query": "mutation($p: String!) { login(username: \"bench-admin\", password: $p) { token } }", "variables": { "p": PASSWORD } }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    bench.token = login["data"]["login"]["token"]
        .as_str()
        .expect("login")
        .to_owned();
    bench
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let b = setup(&a).await;
    let n = a.votes;
    let mut rows = Vec::new();

    for (policy, cascade) in [("CASCADE", true), ("SET_NULL", false)] {
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..a.runs {
            let v = b.victim(n).await;
            let q = format!(
                "mutation($id: ID!) {{ deleteUser(id: $id, policy: {policy}) {{ deleted }} }}"
            );
            ours.push(timed(b.gql(&q, json!({ "id": enc(v) }))).await);
            let v = b.victim(n).await;
            floor.push(timed(floor_delete(&b.pool, v, cascade)).await);
        }
        rows.push(Row {
            scenario: format!("deleteUser {policy}, user with {n} votes"),
            memberdesk: median(ours),
            floor: Some(median(floor)),
            target: "ratio <= 1.3",
            ratio_limit: Some(1.3),
        });
    }

    let v = b.victim(n).await;
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..a.runs {
        let q = "query($id: ID!) { deletionPlan(userId: $id, policy: CASCADE) { allowed deleted { relation count } token } }";
        ours.push(timed(b.gql(q, json!({ "id": enc(v) }))).await);
        let counts = "SELECT ARRAY[(SELECT count(*) FROM votes WHERE user_id = $1), (SELECT count(*) FROM questions WHERE created_by = $1),
            (SELECT count(*) FROM sessions WHERE user_id = $1), (SELECT count(*) FROM user_groups WHERE user_id = $1),
            (SELECT count(*) FROM user_permissions WHERE user_id = $1), (SELECT count(*) FROM deactivations WHERE user_id = $1),
            (SELECT count(*) FROM audit_entries WHERE actor_id = $1), (SELECT count(*) FROM audit_entries WHERE target_user_id = $1)]";
        floor.push(
            timed(async {
                sqlx::query_scalar::<_, Vec<i64>>(counts)
                    .bind(v)
                    .fetch_one(&b.pool)
                    .await
                    .unwrap()
            })
            .await,
        );
    }
    rows.push(Row {
        scenario: format!("deletionPlan, user with {n} votes"),
        memberdesk: median(ours),
        floor: Some(median(floor)),
        target: "ratio <= 1.5",
        ratio_limit: Some(1.5),
    });

    let (mut small, mut large) = (Vec::new(), Vec::new());
    let q = "mutation($id: ID!) { anonymizeUser(id: $id) { sessionsRevoked } }";
    for _ in 0..a.runs {
        let v = b.victim(n.min(1_000)).await;
        small.push(timed(b.gql(q, json!({ "id": enc(v) }))).await);
        let v = b.victim(n).await;
        large.push(timed(b.gql(q, json!({ "id": enc(v) }))).await);
    }
    rows.push(Row {
        scenario: format!("anonymizeUser, {n} votes vs {} votes", n.min(1_000)),
        memberdesk: median(large),
        floor: Some(median(small)),
        target: "time(N)/time(1k) <= 1.5",
        ratio_limit: Some(1.5),
    });

    // Bulk: a tenth of the members goes dormant, in a different cohort per run.
    let cohort = a.users / 10;
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let mut next = 0i64;
    let mut dormant = |b: &Bench| {
        let (from, to) = (next * cohort + 1, (next + 1) * cohort);
        next += 1;
        let pool = b.pool.clone();
        async move {
            sqlx::query("UPDATE users SET last_login = '2001-01-01' WHERE username_key = ANY(SELECT 'member' || n FROM generate_series($1::bigint, $2::bigint) n)")
                .bind(from)
                .bind(to)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    for _ in 0..a.runs.min(4) {
        dormant(&b).await;
        let q = "mutation { deactivateUsers(filter: { isActive: true, lastLoginBefore: \"2002-01-01T00:00:00Z\" }) { skipped { code } } }";
        ours.push(timed(b.gql(q, json!({}))).await);
        dormant(&b).await;
        floor.push(
            timed(async {
                let mut tx = b.pool.begin().await.unwrap();
                let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE is_active AND last_login < '2002-01-01' ORDER BY id FOR UPDATE")
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                memberdesk::store::deactivations::deactivate(
                    &mut tx,
                    &ids,
                    memberdesk::store::deactivations::Removal { groups: true, permissions: true, staff: false },
                    None,
                )
                .await
                .unwrap();
                // The floor writes the audit trail too: one entry per user.
                sqlx::query(
                    "INSERT INTO audit_entries (action, actor_username, target_user_id, target_repr, details)
                     SELECT 'USER_DEACTIVATED', 'bench', id, username, '{}'::jsonb FROM users WHERE id = ANY($1)",
                )
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            })
            .await,
        );
    }
    rows.push(Row {
        scenario: format!(
            "deactivateUsers by filter, {cohort} of {} users in 3 groups",
            a.users
        ),
        memberdesk: median(ours),
        floor: Some(median(floor)),
        target: "ratio <= 1.5",
        ratio_limit: Some(1.5),
    });

    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM users WHERE is_active AND username LIKE 'member%' ORDER BY id LIMIT 200",
    )
    .fetch_all(&b.pool)
    .await
    .unwrap();
    let mut latencies = Vec::new();
    for id in ids {
        let q = "mutation($id: ID!) { deactivateUser(id: $id) { sessionsRevoked } }";
        latencies.push(timed(b.gql(q, json!({ "id": enc(id) }))).await);
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    let (p50, p99) = (p(0.5), p(0.99));

    println!(
        "\n{:<58} {:>12} {:>12} {:>8}  {}",
        "scenario", "memberdesk", "floor", "ratio", "target"
    );
    for r in &rows {
        let ratio = r.ratio().unwrap_or(f64::NAN);
        let met = r.ratio_limit.is_none_or(|l| ratio <= l);
        println!(
            "{:<58} {:>10.2}ms {:>10.2}ms {:>8.2}  {} {}",
            r.scenario,
            r.memberdesk.as_secs_f64() * 1e3,
            r.floor.map_or(f64::NAN, |f| f.as_secs_f64() * 1e3),
            ratio,
            r.target,
            if met { "met" } else { "MISSED" }
        );
    }
    println!(
        "{:<58} p50 {:.2}ms, p99 {:.2}ms ({} requests)",
        "deactivateUser single, over HTTP",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies.len()
    );
    if let Some(path) = &a.json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario,
                    "memberdesk_ms": r.memberdesk.as_secs_f64() * 1e3,
                    "floor_ms": r.floor.map(|f| f.as_secs_f64() * 1e3),
                    "ratio": r.ratio(),
                    "target": r.target,
                })
            })
            .chain([json!({ "scenario": "deactivateUser single", "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3 })])
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(
                &json!({ "votes": n, "users": a.users, "runs": a.runs, "rows": rows }),
            )
            .unwrap(),
        )
        .expect("write --json file");
    }
}
