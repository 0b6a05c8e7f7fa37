//! Test harness: every test gets its own fresh database and a real memberdesk
//! server on a random port, and talks to it over HTTP like any client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memberdesk::config::Settings;
use memberdesk::domain::groups::{self, Change};
use memberdesk::domain::{Actor, accounts};
use memberdesk::store::users::UserRow;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub const PASSWORD: &str = "correct horse battery staple";

/// The server used to create and drop test databases.
pub fn admin_url() -> String {
    std::env::var("MEMBERDESK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    format!("{base}/{db}")
}

/// A fresh, migrated database that is dropped when this value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "memberdesk_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at {} (set MEMBERDESK_TEST_DATABASE_URL): {e}",
                    admin_url()
                )
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = url_for(&name);
        let pool = memberdesk::db::connect(&url, false)
            .await
            .expect("connect to test database");
        memberdesk::db::migrate(&pool, &url)
            .await
            .expect("migrate test database");
        TestDb { name, url, pool }
    }
}

impl TestDb {
    /// Drops the database now, leaving the name free, as a fresh deployment
    /// finds it (dropping this value then finds nothing to drop).
    pub async fn drop_database(&self) {
        self.pool.close().await;
        let admin = PgPool::connect(&admin_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{}\"",
            self.name
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}

/// `memberdesk serve` as an operator runs it, on a free port, everything it
/// prints written to a file.
pub struct LoggedServer {
    process: Child,
    /// The GraphQL URL its "ready" line names.
    pub url: String,
    log_path: PathBuf,
}

/// Waits (at most 30 s) for the "GraphQL at <url>" line in the server's log
/// at `log_path`; the URL, or everything logged so far if it never came.
async fn ready_url(log_path: &Path) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let logged = std::fs::read_to_string(log_path).unwrap();
        if let Some(at) = logged.find("GraphQL at ") {
            let rest = &logged[at + "GraphQL at ".len()..];
            let url = rest.split(|c: char| c.is_whitespace() || c == '"').next();
            return Ok(url.unwrap().to_owned());
        }
        if started.elapsed() >= Duration::from_secs(30) {
            return Err(logged);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl LoggedServer {
    /// Starts `serve` on `db` with `args` and `env` added; returns once it
    /// logged that it is ready.
    pub async fn start(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> LoggedServer {
        let log_path = std::env::temp_dir().join(format!("memberdesk-log-{}.txt", db.name));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut process = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env("DATABASE_URL", &db.url)
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        match ready_url(&log_path).await {
            Ok(url) => LoggedServer {
                process,
                url,
                log_path,
            },
            Err(logged) => {
                // Reap the child before failing so a broken start leaves no
                // server (or zombie) behind.
                let _ = process.kill();
                let _ = process.wait();
                panic!("server did not start: {logged}");
            }
        }
    }

    /// Stops the server (SIGTERM) and returns everything it printed.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.process.id().to_string())
            .status();
        let _ = self.process.wait();
        let logged = std::fs::read_to_string(&self.log_path).unwrap();
        let _ = std::fs::remove_file(&self.log_path);
        logged
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let pool = self.pool.clone();
        // Drop runs outside async; a small runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                pool.close().await;
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url())
                    .await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: String,
    pub db: TestDb,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Settings::default()).await
    }

    pub async fn spawn_with(settings: Settings) -> TestApp {
        let db = TestDb::new().await;
        let server = memberdesk::http::bind("127.0.0.1:0").await.expect("bind");
        let addr = format!("http://{}", server.addr);
        let pool = db.pool.clone();
        tokio::spawn(server.serve(pool, settings, std::future::pending()));
        TestApp {
            addr,
            db,
            client: reqwest::Client::new(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// POSTs a GraphQL operation and returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request");
        resp.json().await.expect("JSON response")
    }

    /// Runs an operation that must succeed; returns its `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let resp = self.gql(token, query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    /// Runs an operation that must fail; returns its first error's code.
    pub async fn err_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let resp = self.gql(token, query, variables).await;
        let code = resp["errors"][0]["extensions"]["code"].as_str();
        code.unwrap_or_else(|| panic!("expected an error with a code: {resp:#}"))
            .to_owned()
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let data = self
            .ok(
                None,
                "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }",
                json!({ "u": username, "p": password }),
            )
            .await;
        data["login"]["token"].as_str().unwrap().to_owned()
    }

    /// Creates a user directly through the domain layer (as the system).
    pub async fn user(&self, username: &str, staff: bool, superuser: bool) -> UserRow {
        let input = accounts::NewUserInput {
            username: username.into(),
            email: format!("{username}@example.org"),
            password: SecretString::from(PASSWORD),
            first_name: String::new(),
            last_name: String::new(),
            is_staff: staff,
            is_superuser: superuser,
        };
        accounts::create_user(self.pool(), &Actor::System, input, &Default::default())
            .await
            .expect("create user")
    }

    /// A user with the given direct permissions, logged in; returns (user, token).
    pub async fn staff_with(&self, username: &str, permissions: &[&str]) -> (UserRow, String) {
        let user = self.user(username, true, false).await;
        for perm in permissions {
            let access = groups::Access::Permission(perm);
            groups::change_access(self.pool(), &Actor::System, user.id, access, Change::Give)
                .await
                .expect("grant");
        }
        let token = self.login(username, PASSWORD).await;
        (user, token)
    }

    pub async fn superuser(&self, username: &str) -> (UserRow, String) {
        let user = self.user(username, true, true).await;
        let token = self.login(username, PASSWORD).await;
        (user, token)
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.addr))
            .send()
            .await;
        resp.expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Counts rows of a table (a test-only read; table names are literals).
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.pool())
            .await
            .expect("count")
    }
}

pub fn user_id(user: &UserRow) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::User, user.id)
}

pub fn group_id(id: i64) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::Group, id)
}

/// A snapshot of every table the API can change, to prove a refused
/// operation changed nothing.
pub async fn snapshot(pool: &PgPool) -> Value {
    let tables = [
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM users t",
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM groups t",
        "SELECT coalesce(json_agg(t ORDER BY user_id, group_id), '[]') FROM user_groups t",
        "SELECT coalesce(json_agg(t ORDER BY user_id, permission_id), '[]') FROM user_permissions t",
        "SELECT coalesce(json_agg(t ORDER BY group_id, permission_id), '[]') FROM group_permissions t",
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM questions t",
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM choices t",
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM votes t",
        // When a session was last used is activity, not a change the API made.
        "SELECT coalesce(json_agg(to_jsonb(t) - 'last_seen_at' ORDER BY id), '[]') FROM sessions t",
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM audit_entries t WHERE action NOT IN ('LOGIN', 'LOGIN_FAILED')",
    ];
    let mut all = Vec::new();
    for sql in tables {
        let v: Value = sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .expect("snapshot");
        all.push(v);
    }
    Value::Array(all)
}
