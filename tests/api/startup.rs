//! The first minutes of running memberdesk: settings that would lead
//! somewhere nobody meant are refused with the exact line an operator reads,
//! connection failures name their cause, and the log says what happened
//! (migrations applied, each request's operation and error codes).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{createsuperuser, memberdesk, memberdesk_within, text};
use crate::helpers::{LoggedServer, PASSWORD, TestDb, admin_url};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Tables memberdesk would create, as found in the server's default database.
async fn tables_in_default_database() -> Vec<Option<String>> {
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    let found = sqlx::query_scalar(
        "SELECT to_regclass(name)::text FROM unnest(ARRAY['users', 'audit_entries', '_sqlx_migrations']) AS name",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    admin.close().await;
    found
}

/// Every command that opens the database refuses, before connecting, a
/// `DATABASE_URL` that is empty (it used to mean the default database) or
/// names no database (the migrations used to land in the server's default
/// database, `postgres`), and says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_nameless_database_url_is_refused_by_every_command() {
    let before = tables_in_default_database().await;
    let server = admin_url();
    let (base, _) = server.rsplit_once('/').unwrap();
    let nameless = format!("{base}/");
    let host_and_port = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let user = base
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .map_or("postgres", |(user, _)| user);
    let refusals = [
        (
            "",
            "error: DATABASE_URL is set but empty: set it to your database's URL, e.g. postgres://USER@HOST:5432/memberdesk, or unset it to use postgres://localhost/memberdesk\n".to_owned(),
        ),
        (
            nameless.as_str(),
            format!("error: DATABASE_URL names no database, so memberdesk would put its tables in the server's default database: end it with the database's name, e.g. postgres://{user}@{host_and_port}/memberdesk\n"),
        ),
        (
            "mysql://root@127.0.0.1:3306/members",
            "error: DATABASE_URL is a mysql:// URL, but memberdesk needs PostgreSQL: set it to a postgres:// URL, e.g. postgres://USER@HOST:5432/memberdesk\n".to_owned(),
        ),
        (
            "host=127.0.0.1 port=5432 user=postgres password=s3cret dbname=members",
            "error: DATABASE_URL is a libpq key/value string, but memberdesk takes a URL: write it as postgres://postgres:PASSWORD@127.0.0.1:5432/members\n".to_owned(),
        ),
    ];
    let commands: [&[&str]; 5] = [
        &["migrate"],
        &["seed-demo"],
        &["serve", "--bind", "127.0.0.1:0"],
        &["deactivate-dormant", "--days", "30"],
        &createsuperuser("boss"),
    ];
    for (url, line) in &refusals {
        for args in commands {
            let out = memberdesk(url, args, Some(PASSWORD));
            assert_eq!(
                out.status.code(),
                Some(1),
                "{args:?} with {url:?}: {}",
                text(&out)
            );
            assert_eq!(stderr(&out), *line, "{args:?} with {url:?}");
            assert!(out.stdout.is_empty(), "{}", text(&out));
        }
    }
    assert_eq!(
        tables_in_default_database().await,
        before,
        "nothing created in the server's default database"
    );
}

/// A listener on 127.0.0.1 that is not PostgreSQL: `answer` is what it
/// writes to each connection (nothing: it holds the connection silently,
/// as a Redis does with PostgreSQL's first bytes).
fn impostor(answer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut first = [0u8; 8];
            let _ = stream.read(&mut first);
            if !answer.is_empty() {
                let _ = stream.write_all(answer);
            }
            held.push(stream);
        }
    });
    port
}

/// "Start PostgreSQL" only when nothing listens; a port where something
/// else answers (or stays silent) gets its own line, within the connect
/// timeout instead of hanging.
#[test]
fn connection_failures_name_what_answers_on_the_port() {
    let silent = impostor(b"");
    let timeout = [
        ("MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS", "1"),
        ("NO_COLOR", "1"),
    ];
    for args in [&["migrate"][..], &["deactivate-dormant", "--days", "30"]] {
        let url = format!("postgres://postgres@127.0.0.1:{silent}/memberdesk");
        let (out, took) = memberdesk_within(
            args,
            &[&[("DATABASE_URL", url.as_str())], &timeout[..]].concat(),
            Duration::from_secs(20),
        );
        assert_eq!(
            stderr(&out),
            format!(
                "error: no answer from PostgreSQL at 127.0.0.1:{silent}/memberdesk within 1 s: something accepts connections on that port but does not speak PostgreSQL's protocol: check the port in DATABASE_URL (PostgreSQL's default is 5432), or raise MEMBERDESK_DB_CONNECT_TIMEOUT_SECONDS for a slow server\n"
            ),
            "{args:?}"
        );
        assert!(
            took < Duration::from_secs(6),
            "gave up after the timeout, not {took:?}"
        );
    }

    // Nothing listens: the refusal itself, also where the pool (not a
    // first direct connection) gave up retrying.
    for args in [&["migrate"][..], &["deactivate-dormant", "--days", "30"]] {
        let url = "postgres://postgres@127.0.0.1:1/memberdesk";
        let (out, _) = memberdesk_within(
            args,
            &[&[("DATABASE_URL", url)], &timeout[..]].concat(),
            Duration::from_secs(20),
        );
        let line = stderr(&out);
        assert!(
            line.starts_with("error: cannot reach PostgreSQL at 127.0.0.1:1/memberdesk: Connection refused (os error 111). PostgreSQL is "),
            "{args:?}: {line}"
        );
    }

    let http = impostor(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
    let url = format!("postgres://postgres@127.0.0.1:{http}/memberdesk");
    let (out, _) = memberdesk_within(
        &["migrate"],
        &[("DATABASE_URL", url.as_str()), ("NO_COLOR", "1")],
        Duration::from_secs(20),
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: what answers at 127.0.0.1:{http}/memberdesk is not PostgreSQL: unexpected response from SSLRequest: 0x48. Check the port in DATABASE_URL (PostgreSQL's default is 5432)\n"
        )
    );

    let (out, _) = memberdesk_within(
        &["migrate"],
        &[
            (
                "DATABASE_URL",
                "postgres://postgres@no-such-host.invalid/memberdesk",
            ),
            ("NO_COLOR", "1"),
        ],
        Duration::from_secs(20),
    );
    let line = stderr(&out);
    assert!(
        line.ends_with("The host name no-such-host.invalid does not resolve: correct the host in DATABASE_URL\n"),
        "{line}"
    );
    assert!(!line.contains("start"), "no server to start: {line}");
}

/// A mistyped variable is named with the one meant; a log filter or format
/// that is not valid stops startup naming the variable (a mistyped level
/// used to silence every line); colours only for a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_settings_are_named_and_bad_log_settings_stop_startup() {
    let db = TestDb::new().await;
    let url = db.url.as_str();
    let (out, _) = memberdesk_within(
        &["migrate"],
        &[("DATABASE_URL", url), ("MEMBERDESK_LOGLEVEL", "debug")],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = stderr(&out);
    assert!(
        !log.contains('\u{1b}'),
        "no colours when stderr is not a terminal: {log:?}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("  WARN ").map(|(_, w)| w))
        .collect();
    assert_eq!(
        warnings,
        [
            "memberdesk::cli: MEMBERDESK_LOGLEVEL is not a memberdesk setting and is ignored: did you mean MEMBERDESK_LOG?"
        ],
        "{log}"
    );

    // On a terminal (util-linux `script` gives one) the warning has
    // colours, unless NO_COLOR says otherwise.
    for (no_color, coloured) in [("", true), ("1", false)] {
        let on_terminal = Command::new("script")
            .args([
                "-qec",
                &format!("'{}' migrate", env!("CARGO_BIN_EXE_memberdesk")),
                "/dev/null",
            ])
            .env("DATABASE_URL", url)
            .env("MEMBERDESK_LOGLEVEL", "debug")
            .env("NO_COLOR", no_color)
            .stdin(Stdio::null())
            .output();
        let Ok(out) = on_terminal else {
            eprintln!("SKIPPED the terminal check: no `script` command");
            break;
        };
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("MEMBERDESK_LOGLEVEL is not a memberdesk setting"),
            "{shown}"
        );
        assert_eq!(
            shown.contains('\u{1b}'),
            coloured,
            "NO_COLOR={no_color:?}: {shown:?}"
        );
    }

    let (out, _) = memberdesk_within(
        &["migrate"],
        &[("DATABASE_URL", url), ("MEMBERDESK_LOG", "debugg")],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: MEMBERDESK_LOG: 'debugg' is not a log level (off, error, warn, info, debug, trace); for one module write module=level, e.g. MEMBERDESK_LOG=debug or MEMBERDESK_LOG=memberdesk=debug,sqlx=warn\n"
    );

    let (out, _) = memberdesk_within(
        &["migrate"],
        &[("DATABASE_URL", url), ("MEMBERDESK_LOG_FORMAT", "xml")],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "error: invalid value 'xml' for '--log-format <LOG_FORMAT>': MEMBERDESK_LOG_FORMAT (or --log-format) must be text or json"
        )
    );
}

/// `migrate` says what it applied, and "already up to date" when nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_says_what_it_applied_or_that_it_was_up_to_date() {
    let db = TestDb::new().await;
    let target = db
        .url
        .rsplit_once('@')
        .map_or(db.url.as_str(), |(_, t)| t)
        .to_owned();
    let mut shipped: Vec<String> = std::fs::read_dir("migrations")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    shipped.sort();
    let out = memberdesk(&db.url, &["migrate"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{target} is already up to date ({} migrations)\n",
            shipped.len()
        )
    );

    db.drop_database().await;
    let descriptions: Vec<String> = shipped
        .iter()
        .map(|file| {
            let (_, name) = file.trim_end_matches(".sql").split_once('_').unwrap();
            name.replace('_', " ")
        })
        .collect();
    let out = memberdesk(&db.url, &["migrate"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "applied {} migrations to {target}: {}\n",
            shipped.len(),
            descriptions.join(", ")
        )
    );
}

/// Each request's log line names the GraphQL root fields it called and the
/// codes of its errors (each once), besides its status (200 for most GraphQL
/// errors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_lines_name_the_operation_and_its_error_codes() {
    let db = TestDb::new().await;
    let server = LoggedServer::start(&db, &[], &[("MEMBERDESK_LOG_FORMAT", "json")]).await;
    let url = server.url.clone();
    let client = reqwest::Client::new();
    let requests = [
        ("anonymous-me", "{ me { id } a: me { username } }"),
        (
            "failed-login",
            "mutation { login(username: \"nobody\", password: \"not the password\") { token } }",
        ),
        ("two-fields", "{ me { id } users(first: 1) { totalCount } }"),
        ("invalid", "{ nope }"),
        ("fine", "{ __typename }"),
    ];
    for (id, query) in requests {
        client
            .post(&url)
            .header("x-request-id", id)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
    }
    client
        .get(url.replace("/graphql", "/healthz"))
        .header("x-request-id", "health")
        .send()
        .await
        .unwrap();
    let logged = server.stop();
    let line = |id: &str| -> Value {
        let mut fields = logged
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["span"]["request_id"] == id && l["fields"]["message"] == "request")
            .unwrap_or_else(|| panic!("no request line for {id}: {logged}"))["fields"]
            .clone();
        assert!(fields["elapsed_ms"].is_number());
        fields.as_object_mut().unwrap().remove("elapsed_ms");
        fields
    };
    let graphql = |operation: &str, codes: &str| json!({ "message": "request", "method": "POST", "path": "/graphql", "status": 200, "operation": operation, "error_codes": codes });
    assert_eq!(line("anonymous-me"), graphql("me", "UNAUTHENTICATED"));
    assert_eq!(
        line("failed-login"),
        graphql("login", "INVALID_CREDENTIALS")
    );
    assert_eq!(line("two-fields"), graphql("me,users", "UNAUTHENTICATED"));
    assert_eq!(line("invalid"), graphql("none", "INVALID_INPUT"));
    let mut fine = graphql("__typename", "");
    fine.as_object_mut().unwrap().remove("error_codes");
    assert_eq!(line("fine"), fine, "no error codes when there is no error");
    assert_eq!(
        line("health"),
        json!({ "message": "request", "method": "GET", "path": "/healthz", "status": 200 })
    );
}
