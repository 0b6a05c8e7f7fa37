//! Authentication over HTTP: login outcomes and their audit trail, how
//! sessions end (expiry, logout, password change, deactivation), the
//! failed-login rate limits, and that no secret ever leaks into a response.

use std::time::Duration;

use memberdesk::config::{LoginLimit, Settings};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, user_id};

const LOGIN: &str = "mutation($u: String!, $p: String!) { \
    login(username: $u, password: $p) { token expiresAt user { id username lastLogin isActive } } }";

const NEW_PASSWORD: &str = "a different long passphrase 42";

/// Failed-login limits: per username from one address, per address, and
/// per username over all addresses.
fn limits(
    per_username_and_address: i32,
    per_address: i32,
    per_username: i32,
    window: Duration,
) -> Settings {
    Settings {
        login_limit: LoginLimit {
            per_username,
            per_username_and_address,
            per_address,
            window,
        },
        ..Settings::default()
    }
}

async fn try_login(app: &TestApp, username: &str, password: &str) -> Value {
    app.gql(None, LOGIN, json!({ "u": username, "p": password }))
        .await
}

fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {resp:#}"))
}

/// Every error code in a response, in order.
fn codes(resp: &Value) -> Vec<String> {
    resp["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The counter of `key` (as the login code names it: a username key, an
/// address, or both), which the table holds under its keyed digest.
async fn failures(app: &TestApp, scope: &str, key: &str) -> i32 {
    sqlx::query_scalar::<_, i32>(
        "SELECT failures FROM login_failures WHERE scope = $1 AND key = name_digest($2)",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(app.pool())
    .await
    .expect("read login_failures")
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_token_user_and_expiry() {
    let app = TestApp::spawn().await;
    let rani = app.user("rani", false, false).await;
    let before = chrono::Utc::now();
    let resp = try_login(&app, "rani", PASSWORD).await;
    assert!(resp.get("errors").is_none(), "{resp:#}");
    let login = &resp["data"]["login"];
    let token = login["token"].as_str().unwrap();
    // A guessable token would make sessions forgeable.
    assert!(token.len() >= 32, "token too short: {token}");
    assert_eq!(login["user"]["id"], user_id(&rani));
    assert_eq!(login["user"]["username"], "rani");
    assert!(login["user"]["lastLogin"].is_string());
    let expires: chrono::DateTime<chrono::Utc> =
        login["expiresAt"].as_str().unwrap().parse().unwrap();
    let ttl = expires - before;
    assert!(
        ttl > chrono::Duration::hours(11)
            && ttl <= chrono::Duration::hours(12) + chrono::Duration::minutes(1),
        "expiresAt should follow the 12 h default session_ttl, got {ttl}"
    );
    assert!(app.me(token).await.is_ok());

    // Only a digest is stored, so a database leak does not hand out sessions.
    let raw: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_ne!(raw, token.as_bytes());
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE position($1::bytea in token_hash) > 0",
    )
    .bind(token.as_bytes())
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_are_indistinguishable() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let wrong = try_login(&app, "rani", "not the password at all").await;
    let unknown = try_login(&app, "nobody-here", "not the password at all").await;
    assert_eq!(code(&wrong), "INVALID_CREDENTIALS");
    assert_eq!(code(&unknown), "INVALID_CREDENTIALS");
    // Any difference would let a caller enumerate accounts.
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    // Everything but the request's own id.
    let extensions = |resp: &Value| {
        let mut ext = resp["errors"][0]["extensions"].clone();
        ext.as_object_mut().unwrap().remove("requestId");
        ext
    };
    assert_eq!(extensions(&wrong), extensions(&unknown));
    assert!(wrong["data"].is_null() && unknown["data"].is_null());
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_account_is_revealed_only_with_the_right_password() {
    let app = TestApp::spawn().await;
    let rani = app.user("rani", false, false).await;
    app.execute("UPDATE users SET is_active = false WHERE id = $1", rani.id)
        .await;
    assert_eq!(
        code(&try_login(&app, "rani", PASSWORD).await),
        "ACCOUNT_INACTIVE"
    );
    // Without the password, nothing about the account's state may show.
    assert_eq!(
        code(&try_login(&app, "rani", "not the password at all").await),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused() {
    let app = TestApp::spawn_with(Settings {
        session_ttl: chrono::Duration::seconds(2),
        ..Settings::default()
    })
    .await;
    app.user("rani", false, false).await;
    let token = app.login("rani", PASSWORD).await;
    assert!(app.me(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.me(&token).await.unwrap_err(), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expired_in_the_database_is_refused() {
    let app = TestApp::spawn().await;
    let rani = app.user("rani", false, false).await;
    let token = app.login("rani", PASSWORD).await;
    assert!(app.me(&token).await.is_ok());
    app.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        rani.id,
    )
    .await;
    assert_eq!(app.me(&token).await.unwrap_err(), "UNAUTHENTICATED");
    // An expired session must not be revivable by logging out with it either.
    assert_eq!(
        app.err_code(Some(&token), "mutation { logout }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_tokens_are_refused() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let token = app.login("rani", PASSWORD).await;
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(app.me(&tampered).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(app.me("x").await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(
        app.me(&"a".repeat(5000)).await.unwrap_err(),
        "UNAUTHENTICATED"
    );
    // A token in the wrong scheme must not be accepted as if it were Bearer.
    let basic = app
        .post("/graphql")
        .header("authorization", format!("Basic {token}"));
    let resp = basic
        .json(&json!({ "query": "{ me { username } }" }))
        .send();
    let resp: Value = resp.await.unwrap().json().await.unwrap();
    assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp:#}");
    assert!(app.me(&token).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_only_the_current_token() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let first = app.login("rani", PASSWORD).await;
    let second = app.login("rani", PASSWORD).await;
    let data = app.ok(Some(&first), "mutation { logout }", json!({})).await;
    assert_eq!(data["logout"], true);
    assert_eq!(app.me(&first).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(
        app.err_code(Some(&first), "mutation { logout }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
    assert!(app.me(&second).await.is_ok());
    assert_eq!(
        app.err_code(None, "mutation { logout }", json!({})).await,
        "UNAUTHENTICATED"
    );
    assert_eq!(app.audit_count("LOGOUT").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_password_change_revokes_other_sessions_but_keeps_this_one() {
    let app = TestApp::spawn().await;
    let rani = app.user("rani", false, false).await;
    let current = app.login("rani", PASSWORD).await;
    let other = app.login("rani", PASSWORD).await;
    let changed = app
        .set_password(&current, &user_id(&rani), NEW_PASSWORD)
        .current_password(PASSWORD)
        .ok()
        .await;
    assert_eq!(changed, true);
    assert!(app.me(&current).await.is_ok());
    assert_eq!(app.me(&other).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(
        code(&try_login(&app, "rani", PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    app.login("rani", NEW_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_reset_revokes_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.staff_with("helpdesk", &["auth.change_user"]).await;
    let rani = app.user("rani", false, false).await;
    let a = app.login("rani", PASSWORD).await;
    let b = app.login("rani", PASSWORD).await;
    app.set_password(&admin, &user_id(&rani), NEW_PASSWORD)
        .ok()
        .await;
    // Whoever may know the old password must be locked out everywhere.
    assert_eq!(app.me(&a).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(app.me(&b).await.unwrap_err(), "UNAUTHENTICATED");
    assert!(app.me(&admin).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_deactivated_in_the_database_loses_their_token_at_once() {
    let app = TestApp::spawn().await;
    let (rani, token) = app.staff_with("rani", &["auth.view_user"]).await;
    assert!(app.me(&token).await.is_ok());
    // Another server instance (or an operator) may flip the flag directly:
    // the session must not outlive it, not even for a cache lifetime.
    app.execute("UPDATE users SET is_active = false WHERE id = $1", rani.id)
        .await;
    assert_eq!(app.me(&token).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(
        app.err_code(Some(&token), "{ users { totalCount } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}

/// The low limit is per username *and client address*: whoever guessed is
/// locked out from their address, right password or not (the test client is
/// 127.0.0.1; `accounts_security.rs` shows the owner elsewhere unaffected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_per_username_from_one_address_lock_it_out_even_with_the_right_password() {
    let app = TestApp::spawn_with(limits(3, 1000, 1000, Duration::from_secs(4))).await;
    app.user("rani", false, false).await;
    app.user("sam", false, false).await;
    // Case variants are one account, so they must share one counter.
    for name in ["rani", "RANI", "Rani"] {
        assert_eq!(
            code(&try_login(&app, name, "not the password at all").await),
            "INVALID_CREDENTIALS"
        );
    }
    assert_eq!(
        failures(&app, "username_address", "127.0.0.1 rani").await,
        3
    );
    assert_eq!(failures(&app, "username", "rani").await, 3);
    assert_eq!(
        code(&try_login(&app, "rani", PASSWORD).await),
        "RATE_LIMITED"
    );
    assert_eq!(
        code(&try_login(&app, "rani", "not the password at all").await),
        "RATE_LIMITED"
    );
    // Refused attempts are not checked, so they do not extend the count.
    assert_eq!(
        failures(&app, "username_address", "127.0.0.1 rani").await,
        3
    );
    assert_eq!(failures(&app, "username", "rani").await, 3);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    // The limit is per username: others on the same address are unaffected.
    app.login("sam", PASSWORD).await;

    // Once the window closes the account is usable again.
    tokio::time::sleep(Duration::from_millis(4300)).await;
    app.login("rani", PASSWORD).await;
    assert_eq!(
        failures(&app, "username_address", "127.0.0.1 rani").await,
        0
    );
    assert_eq!(failures(&app, "username", "rani").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_per_address_lock_out_every_username() {
    let app = TestApp::spawn_with(limits(100, 4, 100, Duration::from_secs(600))).await;
    app.user("rani", false, false).await;
    for i in 0..4 {
        assert_eq!(
            code(&try_login(&app, &format!("guess{i}"), "not the password at all").await),
            "INVALID_CREDENTIALS"
        );
    }
    assert_eq!(failures(&app, "address", "127.0.0.1").await, 4);
    // A spray across many usernames from one address is what this limit is for.
    assert_eq!(
        code(&try_login(&app, "rani", PASSWORD).await),
        "RATE_LIMITED"
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
}

fn aliased_logins(pairs: &[(String, String)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .enumerate()
        .map(|(i, (u, p))| format!("a{i}: login(username: {u:?}, password: {p:?}) {{ token }}"))
        .collect();
    format!("mutation {{ {} }}", fields.join(" "))
}

// A request may hash at most one password (login, setPassword, createUser):
// aliased logins used to be each counted against the failed-login limits;
// now the request is refused before any of them is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_logins_in_one_request_are_refused_before_any_is_checked() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let mut guesses: Vec<(String, String)> = (0..50)
        .map(|i| ("rani".to_owned(), format!("guess number {i}")))
        .collect();
    // The right password last: it must not get through behind the guesses.
    guesses.push(("rani".to_owned(), PASSWORD.to_owned()));
    let spray: Vec<(String, String)> = (0..50)
        .map(|i| (format!("user{i}"), "not the password at all".to_owned()))
        .collect();
    let pair = &guesses[49..];
    for pairs in [&guesses[..], &spray[..], pair] {
        let resp = app.gql(None, &aliased_logins(pairs), json!({})).await;
        assert_eq!(codes(&resp), ["INVALID_INPUT"], "{resp:#}");
        assert!(resp.get("data").is_none(), "never executed: {resp:#}");
    }
    assert_eq!(app.count("SELECT count(*) FROM login_failures").await, 0);
    assert_eq!(app.audit_count("LOGIN_FAILED").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    // Nothing was counted: one login per request works as ever.
    app.login("rani", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failed_logins_do_not_exceed_the_limit() {
    let app = TestApp::spawn_with(limits(3, 1000, 1000, Duration::from_secs(600))).await;
    app.user("rani", false, false).await;
    // Parallel requests must not each pass the check before any is counted:
    // that would turn one burst into as many guesses as requests.
    let attempts = (0..12).map(|i| {
        let app = &app;
        async move { try_login(app, "rani", &format!("parallel guess {i}")).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let invalid = results
        .iter()
        .filter(|r| code(r) == "INVALID_CREDENTIALS")
        .count();
    let limited = results.iter().filter(|r| code(r) == "RATE_LIMITED").count();
    assert_eq!(invalid + limited, 12);
    assert!(
        invalid <= 3,
        "{invalid} passwords were checked in a burst against a limit of 3 ({limited} refused)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_failures_are_audited() {
    let app = TestApp::spawn().await;
    let rani = app.user("rani", false, false).await;
    app.login("rani", PASSWORD).await;
    try_login(&app, "rani", "not the password at all").await;
    try_login(&app, "Ghost", "not the password at all").await;

    type Row = (
        String,
        Option<i64>,
        Option<String>,
        Option<i64>,
        String,
        Option<Value>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT action, actor_id, actor_username, target_user_id, target_repr, details \
         FROM audit_entries WHERE action IN ('LOGIN', 'LOGIN_FAILED') ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");

    let (action, actor, actor_name, target, repr, details) = &rows[0];
    assert_eq!(action, "LOGIN");
    assert_eq!(*actor, Some(rani.id));
    assert_eq!(actor_name.as_deref(), Some("rani"));
    assert_eq!(*target, Some(rani.id));
    assert!(repr.contains("rani"), "{repr}");
    assert_eq!(details.as_ref().unwrap()["clientAddress"], "127.0.0.1");

    let (action, actor, _, target, repr, details) = &rows[1];
    assert_eq!(action, "LOGIN_FAILED");
    // Nobody was authenticated, so nobody may be recorded as the actor.
    assert_eq!(*actor, None);
    assert_eq!(*target, Some(rani.id));
    assert!(repr.contains("rani"), "{repr}");
    assert_eq!(details.as_ref().unwrap()["clientAddress"], "127.0.0.1");

    let (action, actor, _, target, repr, details) = &rows[2];
    assert_eq!(action, "LOGIN_FAILED");
    assert_eq!(*actor, None);
    assert_eq!(*target, None);
    // What was typed for a name that names nobody is not kept, only its digest.
    assert!(!repr.to_lowercase().contains("ghost"), "{repr}");
    assert!(repr.starts_with("unknown username "), "{repr}");
    assert_eq!(
        details.as_ref().unwrap()["usernameDigest"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // The attempted passwords must never be written down.
    let all: String =
        sqlx::query_scalar("SELECT coalesce(json_agg(t)::text, '') FROM audit_entries t")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(!all.contains("not the password"), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");

    // The same entries are visible to auditors through the API.
    let (_, auditor) = app.staff_with("auditor", &["admin.view_logentry"]).await;
    let entries = app.audit_entries(&auditor, json!({})).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"LOGIN") && actions.contains(&"LOGIN_FAILED"),
        "{actions:?}"
    );
}

const EVERY_USER_FIELD: &str = "id username email firstName lastName isActive isStaff isSuperuser \
    dateJoined lastLogin deactivatedAt deactivationReason anonymizedAt \
    groups { id name permissions { key } memberCount } \
    userPermissions { id codename appLabel name key } allPermissions voteCount \
    votes(first: 10) { totalCount edges { node { id voterName } } }";

/// The login response is read before the caller holds a session, so the
/// fields that need one are left out there.
const LOGIN_USER_FIELDS: &str = "id username email firstName lastName isActive isStaff isSuperuser \
    dateJoined lastLogin deactivatedAt deactivationReason anonymizedAt \
    userPermissions { key } allPermissions voteCount";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_hash_or_token_in_any_response() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.superuser("root").await;
    let rani = app.user("rani", true, false).await;
    app.grant(&admin, &user_id(&rani), "auth.view_user")
        .ok()
        .await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(rani.id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    // Otherwise the substring check below would prove nothing.
    assert!(hash.starts_with("$argon2"), "{hash}");

    let login = app
        .ok(
            None,
            &format!(
                "mutation($u: String!, $p: String!) {{ login(username: $u, password: $p) {{ token expiresAt user {{ {LOGIN_USER_FIELDS} }} }} }}"
            ),
            json!({ "u": "rani", "p": PASSWORD }),
        )
        .await;
    let token = login["login"]["token"].as_str().unwrap().to_owned();
    let login_text = login.to_string();
    assert!(!login_text.contains("$argon2"), "{login_text}");
    assert!(!login_text.contains(PASSWORD));

    let queries = [
        format!("{{ me {{ {EVERY_USER_FIELD} }} }}"),
        format!("{{ user(username: \"rani\") {{ {EVERY_USER_FIELD} }} }}"),
        format!("{{ users(first: 100) {{ edges {{ node {{ {EVERY_USER_FIELD} }} }} }} }}"),
        "{ auditLog(first: 100) { edges { node { id action actorUsername targetRepr reason details } } } }"
            .to_owned(),
    ];
    for token_used in [&token, &admin] {
        for query in &queries {
            let resp = app.gql(Some(token_used), query, json!({})).await;
            let text = resp.to_string();
            assert!(!text.contains("$argon2"), "hash leaked by {query}: {text}");
            assert!(!text.contains(&token), "token leaked by {query}: {text}");
            assert!(!text.contains(&admin), "token leaked by {query}: {text}");
            assert!(!text.contains(PASSWORD), "password leaked by {query}");
        }
    }
    // The hash must not be reachable under any other name either.
    let schema = memberdesk::graphql::sdl();
    assert!(!schema.to_lowercase().contains("passwordhash"));
    assert!(!schema.to_lowercase().contains("password_hash"));
}
