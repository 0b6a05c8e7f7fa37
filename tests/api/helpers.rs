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

    /// The absolute URL of `path` (`/graphql`, `/healthz`, ...) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// A `GET` of `path`, to add headers to and send.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    /// A `POST` to `path`, to add a body and headers to and send.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    /// POSTs a GraphQL operation and returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .post("/graphql")
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

    /// A login relayed by a proxy for `address` (the test server's peer is
    /// always 127.0.0.1; the app must trust it): the whole response, with the
    /// token and the user's `id` and `username`.
    pub async fn login_from(&self, address: &str, username: &str, password: &str) -> Value {
        let login = "mutation($u: String!, $p: String!) { \
                     login(username: $u, password: $p) { token user { id username } } }";
        self.post("/graphql")
            .header("x-forwarded-for", address)
            .json(&json!({ "query": login, "variables": { "u": username, "p": password } }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON response")
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
        let resp = self.get("/metrics").send().await;
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

    /// Whom `token` stands for now: `me`'s username, or the code `me` is
    /// refused with (`UNAUTHENTICATED` once the session ended).
    pub async fn me(&self, token: &str) -> Result<String, String> {
        let resp = self
            .gql(Some(token), "{ me { username } }", json!({}))
            .await;
        if resp.get("errors").is_some() {
            let code = Refusal::of(&resp).code;
            assert!(!code.is_empty(), "an error without a code: {resp:#}");
            return Err(code);
        }
        let username = resp["data"]["me"]["username"].as_str();
        Ok(username.expect("a username").to_owned())
    }

    /// The id of the user named `username`, looked up as a client would.
    pub async fn id_of(&self, caller: impl Caller, username: &str) -> String {
        let query = "query($u: String!) { user(username: $u) { id } }";
        let data = self
            .ok(caller.token(), query, json!({ "u": username }))
            .await;
        data["user"]["id"].as_str().expect("a user id").to_owned()
    }

    /// Runs a test-only statement (a literal) with `$1` bound to `id`: a
    /// change behind the API's back, as an operator or another instance
    /// would make it.
    pub async fn execute(&self, sql: &'static str, id: i64) {
        sqlx::query(sql)
            .bind(id)
            .execute(self.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// How many audit entries record `action` (e.g. `USER_DEACTIVATED`).
    pub async fn audit_count(&self, action: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_entries WHERE action = $1")
            .bind(action)
            .fetch_one(self.pool())
            .await
            .expect("audit count")
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
        "SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM webhooks t",
        // The outbox: what was queued (how its attempts go is the worker's).
        "SELECT coalesce(json_agg(json_build_array(id, webhook_id, audit_entry_id, event) ORDER BY id), '[]') FROM webhook_deliveries",
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

// ---- Named operations -------------------------------------------------------
//
// Tests speak of what a client does (`app.deactivate(&root, &bob)`), not of
// the GraphQL text that does it: the documents are written once, here. Each
// operation returns a `Call` that is sent with `send` (the whole response),
// `ok` (the payload, failing on any error), `err_code`, `error` or `refused`.

/// Who sends a request: a session token (`&str`, `&String`) or nobody
/// (`ANONYMOUS`, or an `Option<&str>` that is `None`).
pub trait Caller {
    fn token(&self) -> Option<&str>;
}

impl Caller for str {
    fn token(&self) -> Option<&str> {
        Some(self)
    }
}

impl Caller for String {
    fn token(&self) -> Option<&str> {
        Some(self)
    }
}

impl Caller for Option<&str> {
    fn token(&self) -> Option<&str> {
        *self
    }
}

impl<T: Caller + ?Sized> Caller for &T {
    fn token(&self) -> Option<&str> {
        (**self).token()
    }
}

/// A request without a token.
pub const ANONYMOUS: Option<&str> = None;

/// What a `User` in a payload shows by default: the two fields everyone who
/// reaches a user may see, so that a call succeeds without `auth.view_user`.
const PUBLIC_USER: &str = "id username";

/// Every part of a `DeletionPlan`.
const PLAN: &str = "user { id username } policy allowed token \
    protected { relation count } deleted { relation count } detached { relation count }";

/// What a `Question` in a payload shows: its standing and its tallies.
const QUESTION: &str = "id text archivedAt choices { id text voteCount }";

/// Every part of an `AuditEntry` but its id and time.
pub const AUDIT_ENTRY: &str =
    "action actorUsername actor { username } targetUser { id } targetRepr reason details";

/// The first error of a response: its code, the input field it names
/// (empty when none) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub field: String,
    pub message: String,
}

impl Refusal {
    /// The first error of `resp`; every part empty when there is none.
    pub fn of(resp: &Value) -> Refusal {
        let error = &resp["errors"][0];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Refusal {
            code: text(&error["extensions"]["code"]),
            field: text(&error["extensions"]["field"]),
            message: text(&error["message"]),
        }
    }

    /// Code and field, the pair most refusals are checked by.
    pub fn code_and_field(&self) -> (&str, &str) {
        (&self.code, &self.field)
    }
}

/// One GraphQL field called on the test server, not yet sent. Every
/// argument travels as a variable of the same name, and only the arguments
/// given are sent, so the server's defaults apply to the others.
#[must_use = "a call does nothing until it is sent"]
pub struct Call<'a> {
    app: &'a TestApp,
    token: Option<String>,
    operation: &'static str,
    field: &'static str,
    /// (name, GraphQL type, value).
    args: Vec<(&'static str, &'static str, Value)>,
    /// Empty for a field of scalar type.
    selection: String,
}

impl<'a> Call<'a> {
    fn new(
        app: &'a TestApp,
        caller: impl Caller,
        operation: &'static str,
        field: &'static str,
        selection: &str,
    ) -> Call<'a> {
        Call {
            app,
            token: caller.token().map(str::to_owned),
            operation,
            field,
            args: Vec::new(),
            selection: selection.to_owned(),
        }
    }

    /// Passes argument `name` (of GraphQL type `ty`) as `$name`.
    pub fn arg(mut self, name: &'static str, ty: &'static str, value: impl Into<Value>) -> Self {
        self.args.push((name, ty, value.into()));
        self
    }

    /// Asks for `selection` instead of the operation's default.
    pub fn select(mut self, selection: &str) -> Self {
        self.selection = selection.to_owned();
        self
    }

    /// `deleteUser` / `deletionPlan` under this policy (`PROTECT`, `SET_NULL`, `CASCADE`).
    pub fn policy(self, policy: &str) -> Self {
        self.arg("policy", "DeletePolicy", policy)
    }

    /// `deleteUser` / `deactivateUsers`: only report, change nothing.
    pub fn dry_run(self, dry_run: bool) -> Self {
        self.arg("dryRun", "Boolean", dry_run)
    }

    /// `deleteUser`: delete only if the plan behind this token still holds.
    pub fn plan_token(self, token: &str) -> Self {
        self.arg("planToken", "String", token)
    }

    /// `deleteUser`, `reactivateUser`, `anonymizeUser`, `requestErasure`: why, for the audit log.
    pub fn reason(self, reason: &str) -> Self {
        self.arg("reason", "String", reason)
    }

    /// `deleteUser`: also erase the person from the audit log.
    pub fn erase(self, erase: bool) -> Self {
        self.arg("erase", "Boolean", erase)
    }

    /// `reactivateUser`: give back what the deactivation took.
    pub fn restore_access(self) -> Self {
        self.arg("restoreAccess", "Boolean", true)
    }

    /// `setPassword` on your own account.
    pub fn current_password(self, password: &str) -> Self {
        self.arg("currentPassword", "String", password)
    }

    /// `deactivateUser(s)`: what to take away and why (`DeactivateUserInput`).
    pub fn input(self, input: Value) -> Self {
        self.arg("input", "DeactivateUserInput", input)
    }

    /// `deactivateUsers`: the users named by id.
    pub fn ids(self, ids: impl Into<Value>) -> Self {
        self.arg("ids", "[ID!]", ids)
    }

    /// `deactivateUsers`: every user this `UserFilter` matches.
    pub fn filter(self, filter: Value) -> Self {
        self.arg("filter", "UserFilter", filter)
    }

    /// The field called; the payload is `data[field]`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The GraphQL document this call sends.
    pub fn document(&self) -> String {
        let list = |part: &dyn Fn(&(&str, &str, Value)) -> String| {
            self.args.iter().map(part).collect::<Vec<_>>().join(", ")
        };
        let declared = list(&|(name, ty, _)| format!("${name}: {ty}"));
        let passed = list(&|(name, _, _)| format!("{name}: ${name}"));
        let head = match declared.as_str() {
            "" => self.operation.to_owned(),
            _ => format!("{}({declared})", self.operation),
        };
        let call = match passed.as_str() {
            "" => self.field.to_owned(),
            _ => format!("{}({passed})", self.field),
        };
        match self.selection.as_str() {
            "" => format!("{head} {{ {call} }}"),
            selection => format!("{head} {{ {call} {{ {selection} }} }}"),
        }
    }

    /// The variables this call sends.
    pub fn variables(&self) -> Value {
        let vars = self.args.iter().map(|(n, _, v)| (n.to_string(), v.clone()));
        Value::Object(vars.collect())
    }

    /// Sends the call; the whole response.
    pub async fn send(self) -> Value {
        let (document, variables) = (self.document(), self.variables());
        self.app
            .gql(self.token.as_deref(), &document, variables)
            .await
    }

    /// Sends a call that must succeed; its payload (`data[field]`).
    pub async fn ok(self) -> Value {
        let (field, what) = (self.field, self.describe());
        let resp = self.send().await;
        assert!(
            resp.get("errors").is_none(),
            "{what}: unexpected errors: {resp:#}"
        );
        resp["data"][field].clone()
    }

    /// Sends a call that must fail; its first error.
    pub async fn error(self) -> Refusal {
        let what = self.describe();
        let resp = self.send().await;
        let refusal = Refusal::of(&resp);
        assert!(
            !refusal.code.is_empty(),
            "{what}: expected an error with a code: {resp:#}"
        );
        refusal
    }

    /// Sends a call that must fail; its first error's code.
    pub async fn err_code(self) -> String {
        self.error().await.code
    }

    /// Sends a call that must be refused with `code` and leave every table
    /// as it was.
    pub async fn refused(self, code: &str) -> Refusal {
        let (app, what) = (self.app, self.describe());
        let before = snapshot(app.pool()).await;
        let refusal = self.error().await;
        assert_eq!(refusal.code, code, "{what}: {refusal:?}");
        assert_eq!(
            snapshot(app.pool()).await,
            before,
            "{what}: refused with {code} but changed the database"
        );
        refusal
    }

    /// The document and variables, for failure messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.document(), self.variables())
    }
}

/// The operations of the schema that tests call, as a client would.
impl TestApp {
    /// `deactivateUser(id)`; add `.input(..)` for what to take away and why.
    pub fn deactivate(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(
            self,
            caller,
            "mutation",
            "deactivateUser",
            "user { id username } sessionsRevoked",
        )
        .arg("id", "ID!", id)
    }

    /// `reactivateUser(id)`; add `.restore_access()` to give back what was taken.
    pub fn reactivate(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(
            self,
            caller,
            "mutation",
            "reactivateUser",
            "user { id username }",
        )
        .arg("id", "ID!", id)
    }

    /// `deactivateUsers`; add `.ids(..)` or `.filter(..)`, and `.dry_run(..)`.
    pub fn deactivate_users(&self, caller: impl Caller) -> Call<'_> {
        Call::new(
            self,
            caller,
            "mutation",
            "deactivateUsers",
            "deactivated { id username } skipped { id code }",
        )
    }

    /// `deleteUser(id)` under the default policy; add `.policy(..)`,
    /// `.dry_run(..)`, `.plan_token(..)`, `.reason(..)`.
    pub fn delete_user(&self, caller: impl Caller, id: &str) -> Call<'_> {
        let selection = format!("deleted plan {{ {PLAN} }}");
        Call::new(self, caller, "mutation", "deleteUser", &selection).arg("id", "ID!", id)
    }

    /// `deletionPlan(userId)` under the default policy; add `.policy(..)`.
    pub fn deletion_plan(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "query", "deletionPlan", PLAN).arg("userId", "ID!", id)
    }

    /// The `token` of the deletion plan for `id` under `policy`.
    pub async fn plan_token(&self, caller: impl Caller, id: &str, policy: &str) -> String {
        let plan = self.deletion_plan(caller, id).policy(policy).ok().await;
        plan["token"].as_str().expect("a plan token").to_owned()
    }

    /// `anonymizeUser(id)`; add `.reason(..)`.
    pub fn anonymize(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(
            self,
            caller,
            "mutation",
            "anonymizeUser",
            "user { id username } sessionsRevoked",
        )
        .arg("id", "ID!", id)
    }

    /// `requestErasure(userId)`; add `.reason(..)`.
    pub fn request_erasure(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "requestErasure", PUBLIC_USER).arg("userId", "ID!", id)
    }

    /// `cancelErasure(userId)`.
    pub fn cancel_erasure(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "cancelErasure", PUBLIC_USER).arg("userId", "ID!", id)
    }

    /// `exportUserData(userId)`: the JSON document.
    pub fn export_user_data(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "query", "exportUserData", "").arg("userId", "ID!", id)
    }

    /// `createUser(input)` with a `CreateUserInput`.
    pub fn create_user(&self, caller: impl Caller, input: Value) -> Call<'_> {
        Call::new(self, caller, "mutation", "createUser", PUBLIC_USER).arg(
            "input",
            "CreateUserInput!",
            input,
        )
    }

    /// `updateUser(id, input)` with an `UpdateUserInput`.
    pub fn update_user(&self, caller: impl Caller, id: &str, input: Value) -> Call<'_> {
        Call::new(self, caller, "mutation", "updateUser", PUBLIC_USER)
            .arg("id", "ID!", id)
            .arg("input", "UpdateUserInput!", input)
    }

    /// `setPassword(userId, password)`; add `.current_password(..)` for your own.
    pub fn set_password(&self, caller: impl Caller, id: &str, password: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "setPassword", "")
            .arg("userId", "ID!", id)
            .arg("password", "String!", password)
    }

    /// `grantPermission(userId, permission)`.
    pub fn grant(&self, caller: impl Caller, user: &str, permission: &str) -> Call<'_> {
        self.direct_permission("grantPermission", caller, user, permission)
    }

    /// `revokePermission(userId, permission)`.
    pub fn revoke(&self, caller: impl Caller, user: &str, permission: &str) -> Call<'_> {
        self.direct_permission("revokePermission", caller, user, permission)
    }

    fn direct_permission(
        &self,
        field: &'static str,
        caller: impl Caller,
        user: &str,
        permission: &str,
    ) -> Call<'_> {
        Call::new(self, caller, "mutation", field, "id")
            .arg("userId", "ID!", user)
            .arg("permission", "String!", permission)
    }

    /// `addUserToGroup(userId, groupId)`.
    pub fn add_to_group(&self, caller: impl Caller, user: &str, group: &str) -> Call<'_> {
        self.membership("addUserToGroup", caller, user, group)
    }

    /// `removeUserFromGroup(userId, groupId)`.
    pub fn remove_from_group(&self, caller: impl Caller, user: &str, group: &str) -> Call<'_> {
        self.membership("removeUserFromGroup", caller, user, group)
    }

    fn membership(
        &self,
        field: &'static str,
        caller: impl Caller,
        user: &str,
        group: &str,
    ) -> Call<'_> {
        Call::new(self, caller, "mutation", field, "id")
            .arg("userId", "ID!", user)
            .arg("groupId", "ID!", group)
    }

    /// `createGroup(name, permissions)`.
    pub fn create_group(&self, caller: impl Caller, name: &str, permissions: &[&str]) -> Call<'_> {
        Call::new(self, caller, "mutation", "createGroup", "id name")
            .arg("name", "String!", name)
            .arg("permissions", "[String!]!", permissions)
    }

    /// `setGroupPermissions(groupId, permissions)`.
    pub fn set_group_permissions(
        &self,
        caller: impl Caller,
        group: &str,
        permissions: &[&str],
    ) -> Call<'_> {
        Call::new(self, caller, "mutation", "setGroupPermissions", "id")
            .arg("groupId", "ID!", group)
            .arg("permissions", "[String!]!", permissions)
    }

    /// `createQuestion(text, choices)`.
    pub fn create_question(&self, caller: impl Caller, text: &str, choices: &[&str]) -> Call<'_> {
        Call::new(
            self,
            caller,
            "mutation",
            "createQuestion",
            "id text choices { id text }",
        )
        .arg("text", "String!", text)
        .arg("choices", "[String!]!", choices)
    }

    /// `castVote(choiceId)`.
    pub fn vote(&self, caller: impl Caller, choice: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "castVote", "id").arg("choiceId", "ID!", choice)
    }

    /// `archiveQuestion(id)`; add `.reason(..)`.
    pub fn archive_question(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "archiveQuestion", QUESTION).arg("id", "ID!", id)
    }

    /// `restoreQuestion(id)`.
    pub fn restore_question(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "restoreQuestion", QUESTION).arg("id", "ID!", id)
    }

    /// `questions`; add `.arg("includeArchived", "Boolean", ..)`.
    pub fn questions(&self, caller: impl Caller) -> Call<'_> {
        Call::new(self, caller, "query", "questions", QUESTION)
    }

    /// `auditLog(filter)`: the first page of the entries `filter` (an
    /// `AuditFilter`) finds, newest first; add `.arg("first", "Int", n)`.
    pub fn audit_log(&self, caller: impl Caller, filter: Value) -> Call<'_> {
        let selection = format!("totalCount edges {{ node {{ {AUDIT_ENTRY} }} }}");
        Call::new(self, caller, "query", "auditLog", &selection).arg(
            "filter",
            "AuditFilter",
            filter,
        )
    }

    /// The audit entries `filter` finds, newest first (all on one page).
    pub async fn audit_entries(&self, caller: impl Caller, filter: Value) -> Vec<Value> {
        let all = self.audit_log(caller, filter).arg("first", "Int", 100);
        let log = all.ok().await;
        let nodes: Vec<Value> = log["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|edge| edge["node"].clone())
            .collect();
        assert_eq!(log["totalCount"], nodes.len(), "one page holds them all");
        nodes
    }
}

/// `(id, code)` of each user a bulk payload skipped, sorted.
pub fn skipped(payload: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = payload["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            let text = |v: &Value| v.as_str().unwrap().to_owned();
            (text(&s["id"]), text(&s["code"]))
        })
        .collect();
    out.sort();
    out
}

/// The `id` of each object in a JSON list (a question's choices, ...).
pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

// ---- Webhooks ---------------------------------------------------------------

/// What a `Webhook` in a payload shows (its secret only where asked for).
pub const WEBHOOK: &str = "id url events description disabled";

/// What a `WebhookDelivery` in a payload shows.
pub const WEBHOOK_DELIVERY: &str =
    "id messageId event payload status attempts lastStatusCode lastError deliveredAt";

impl TestApp {
    /// `createWebhook(url, events)` with the secret; add `.arg("description", ..)`.
    pub fn create_webhook(&self, caller: impl Caller, url: &str, events: &[&str]) -> Call<'_> {
        let selection = format!("{WEBHOOK} secret");
        Call::new(self, caller, "mutation", "createWebhook", &selection)
            .arg("url", "String!", url)
            .arg("events", "[String!]!", json!(events))
    }

    /// `webhooks`.
    pub fn webhooks(&self, caller: impl Caller) -> Call<'_> {
        Call::new(
            self,
            caller,
            "query",
            "webhooks",
            &format!("{WEBHOOK} secret"),
        )
    }

    /// `deleteWebhook(id)`.
    pub fn delete_webhook(&self, caller: impl Caller, id: &str) -> Call<'_> {
        Call::new(self, caller, "mutation", "deleteWebhook", WEBHOOK).arg("id", "ID!", id)
    }

    /// `webhookDeliveries(webhookId)`, first page of 100, newest first.
    pub fn webhook_deliveries(&self, caller: impl Caller, webhook_id: &str) -> Call<'_> {
        let selection = format!("totalCount edges {{ node {{ {WEBHOOK_DELIVERY} }} }}");
        Call::new(self, caller, "query", "webhookDeliveries", &selection)
            .arg("webhookId", "ID!", webhook_id)
            .arg("first", "Int", 100)
    }

    /// `redeliverWebhook(deliveryId)`.
    pub fn redeliver_webhook(&self, caller: impl Caller, delivery_id: &str) -> Call<'_> {
        Call::new(
            self,
            caller,
            "mutation",
            "redeliverWebhook",
            WEBHOOK_DELIVERY,
        )
        .arg("deliveryId", "ID!", delivery_id)
    }
}
