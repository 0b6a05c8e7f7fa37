//! The `memberdesk` binary as an operator runs it: exit codes, one clear
//! line on failure (never a panic), and logs that never carry a secret.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{LoggedServer, PASSWORD, TestDb};
use serde_json::json;

/// `memberdesk args` against the database at `db`, fed `stdin`: how the
/// command-line tests run the binary (no password or colours from the
/// test's own environment).
pub(crate) fn memberdesk(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    memberdesk_with(db, args, &[], stdin)
}

/// [`memberdesk`] with the variables `env` set as well.
pub(crate) fn memberdesk_with(
    db: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args(args)
        .env("DATABASE_URL", db)
        .env_remove("MEMBERDESK_PASSWORD")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run memberdesk");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `memberdesk` with exactly `env` set (and `NO_COLOR` only when given),
/// waited for at most `limit`: past it the process is killed and the test
/// fails. Returns what it printed and how long it took.
pub(crate) fn memberdesk_within(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Output, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memberdesk"));
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("MEMBERDESK_LOG")
        .env_remove("MEMBERDESK_LOG_FORMAT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("run memberdesk");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

/// The arguments of `createsuperuser` for `username`, the password read
/// from stdin.
pub(crate) fn createsuperuser(username: &str) -> [&str; 6] {
    [
        "createsuperuser",
        "--username",
        username,
        "--email",
        "boss@example.org",
        "--password-stdin",
    ]
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A failure an operator can act on: non-zero, short, no Rust internals.
pub(crate) fn assert_clear_failure(out: &Output, needle: &str) {
    let all = text(out);
    assert!(!out.status.success(), "should fail: {all}");
    assert!(
        all.to_lowercase().contains(needle),
        "mentions {needle:?}: {all}"
    );
    for internal in ["panicked", "RUST_BACKTRACE", "stack backtrace", "Error {"] {
        assert!(!all.contains(internal), "no internals ({internal}): {all}");
    }
    assert!(all.trim().lines().count() <= 2, "one clear line: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent() {
    let db = TestDb::new().await;
    let applied = "SELECT count(*) FROM _sqlx_migrations";
    let before: i64 = sqlx::query_scalar(applied)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    for _ in 0..2 {
        let out = memberdesk(&db.url, &["migrate"], None);
        assert!(out.status.success(), "{}", text(&out));
    }
    let after: i64 = sqlx::query_scalar(applied)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
}

/// Several instances of a fresh deployment start at the same moment: each
/// finds no database, all try to create it and apply the migrations, and all
/// come up with the migrations applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_a_new_database_all_come_up() {
    let db = TestDb::new().await;
    db.drop_database().await;

    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move {
                let pool = memberdesk::db::connect(&url, true).await?;
                memberdesk::db::migrate(&pool, &url).await?;
                Ok::<_, memberdesk::db::StartupError>(pool)
            })
        })
        .collect();
    let mut pools = Vec::new();
    for start in starts {
        pools.push(start.await.unwrap().expect("every instance starts"));
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pools[0])
        .await
        .unwrap();
    let shipped = std::fs::read_dir("migrations").unwrap().count() as i64;
    assert_eq!(applied, shipped);
    for pool in pools {
        pool.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn createsuperuser_creates_once_and_refuses_duplicates_and_weak_passwords() {
    let db = TestDb::new().await;
    let create = |name: &str, password: &str| {
        let stdin = format!("{password}\n");
        memberdesk(&db.url, &createsuperuser(name), Some(&stdin))
    };
    let out = create("boss", PASSWORD);
    assert!(out.status.success(), "{}", text(&out));
    let row: (bool, bool, bool, String) = sqlx::query_as(
        "SELECT is_active, is_staff, is_superuser, password_hash FROM users WHERE username = 'boss'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((row.0, row.1, row.2), (true, true, true));
    assert!(
        row.3.starts_with("$argon2id$"),
        "stored as an argon2id PHC string"
    );
    assert!(!text(&out).contains(PASSWORD));

    let users = "SELECT count(*) FROM users";
    let before: i64 = sqlx::query_scalar(users).fetch_one(&db.pool).await.unwrap();
    // Case and width variants are the same username.
    assert_clear_failure(&create("BOSS", PASSWORD), "username");
    assert_clear_failure(&create("ｂｏｓｓ", PASSWORD), "username");
    assert_clear_failure(&create("other", "12345678"), "password");
    assert_clear_failure(&create("other", "short"), "password");
    let after: i64 = sqlx::query_scalar(users).fetch_one(&db.pool).await.unwrap();
    assert_eq!(before, after, "refusals create nothing");
}

/// `createsuperuser` holds the superuser, the account most worth guessing,
/// to the API's password rule: long enough and hard to guess by zxcvbn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn createsuperuser_refuses_guessable_passwords() {
    let db = TestDb::new().await;
    let create = |password: &str, env: &[(&str, &str)]| {
        let stdin = format!("{password}\n");
        memberdesk_with(&db.url, &createsuperuser("boss"), env, Some(&stdin))
    };
    for weak in [
        "Password123!",
        "qwertyuiop12",
        "Summer2026!!",
        "aaaaaaaaaaaaaaaa",
        "boss-boss-boss",
    ] {
        let out = create(weak, &[]);
        assert_clear_failure(&out, "password");
        assert!(!text(&out).contains(weak), "{}", text(&out));
    }
    // The minimum length is the server's setting here too.
    let out = create(PASSWORD, &[("MEMBERDESK_PASSWORD_MIN_LENGTH", "40")]);
    assert_clear_failure(&out, "at least 40");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "refusals create nothing");
    let out = create("orbit tulip canyon whisper", &[]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A bad `MEMBERDESK_TRUSTED_PROXIES` stops the server before it starts,
/// naming the variable: guessing what was meant could trust the world.
#[test]
fn a_bad_trusted_proxies_setting_stops_startup_naming_it() {
    for bad in ["proxy.internal", "10.0.0.0/33", "10.0.0.1;10.0.0.2"] {
        let out = memberdesk_with(
            "postgres://postgres@127.0.0.1:1/memberdesk",
            &["serve", "--bind", "127.0.0.1:0"],
            &[("MEMBERDESK_TRUSTED_PROXIES", bad)],
            None,
        );
        assert_clear_failure(&out, "memberdesk_trusted_proxies");
        assert!(
            text(&out).contains(bad),
            "names the bad entry: {}",
            text(&out)
        );
    }
}

#[test]
fn unreachable_database_and_bad_arguments_give_one_clear_line() {
    let nowhere = "postgres://postgres@127.0.0.1:1/memberdesk";
    for args in [
        &["migrate"][..],
        &["seed-demo"],
        &["serve", "--bind", "127.0.0.1:0"],
    ] {
        assert_clear_failure(&memberdesk(nowhere, args, None), "postgresql");
    }
    assert_clear_failure(&memberdesk("not a url", &["migrate"], None), "database_url");
    let out = memberdesk(nowhere, &["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Usage"), "{}", text(&out));
    let out = memberdesk(nowhere, &["serve", "--bind", "not-an-address"], None);
    assert!(!out.status.success());
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

/// A newcomer's first `serve` with nothing set up: the one line names the
/// cause on this machine and the command that fixes it.
#[test]
fn a_first_run_without_postgresql_says_what_to_do() {
    // No DATABASE_URL, and nothing on the port the default URL leads to.
    let out = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env("PGPORT", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_clear_failure(&out, "postgresql");
    let all = text(&out);
    assert!(
        ["pg_ctlcluster", "start its service", "not installed here"]
            .iter()
            .any(|advice| all.contains(advice)),
        "says how to get PostgreSQL running: {all}"
    );

    // A server that answers but has no role for this user.
    let out = memberdesk(
        "postgres://no_such_role_here@127.0.0.1:5432/memberdesk",
        &["migrate"],
        None,
    );
    assert_clear_failure(&out, "createuser --createdb no_such_role_here");
}

#[test]
fn export_schema_prints_the_committed_snapshot() {
    let out = memberdesk("postgres://unused", &["export-schema"], None);
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

/// Runs the real server with every log enabled, logs in, fails a login and
/// changes a password; the log must name none of the secrets involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_never_contain_passwords_hashes_or_tokens() {
    let db = TestDb::new().await;
    let server =
        LoggedServer::start(&db, &[], &[("MEMBERDESK_LOG", "trace"), ("NO_COLOR", "1")]).await;
    let out = memberdesk(&db.url, &createsuperuser("boss"), Some(PASSWORD));
    assert!(out.status.success(), "{}", text(&out));
    let url = server.url.clone();
    let client = reqwest::Client::new();
    let post = |query: &'static str, variables: serde_json::Value, token: Option<String>| {
        let mut req = client
            .post(&url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let login =
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";
    let wrong_password = "not the password at all";
    let new_password = "a brand new long passphrase";
    let resp = post(login, json!({ "u": "boss", "p": PASSWORD }), None).await;
    let token = resp["data"]["login"]["token"].as_str().unwrap().to_owned();
    post(login, json!({ "u": "boss", "p": wrong_password }), None).await;
    let me = post("{ me { id } }", json!({}), Some(token.clone())).await;
    let set = post(
        "mutation($id: ID!, $p: String!, $c: String) { setPassword(userId: $id, password: $p, currentPassword: $c) }",
        json!({ "id": me["data"]["me"]["id"], "p": new_password, "c": PASSWORD }),
        Some(token.clone()),
    )
    .await;
    assert_eq!(set["data"]["setPassword"], true, "{set}");
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'boss'")
            .fetch_one(&db.pool)
            .await
            .unwrap();

    let logged = server.stop();
    assert!(
        logged.contains("sqlx::query"),
        "trace logging was really on"
    );
    for secret in [
        PASSWORD,
        wrong_password,
        new_password,
        &token,
        &hash,
        "$argon2",
    ] {
        assert!(
            !logged.contains(secret),
            "the log contains a secret ({secret})"
        );
    }
}

/// Operators correlate a user's error with the server's log through the
/// request id, in JSON logs as in the error's extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_errors_carry_the_request_id() {
    let db = TestDb::new().await;
    let server = LoggedServer::start(&db, &["--log-format", "json"], &[]).await;
    let url = server.url.clone();
    let resp = reqwest::Client::new()
        .post(&url)
        .header("x-request-id", "support-ticket-42")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "support-ticket-42");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"], "support-ticket-42",
        "{body}"
    );
    let fresh = reqwest::Client::new()
        .get(url.replace("/graphql", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fresh.headers()["x-request-id"].len(),
        16,
        "a fresh id when the client sends none"
    );

    let logged = server.stop();
    let lines: Vec<serde_json::Value> = logged
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["request_id"] == "support-ticket-42" && l["fields"]["status"] == 200),
        "{logged}"
    );
}

/// No value of a numeric argument makes a command panic: out of range is
/// one line that names the argument and its range, and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_refused_not_panicked_on() {
    let db = TestDb::new().await;
    let refused = [
        "100000000",
        "1000001",
        "36501",
        "4294967296",
        "0",
        "-5",
        "soon",
    ];
    for days in refused {
        for dry_run in [&["--dry-run"][..], &[]] {
            let mut args = vec!["deactivate-dormant", "--days", days];
            args.extend_from_slice(dry_run);
            let out = memberdesk(&db.url, &args, None);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(2), "--days {days}: {all}");
            assert!(all.contains("--days"), "names the argument: {all}");
            assert!(!all.contains("panicked"), "--days {days}: {all}");
        }
    }
    for size in ["0", "10001", "99999999999999999999"] {
        let out = memberdesk(
            &db.url,
            &["deactivate-dormant", "--days", "30", "--batch-size", size],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
    // The largest accepted value runs.
    let out = memberdesk(&db.url, &["deactivate-dormant", "--days", "36500"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deactivated 0 dormant"),
        "{}",
        text(&out)
    );
    // So does a statement timeout past PostgreSQL's limit: refused by name.
    let too_long = [("MEMBERDESK_STATEMENT_TIMEOUT_SECONDS", "2147483647")];
    let out = memberdesk_with(&db.url, &["migrate"], &too_long, None);
    assert_clear_failure(&out, "memberdesk_statement_timeout_seconds");
}

/// A certificate no CA memberdesk trusts has signed (test-only, its key
/// thrown away).
const UNRELATED_CA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/unrelated-ca.pem"
);

/// `sslmode=require` connects over TLS; `verify-full` against a CA that did
/// not sign the server's certificate, or with a certificate file that is
/// not there, stops with one line naming the certificate problem (not a
/// stopped server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgresql_connects_and_a_rejected_certificate_is_named() {
    let db = TestDb::new().await;
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    if ssl != "on" {
        eprintln!(
            "SKIPPED: the test cluster has ssl = off (see hardening::sslmode_require_connects_over_tls_and_serves)"
        );
        return;
    }
    let out = memberdesk(&format!("{}?sslmode=require", db.url), &["migrate"], None);
    assert!(out.status.success(), "sslmode=require: {}", text(&out));

    let foreign = format!("{}?sslmode=verify-full&sslrootcert={UNRELATED_CA}", db.url);
    let out = memberdesk(&foreign, &["migrate"], None);
    assert_clear_failure(&out, "certificate");
    let all = text(&out);
    assert!(
        all.contains("sslmode=verify-full") && all.contains("sslrootcert"),
        "{all}"
    );
    assert!(!all.contains("not running"), "not a stopped server: {all}");

    let missing = format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        db.url
    );
    let out = memberdesk(&missing, &["migrate"], None);
    assert_clear_failure(&out, "certificate file");
    assert!(!text(&out).contains("not running"), "{}", text(&out));

    // Debian's cluster serves its self-signed snakeoil certificate, made out
    // to localhost: with it as the CA, verify-full holds.
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let cert_file: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    if cert_file == snakeoil && std::fs::metadata(snakeoil).is_ok() {
        let url = format!("{}?sslmode=verify-full&sslrootcert={snakeoil}", db.url)
            .replace("@127.0.0.1:", "@localhost:");
        let out = memberdesk(&url, &["migrate"], None);
        assert!(out.status.success(), "verify-full: {}", text(&out));
    }
}
