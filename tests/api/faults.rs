//! The server under faults: cut database connections, a shutdown with
//! requests in flight. It must keep answering with contract errors, recover
//! by itself, and lose nothing half done.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{memberdesk_with, text};
use crate::helpers::{PASSWORD, TestApp, TestDb, snapshot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_by_itself_when_database_connections_are_cut() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let page = "{ users(first: 5) { totalCount } }";
    app.ok(Some(&token), page, json!({})).await;
    let before = snapshot(app.pool()).await;

    // Kill every server connection to the test database, as a failover or an
    // operator's pg_terminate_backend would.
    let admin = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(killed > 0);

    // A request may meet a dead connection once; it gets a contract error,
    // never a hang or a dropped connection, and the server heals itself.
    let started = Instant::now();
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(10) {
        let resp = app.gql(Some(&token), page, json!({})).await;
        if resp.get("errors").is_none() {
            recovered = true;
            break;
        }
        let code = resp["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            ["INTERNAL", "UNAUTHENTICATED"].contains(&code.as_str()),
            "{resp}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the server did not recover without a restart");
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);
    admin.close().await;
    assert_eq!(snapshot(app.pool()).await, before, "nothing half done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let db = TestDb::new().await;
    // The password from the environment, as a deployment script passes it.
    let args = [
        "createsuperuser",
        "--username",
        "boss",
        "--email",
        "b@example.org",
    ];
    let out = memberdesk_with(&db.url, &args, &[("MEMBERDESK_PASSWORD", PASSWORD)], None);
    assert!(out.status.success(), "{}", text(&out));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Logins are the slowest requests (one argon2 verification each).
    let login = json!({ "query": format!("mutation {{ login(username: \"boss\", password: \"{PASSWORD}\") {{ token }} }}") });
    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            let req = client.post(format!("{url}/graphql")).json(&login).send();
            tokio::spawn(async move {
                let resp = req.await?;
                let status = resp.status();
                let body: serde_json::Value = resp.json().await?;
                Ok::<_, reqwest::Error>((status, body["data"]["login"]["token"].is_string()))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let (mut finished, mut logged_in) = (0, 0);
    for request in in_flight {
        if let Ok((status, got_token)) = request.await.unwrap() {
            assert_eq!(status, 200);
            finished += 1;
            logged_in += i64::from(got_token);
        }
    }
    assert!(finished > 0, "in-flight requests were cut off");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        client.get(format!("{url}/healthz")).send().await.is_err(),
        "new requests are refused"
    );
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // Beyond the per-username limit, parallel logins are refused before their
    // password is checked, so not every answer is a session.
    assert_eq!(
        sessions, logged_in,
        "each successful login left exactly its session"
    );
}

async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> serde_json::Value {
    let resp = client
        .post(format!("{url}/graphql"))
        .json(body)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

async fn serve_with(pool: sqlx::PgPool) -> String {
    let server = memberdesk::http::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", server.addr);
    tokio::spawn(server.serve(
        pool,
        memberdesk::config::Settings::default(),
        std::future::pending(),
    ));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_is_503_on_readyz_and_a_prompt_internal_error() {
    let nowhere = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/memberdesk")
        .unwrap();
    let url = serve_with(nowhere).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let started = Instant::now();
    let login =
        json!({ "query": "mutation { login(username: \"a\", password: \"b\") { token } }" });
    let resp = post(&client, &url, &login).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "INTERNAL",
        "{resp}"
    );
    assert_eq!(
        resp["errors"][0]["message"], "internal error",
        "no details leak"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not prompt: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_gives_a_prompt_error_then_recovers() {
    let db = TestDb::new().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&db.url)
        .await
        .unwrap();
    let url = serve_with(pool.clone()).await;
    let client = reqwest::Client::new();
    let query = json!({ "query": "mutation { login(username: \"nobody\", password: \"not this one\") { token } }" });
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let resp = post(&client, &url, &query).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "INTERNAL",
        "{resp}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a hang: {:?}",
        started.elapsed()
    );
    drop(held);
    let resp = post(&client, &url, &query).await;
    // The database answered this time: the login itself is refused.
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "INVALID_CREDENTIALS",
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_is_cut_by_the_statement_timeout() {
    let db = TestDb::new().await;
    let settings = memberdesk::db::PoolSettings {
        statement_timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let pool = memberdesk::db::connect_with(&db.url, false, &settings)
        .await
        .unwrap();
    let url = serve_with(pool).await;
    let client = reqwest::Client::new();
    let query = json!({ "query": "mutation { login(username: \"nobody\", password: \"not this one\") { token } }" });

    // Another client holds the users table: every statement reading it waits,
    // as it would behind a runaway migration or a stuck batch job.
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let resp = post(&client, &url, &query).await;
    let waited = started.elapsed();
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "INTERNAL",
        "{resp}"
    );
    assert_eq!(resp["errors"][0]["message"], "internal error");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "the statement was not cut by the 1 s timeout: {waited:?}"
    );
    blocker.rollback().await.unwrap();

    // The cancelled statement left the connection usable: the next request
    // reaches the database and is answered normally.
    let resp = post(&client, &url, &query).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "INVALID_CREDENTIALS",
        "{resp}"
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_entries")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        1,
        "only the second, answered login was audited"
    );
}

/// Behind PgBouncer the timeout cannot travel as a startup option, so it can
/// be left to the server (the role, the database or the pooler's
/// `connect_query`): then memberdesk sends none and the server's applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_can_be_left_to_the_server() {
    let db = TestDb::new().await;
    let show = "SHOW statement_timeout";
    let servers: String = sqlx::query_scalar(show)
        .fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    for (timeout, expected) in [
        (Some(Duration::from_secs(7)), "7s"),
        (None, servers.as_str()),
    ] {
        let settings = memberdesk::db::PoolSettings {
            statement_timeout: timeout,
            ..Default::default()
        };
        let pool = memberdesk::db::connect_with(&db.url, false, &settings)
            .await
            .unwrap();
        let seen: String = sqlx::query_scalar(show).fetch_one(&pool).await.unwrap();
        assert_eq!(seen, expected, "with {timeout:?}");
        pool.close().await;
    }
}
