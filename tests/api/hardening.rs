//! Hardening of the HTTP server and its inputs: the headers that tell browsers
//! how to treat each answer, TLS to PostgreSQL, clients that stall while
//! sending a request (headers or body), the connection cap, and instants that
//! PostgreSQL cannot hold.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use memberdesk::config::{ConnectionLimits, Settings};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, snapshot};

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

// ---- Response headers -------------------------------------------------------

/// The playground's CSP: own files only, no inline script, no framing.
fn assert_playground_csp(resp: &reqwest::Response) {
    let csp = header(resp, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self' 'nonce-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp:?}");
    }
    for loophole in ["unsafe-inline", "unsafe-eval", "*", "http:", "https:"] {
        assert!(!csp.contains(loophole), "{loophole} in {csp:?}");
    }
    assert_eq!(header(resp, "x-content-type-options"), "nosniff");
}

/// The one style GraphiQL creates (its dialogs' scroll lock) is allowed by a
/// nonce that the page carries and that is fresh on every response.
async fn assert_fresh_style_nonce(app: &TestApp, earlier: &reqwest::Response) {
    let nonce = |csp: &str| {
        csp.split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no style nonce in {csp:?}"))
            .to_owned()
    };
    let first = nonce(header(earlier, "content-security-policy"));
    let again = app.get("/").send().await.unwrap();
    let second = nonce(header(&again, "content-security-policy"));
    let page = again.text().await.unwrap();
    assert!(page.contains(&format!(
        "name=\"memberdesk-style-nonce\" content=\"{second}\""
    )));
    assert!(first != second && first.len() >= 16, "{first} {second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_allows_only_its_own_files_and_no_framing() {
    let app = TestApp::spawn().await;
    let root = app.get("/").send().await.unwrap();
    assert_playground_csp(&root);
    let page = root.text().await.unwrap();
    let in_browser = app
        .get("/graphql")
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert!(header(&in_browser, "content-type").starts_with("text/html"));
    assert_playground_csp(&in_browser);

    // Nothing inline for the policy to block: every script and stylesheet is
    // a file memberdesk serves itself.
    assert!(!page.contains("<script>") && !page.contains("<style") && !page.contains(" style="));
    let files: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/playground/assets/"))
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let resp = app.get(file).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{file}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{file}");
    }
    assert_fresh_style_nonce(&app, &in_browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_nosniff_and_graphql_answers_are_never_stored() {
    let app = TestApp::spawn_with(Settings {
        max_body_bytes: 64,
        ..Settings::default()
    })
    .await;
    let query = json!({ "query": "{ __typename }" });
    let answers = [
        app.get("/healthz"),
        app.get("/readyz"),
        app.get("/metrics"),
        app.get("/no-such-route"),
        app.get("/playground/assets/nope.js"),
        app.get("/graphql").query(&[("query", "{ __typename }")]),
        app.post("/graphql").json(&query),
        app.post("/graphql").json(&json!({ "query": "{ nope }" })),
        app.post("/graphql")
            .header(CONTENT_TYPE, "text/plain")
            .body("{}"),
        app.client.put(app.url("/graphql")).json(&query),
        app.post("/graphql")
            .json(&json!({ "query": "x".repeat(100) })),
        app.get("/graphql")
            .query(&[("query", "mutation { logout }")]),
    ];
    for request in answers {
        let resp = request.send().await.unwrap();
        let what = format!("{} {}", resp.status(), resp.url());
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{what}");
        if resp.url().path() == "/graphql" {
            assert!(header(&resp, "content-type").contains("json"), "{what}");
            assert_eq!(header(&resp, CACHE_CONTROL.as_str()), "no-store", "{what}");
        }
    }
}

// ---- TLS to PostgreSQL ------------------------------------------------------

/// Whether the test cluster speaks TLS, turning it on (Debian's cluster has
/// a snakeoil certificate for it) when it is off.
async fn cluster_has_tls(pool: &sqlx::PgPool) -> bool {
    let show = || sqlx::query_scalar::<_, String>("SHOW ssl").fetch_one(pool);
    if show().await.unwrap() == "on" {
        return true;
    }
    let _ = sqlx::query("ALTER SYSTEM SET ssl = on").execute(pool).await;
    let _ = sqlx::query("SELECT pg_reload_conf()").execute(pool).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    show().await.unwrap() == "on"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_connects_over_tls_and_serves() {
    let app = TestApp::spawn().await;
    if !cluster_has_tls(app.pool()).await {
        eprintln!("SKIPPED: the test cluster has ssl = off and no certificate to turn it on");
        return;
    }
    let url = format!("{}?sslmode=require", app.db.url);
    let pool = memberdesk::db::connect(&url, false)
        .await
        .unwrap_or_else(|e| panic!("sslmode=require: {e}"));
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the connection is not encrypted");

    let server = memberdesk::http::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", server.addr);
    tokio::spawn(server.serve(pool, Settings::default(), std::future::pending()));
    let ready = app
        .client
        .get(format!("{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

// ---- Slow and stalled clients -----------------------------------------------

fn limits(header: u64, body: u64, keep_alive: u64, max_connections: usize) -> Settings {
    Settings {
        connections: ConnectionLimits {
            header_timeout: Duration::from_secs(header),
            body_timeout: Duration::from_secs(body),
            keep_alive_timeout: Duration::from_secs(keep_alive),
            max_connections,
        },
        ..Settings::default()
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (at most `limit`); returns
/// what it sent and how long it took.
async fn until_closed(
    stream: &mut TcpStream,
    started: Instant,
    limit: Duration,
) -> (String, Duration) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after {limit:?}; received {received:?}"),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

async fn stalled_count(app: &TestApp, phase: &str) -> u64 {
    let text = app.metrics().await;
    let series = format!("memberdesk_http_stalled_clients_total{{phase=\"{phase}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalling_in_their_headers_are_cut_off() {
    let app = TestApp::spawn_with(limits(1, 30, 30, 64)).await;
    let silent = connect(&app).await;
    let mut partial = connect(&app).await;
    partial
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: memberdesk\r\nContent-Ty")
        .await
        .unwrap();
    // Dripping a byte at a time does not buy more time.
    let mut dripping = connect(&app).await;
    let started = Instant::now();
    dripping
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let drip = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if dripping.write_all(b"X").await.is_err() {
                break;
            }
        }
        until_closed(&mut dripping, started, Duration::from_secs(6)).await
    };
    let (drip_got, drip_took) = drip.await;
    for (mut stream, what) in [(silent, "silent"), (partial, "partial")] {
        let (got, took) = until_closed(&mut stream, started, Duration::from_secs(6)).await;
        assert!(got.is_empty(), "{what}: {got}");
        assert!(
            took < Duration::from_secs(4),
            "{what}: closed after {took:?}"
        );
    }
    assert!(drip_got.is_empty(), "{drip_got}");
    assert!(
        drip_took >= Duration::from_millis(900) && drip_took < Duration::from_secs(4),
        "dripping client closed after {drip_took:?}"
    );
    assert_eq!(stalled_count(&app, "header").await, 3);
    // The server still serves everyone else.
    let ok = app.get("/healthz").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_its_body_is_answered_408_and_cut_off() {
    let app = TestApp::spawn_with(limits(1, 2, 30, 64)).await;
    app.user("rani", false, false).await;
    let before = snapshot(app.pool()).await;
    let body =
        json!({ "query": "mutation { login(username: \"rani\", password: \"x\") { token } }" })
            .to_string();
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: memberdesk\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..20]).await.unwrap();
    let (got, took) = until_closed(&mut stream, started, Duration::from_secs(8)).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.to_lowercase().contains("connection: close"), "{got}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "cut off after {took:?}"
    );
    assert_eq!(stalled_count(&app, "body").await, 1);
    assert_eq!(snapshot(app.pool()).await, before, "nothing ran");
}

/// Slow but within the limits is served: a body in pieces, a pause after
/// `Expect: 100-continue` longer than the header timeout, and a second
/// request on a kept-alive connection; an idle connection is closed once the
/// keep-alive timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_within_the_limits_are_served_and_idle_ones_closed() {
    let app = TestApp::spawn_with(limits(1, 4, 2, 64)).await;
    let body = json!({ "query": "{ __typename }" }).to_string();
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (first, rest) = body.as_bytes().split_at(5);
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stream.write_all(rest).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("__typename"), "{answer}");

    // Kept alive: a second request after a pause shorter than the timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then idle past the keep-alive timeout: closed, and not counted as stalled.
    let started = Instant::now();
    let (got, took) = until_closed(&mut stream, started, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "{got}");
    assert!(
        took >= Duration::from_millis(1500),
        "idle closed after {took:?}"
    );
    assert_eq!(stalled_count(&app, "header").await, 0);
    assert_eq!(stalled_count(&app, "body").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_ends() {
    let app = TestApp::spawn_with(limits(2, 30, 30, 2)).await;
    let holders = [connect(&app).await, connect(&app).await];
    // Let the server accept both before the third comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let third = reqwest::Client::new()
        .get(format!("{}/healthz", app.addr))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(third.status(), 200);
    // Served only once the stalled holders were cut off (2 s after they came).
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "the third connection waited {waited:?}"
    );
    // The third was let in when the first holder was cut off; the second's
    // cut-off may come a moment later, and closing it from this side first
    // would be a client leaving, not one cut off: wait, then close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stalled_count(&app, "header").await < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stalled_count(&app, "header").await, 2);
    drop(holders);
}

// ---- Instants PostgreSQL cannot hold ----------------------------------------

fn first_error(resp: &Value) -> (String, String) {
    let ext = &resp["errors"][0]["extensions"];
    let code = ext["code"].as_str().unwrap_or_else(|| panic!("{resp:#}"));
    (
        code.to_owned(),
        ext["field"].as_str().unwrap_or("").to_owned(),
    )
}

fn forged_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({ "k": key, "i": 1 }).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_outside_postgresqls_range_are_invalid_input_naming_the_field() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    app.user("rani", false, false).await;
    let before = snapshot(app.pool()).await;
    let ancient = "-10000-01-01T00:00:00Z";
    let cases = [
        (
            "query($t: DateTime!) { users(filter: {lastLoginBefore: $t}) { totalCount } }",
            json!({ "t": ancient }),
            "lastLoginBefore",
        ),
        (
            "mutation($t: DateTime!) { deactivateUsers(filter: {lastLoginBefore: $t}) { deactivated { username } } }",
            json!({ "t": ancient }),
            "lastLoginBefore",
        ),
        (
            "query($t: DateTime!) { auditLog(filter: {since: $t}) { totalCount } }",
            json!({ "t": ancient }),
            "since",
        ),
        (
            "query($t: DateTime!) { auditLog(filter: {until: $t}) { totalCount } }",
            json!({ "t": "-4713-11-23T23:59:59Z" }),
            "until",
        ),
        (
            "query($c: String!) { users(orderBy: DATE_JOINED_ASC, after: $c) { totalCount } }",
            json!({ "c": forged_cursor("0000-01-01T00:00:00Z") }),
            "after",
        ),
        (
            "query($c: String!) { users(orderBy: LAST_LOGIN_DESC, after: $c) { totalCount } }",
            json!({ "c": forged_cursor("0000-06-30T12:00:00+00:00") }),
            "after",
        ),
    ];
    for (query, variables, field) in cases {
        let resp = app.gql(Some(&token), query, variables).await;
        assert_eq!(
            first_error(&resp),
            ("INVALID_INPUT".into(), field.into()),
            "{query}: {resp:#}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before, "nothing changed");

    // PostgreSQL's earliest instant itself is a valid filter.
    let data = app
        .ok(
            Some(&token),
            "query($t: DateTime!) { users(filter: {lastLoginBefore: $t}) { totalCount } auditLog(filter: {since: $t}) { totalCount } }",
            json!({ "t": "-4713-11-24T00:00:00Z" }),
        )
        .await;
    assert_eq!(data["users"]["totalCount"], 0);
}
