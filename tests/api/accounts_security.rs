//! Account security over HTTP: passwords must be hard to guess, idle
//! sessions end, wrong guesses lock out the guesser's address rather than
//! the account's owner (with client addresses read from `X-Forwarded-For`
//! only behind trusted proxies), and usernames that are reserved or look
//! like an existing one are refused.

use std::time::Duration;

use memberdesk::config::{LoginLimit, Settings, TrustedProxies};
use memberdesk::domain::validation;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Refusal, TestApp, snapshot, user_id};

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token user { id username } } }";
/// Four ordinary words: what a strong password may look like.
const PASSPHRASE: &str = "orbit tulip canyon whisper";

/// The first error's code (empty when there is none).
fn code(resp: &Value) -> String {
    Refusal::of(resp).code
}

fn behind_proxy(limit: LoginLimit) -> Settings {
    Settings {
        trusted_proxies: TrustedProxies::parse("MEMBERDESK_TRUSTED_PROXIES", "127.0.0.1").unwrap(),
        login_limit: limit,
        ..Settings::default()
    }
}

fn limit(per_username_and_address: i32, per_address: i32, per_username: i32) -> LoginLimit {
    LoginLimit {
        per_username,
        per_username_and_address,
        per_address,
        window: Duration::from_secs(600),
    }
}

// ---- Item 1: password strength --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessable_passwords_are_refused_with_advice_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let rani = app.user("rani", false, false).await;
    let before = snapshot(app.pool()).await;
    let sixteen_a = "a".repeat(16);
    for weak in [
        "Password123!",
        "qwertyuiop12",
        "Summer2026!!",
        sixteen_a.as_str(),
        "newbie-newbie",
        "short",
    ] {
        let input =
            json!({ "username": "newbie", "email": "newbie@example.org", "password": weak });
        let refusal = app.create_user(&token, input).error().await;
        assert_eq!(
            refusal.code_and_field(),
            ("INVALID_INPUT", "password"),
            "{weak}: {refusal:?}"
        );
        let message = &refusal.message;
        assert!(message.len() > 20, "the refusal says what to do: {message}");
        assert!(
            !message.contains(weak),
            "the password is not echoed: {message}"
        );
        // The personal one is about newbie; rani's own name is as bad for rani.
        let for_rani = weak.replace("newbie", "rani-rani");
        let set = app.set_password(&token, &user_id(&rani), &for_rani);
        assert_eq!(set.err_code().await, "INVALID_INPUT", "{weak}");
    }
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a refusal changed something"
    );
    let input =
        json!({ "username": "newbie", "email": "newbie@example.org", "password": "Summer2026!!" });
    let refusal = app.create_user(&token, input).error().await;
    assert!(
        refusal.message.contains("Add another word"),
        "zxcvbn-style advice: {refusal:?}"
    );

    let input =
        json!({ "username": "newbie", "email": "newbie@example.org", "password": PASSPHRASE });
    app.create_user(&token, input).ok().await;
    app.login("newbie", PASSPHRASE).await;
    app.set_password(&token, &user_id(&rani), PASSPHRASE)
        .ok()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimum_password_length_is_a_setting() {
    let mut settings = Settings::default();
    settings.password_policy.min_length = 30;
    let app = TestApp::spawn_with(settings).await;
    let (_, token) = app.superuser("root").await;
    let create = |password: &str| {
        app.create_user(
            &token,
            json!({ "username": "newbie", "password": password }),
        )
    };
    // 28 characters, score 4: long enough by default, not under this setting.
    let refusal = create(PASSWORD).error().await;
    assert_eq!(refusal.code_and_field(), ("INVALID_INPUT", "password"));
    assert!(refusal.message.contains("30"), "{refusal:?}");
    create("orbit tulip canyon whisper lantern").ok().await;
}

// ---- Item 2: idle sessions -------------------------------------------------

async fn set_last_seen(app: &TestApp, token: &str, minutes_ago: i32) {
    sqlx::query(
        "UPDATE sessions SET last_seen_at = now() - make_interval(mins => $2) \
         WHERE token_hash = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .bind(minutes_ago)
    .execute(app.pool())
    .await
    .unwrap();
}

async fn last_seen_minutes_ago(app: &TestApp, token: &str) -> f64 {
    sqlx::query_scalar(
        "SELECT (extract(epoch FROM now() - last_seen_at) / 60)::float8 FROM sessions \
         WHERE token_hash = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .fetch_one(app.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_idle_past_the_limit_end_and_used_ones_stay() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let idle = app.login("rani", PASSWORD).await;
    let used = app.login("rani", PASSWORD).await;
    // Default idle limit: 60 minutes (the absolute lifetime is 12 hours).
    set_last_seen(&app, &idle, 61).await;
    set_last_seen(&app, &used, 55).await;
    assert_eq!(app.me(&idle).await.unwrap_err(), "UNAUTHENTICATED");
    assert!(app.me(&used).await.is_ok());
    // Using it moved its idle clock: it is good for another hour.
    assert!(last_seen_minutes_ago(&app, &used).await < 1.0);
    assert_eq!(app.me(&idle).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(
        app.err_code(Some(&idle), "mutation { logout }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_limit_is_a_setting() {
    let app = TestApp::spawn_with(Settings {
        session_idle: chrono::Duration::minutes(5),
        ..Settings::default()
    })
    .await;
    app.user("rani", false, false).await;
    let token = app.login("rani", PASSWORD).await;
    set_last_seen(&app, &token, 4).await;
    assert!(app.me(&token).await.is_ok());
    set_last_seen(&app, &token, 6).await;
    assert_eq!(app.me(&token).await.unwrap_err(), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_use_is_written_at_most_once_a_minute() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let token = app.login("rani", PASSWORD).await;
    let written = |app: &TestApp| {
        let pool = app.pool().clone();
        let token = token.clone();
        async move {
            sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
                "SELECT last_seen_at FROM sessions WHERE token_hash = sha256($1::bytea)",
            )
            .bind(token.as_bytes())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let at_login = written(&app).await;
    for _ in 0..5 {
        assert!(app.me(&token).await.is_ok());
    }
    assert_eq!(written(&app).await, at_login, "fresh: no write per request");
    set_last_seen(&app, &token, 2).await;
    let stale = written(&app).await;
    assert!(app.me(&token).await.is_ok());
    let refreshed = written(&app).await;
    assert!(
        refreshed > stale + chrono::Duration::minutes(1),
        "stale: written"
    );
    assert!(app.me(&token).await.is_ok());
    assert_eq!(
        written(&app).await,
        refreshed,
        "and not again within the minute"
    );
}

// ---- Item 3: who gets locked out --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_lock_out_the_guessers_address_not_the_owner() {
    let app = TestApp::spawn_with(behind_proxy(Settings::default().login_limit)).await;
    let (root, _) = app.superuser("root").await;
    let attacker = "203.0.113.66";
    for i in 0..5 {
        let resp = app
            .login_from(attacker, "root", &format!("guess number {i}"))
            .await;
        assert_eq!(code(&resp), "INVALID_CREDENTIALS", "{resp}");
    }
    // The attacker's address is out of guesses for this account, even with the password.
    let resp = app.login_from(attacker, "root", PASSWORD).await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");
    // The owner, from elsewhere, is not: a superuser cannot be locked out by anyone.
    let resp = app.login_from("198.51.100.7", "root", PASSWORD).await;
    assert!(resp.get("errors").is_none(), "{resp}");
    assert_eq!(resp["data"]["login"]["user"]["id"], user_id(&root));
    // The attacker is still locked out; their guesses are still counted overall.
    let resp = app.login_from(attacker, "root", PASSWORD).await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");
    let overall: i32 = sqlx::query_scalar(
        "SELECT failures FROM login_failures WHERE scope = 'username' AND key = name_digest($1)",
    )
    .bind(validation::username_key("root"))
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(overall, 5);
    // The audit log names the client, not the proxy.
    let addresses: Vec<Value> = sqlx::query_scalar(
        "SELECT details->'clientAddress' FROM audit_entries WHERE action IN ('LOGIN', 'LOGIN_FAILED') ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        addresses.first(),
        Some(&json!("127.0.0.1")),
        "root's own setup login"
    );
    assert!(addresses.contains(&json!(attacker)) && addresses.contains(&json!("198.51.100.7")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies (the default): the header is anyone's to write.
    let app = TestApp::spawn_with(Settings {
        login_limit: limit(3, 1000, 1000),
        ..Settings::default()
    })
    .await;
    app.user("rani", false, false).await;
    for i in 0..3 {
        let spoofed = format!("192.0.2.{i}");
        let resp = app
            .login_from(&spoofed, "rani", "not the password at all")
            .await;
        assert_eq!(code(&resp), "INVALID_CREDENTIALS", "{resp}");
    }
    // A fresh made-up address buys no fresh guesses.
    let resp = app.login_from("192.0.2.99", "rani", PASSWORD).await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");
    let spoofed: i64 = app
        .count(
            "SELECT count(*) FROM audit_entries WHERE details->>'clientAddress' LIKE '192.0.2.%'",
        )
        .await;
    assert_eq!(spoofed, 0);
    // Behind a trusted proxy, a spoofed entry left of the proxy's own is ignored too.
    let app = TestApp::spawn_with(behind_proxy(limit(3, 1000, 1000))).await;
    app.user("rani", false, false).await;
    for i in 0..3 {
        let chain = format!("192.0.2.{i}, 203.0.113.5");
        let resp = app
            .login_from(&chain, "rani", "not the password at all")
            .await;
        assert_eq!(code(&resp), "INVALID_CREDENTIALS", "{resp}");
    }
    let resp = app
        .login_from("192.0.2.99, 203.0.113.5", "rani", PASSWORD)
        .await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_spread_over_addresses_is_bounded_per_username() {
    let app = TestApp::spawn_with(behind_proxy(limit(5, 50, 8))).await;
    app.user("rani", false, false).await;
    app.user("sam", false, false).await;
    let attempts = (0..12).map(|i| {
        let app = &app;
        async move {
            app.login_from(&format!("198.51.100.{i}"), "rani", &format!("guess {i}"))
                .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let checked = results
        .iter()
        .filter(|r| code(r) == "INVALID_CREDENTIALS")
        .count();
    let limited = results.iter().filter(|r| code(r) == "RATE_LIMITED").count();
    assert_eq!(
        (checked, limited),
        (8, 4),
        "12 addresses, one username, limit 8"
    );
    let resp = app.login_from("203.0.113.200", "rani", PASSWORD).await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");
    // Another account is untouched.
    let resp = app.login_from("198.51.100.1", "sam", PASSWORD).await;
    assert!(resp.get("errors").is_none(), "{resp}");
}

// ---- Item 4: reserved and look-alike usernames -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_and_lookalike_usernames_are_refused_on_create_and_rename() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let admin = app.user("admin", true, false).await;
    let rani = app.user("rani", false, false).await;
    let before = snapshot(app.pool()).await;
    for (n, name) in [
        "system",
        "SYSTEM",
        "\u{455}ystem", // Cyrillic dze for s
        "deleted-user-42",
        "Deleted-User-x",
        "de1eted-user-7",    // digit one for l
        "\u{430}dmin",       // Cyrillic a
        "adrnin",            // r n for m
        "\u{430}\u{501}min", // Cyrillic a and komi de
    ]
    .iter()
    .enumerate()
    {
        let input = json!({ "username": name, "email": format!("l{n}@example.org"), "password": PASSPHRASE });
        let rename = json!({ "username": name });
        for call in [
            app.create_user(&token, input),
            app.update_user(&token, &user_id(&rani), rename),
        ] {
            let refusal = call.error().await;
            let expected = ("INVALID_INPUT", "username");
            assert_eq!(refusal.code_and_field(), expected, "{name:?}");
        }
    }
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a refusal changed something"
    );
    // Names near those, but not look-alikes, are fine.
    for name in ["systems", "deleted-users", "admins"] {
        let input = json!({ "username": name, "password": PASSPHRASE });
        app.create_user(&token, input).ok().await;
    }
    // The key is the lookup key: a look-alike names the one account.
    let resp = app
        .gql(None, LOGIN, json!({ "u": "\u{430}dmin", "p": PASSWORD }))
        .await;
    assert_eq!(
        resp["data"]["login"]["user"]["id"],
        user_id(&admin),
        "{resp}"
    );
    assert_eq!(resp["data"]["login"]["user"]["username"], "admin");
}

/// Keys stored before look-alikes were folded are recomputed once, by the
/// migrate step; two accounts that already looked alike both keep logging
/// in by their own names, and neither can be imitated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_before_the_upgrade_are_recomputed_and_existing_lookalikes_keep_their_logins() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let other_password = "violet harbor ladder seven";
    let hash = |pw: &'static str| memberdesk::auth::password::hash_password(SecretString::from(pw));
    let (first, second) = (
        hash(PASSWORD).await.unwrap(),
        hash(other_password).await.unwrap(),
    );
    // As the previous release stored them: key = NFKC + lower case only.
    sqlx::query(
        "INSERT INTO users (username, username_key, password_hash) VALUES \
         ('Member', 'member', $1), ('m\u{435}mber', 'm\u{435}mber', $2)",
    )
    .bind(&first)
    .bind(&second)
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("DELETE FROM data_upgrades")
        .execute(app.pool())
        .await
        .unwrap();
    memberdesk::db::migrate(app.pool(), &app.db.url)
        .await
        .unwrap();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT username_key FROM users WHERE username IN ('Member', 'm\u{435}mber') ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        keys,
        [
            validation::username_key("member"),
            "\u{1}m\u{435}mber".to_owned()
        ]
    );
    // Running it again changes nothing.
    let before = snapshot(app.pool()).await;
    memberdesk::db::migrate(app.pool(), &app.db.url)
        .await
        .unwrap();
    assert_eq!(snapshot(app.pool()).await, before);

    let login = |name: &'static str, pw: &'static str| {
        let app = &app;
        async move {
            let data = app.ok(None, LOGIN, json!({ "u": name, "p": pw })).await;
            data["login"]["user"]["username"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(login("member", PASSWORD).await, "Member");
    assert_eq!(login("MEMBER", PASSWORD).await, "Member");
    assert_eq!(login("m\u{435}mber", other_password).await, "m\u{435}mber");
    assert_eq!(login("M\u{415}MBER", other_password).await, "m\u{435}mber");
    // Looking a user up by name finds whom login finds.
    for (name, expected) in [("MEMBER", "Member"), ("m\u{435}mber", "m\u{435}mber")] {
        let data = app
            .ok(
                Some(&token),
                "query($u: String!) { user(username: $u) { username } }",
                json!({ "u": name }),
            )
            .await;
        assert_eq!(data["user"]["username"], expected, "{name:?}");
    }
    for name in ["member", "m\u{435}mber", "rnember"] {
        let input = json!({ "username": name, "password": PASSPHRASE });
        let refusal = app.create_user(&token, input).error().await;
        assert_eq!(refusal.field, "username", "{name:?}");
    }
}
