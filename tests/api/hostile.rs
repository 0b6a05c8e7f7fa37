//! Hostile input through HTTP: injection payloads, lookalike usernames, huge
//! and broken requests, foreign ids. Each gets a contract answer, the server
//! stays up, and nothing changes that should not.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, group_id, snapshot, user_id};

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
        .client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .expect("server still answers");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_payloads_are_stored_verbatim_and_never_executed() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let t = Some(token.as_str());
    for (n, payload) in PAYLOADS.iter().enumerate() {
        let created = app
            .ok(
                t,
                "mutation($i: CreateUserInput!) { createUser(input: $i) { id firstName lastName } }",
                json!({ "i": {
                    "username": format!("victim{n}"),
                    "email": format!("victim{n}@example.org"),
                    "password": PASSWORD,
                    "firstName": payload,
                    "lastName": payload,
                } }),
            )
            .await;
        let user = &created["createUser"];
        assert_eq!(user["firstName"], *payload);
        assert_eq!(user["lastName"], *payload);

        let group = app
            .ok(
                t,
                "mutation($n: String!) { createGroup(name: $n) { name } }",
                json!({ "n": payload }),
            )
            .await;
        assert_eq!(group["createGroup"]["name"], *payload);

        let question = app
            .ok(
                t,
                "mutation($t: String!, $c: [String!]!) { createQuestion(text: $t, choices: $c) { text choices { text } } }",
                json!({ "t": payload, "c": [payload, "plain"] }),
            )
            .await;
        assert_eq!(question["createQuestion"]["text"], *payload);
        assert_eq!(question["createQuestion"]["choices"][0]["text"], *payload);

        let deactivated = app
            .ok(
                t,
                "mutation($id: ID!, $r: String) { deactivateUser(id: $id, input: { reason: $r }) { user { isActive } } }",
                json!({ "id": user["id"], "r": payload }),
            )
            .await;
        assert_eq!(deactivated["deactivateUser"]["user"]["isActive"], false);

        // As a search term and a username lookup the payload is just text.
        let found = app
            .ok(
                t,
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
        app.count("SELECT count(*) FROM audit_entries WHERE action = 'USER_DEACTIVATED'")
            .await,
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
    let create = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }";
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
        let resp = app
            .gql(
                Some(&token),
                create,
                json!({ "i": { "username": lookalike, "email": format!("l{n}@example.org"), "password": PASSWORD } }),
            )
            .await;
        assert_eq!(
            resp["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{lookalike:?}: {resp}"
        );
        assert_eq!(
            resp["errors"][0]["extensions"]["field"], "username",
            "{lookalike:?}: {resp}"
        );
        // Renaming someone else to a lookalike is refused the same way.
        let resp = app
            .gql(
                Some(&token),
                "mutation($id: ID!, $u: String!) { updateUser(id: $id, input: { username: $u }) { id } }",
                json!({ "id": user_id(&root), "u": lookalike }),
            )
            .await;
        assert_eq!(
            resp["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{lookalike:?}: {resp}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_broken_and_foreign_input_gets_contract_errors_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let member = app.user("member", false, false).await;
    let before = snapshot(app.pool()).await;
    let t = Some(token.as_str());

    // A 200 KB string: under the body limit, over every field's limit.
    let huge = "x".repeat(200 * 1024);
    let resp = app
        .gql(
            t,
            "mutation($id: ID!, $f: String!) { updateUser(id: $id, input: { firstName: $f }) { id } }",
            json!({ "id": user_id(&member), "f": huge }),
        )
        .await;
    let text = resp.to_string();
    assert_eq!(
        resp["errors"][0]["extensions"]["code"],
        "INVALID_INPUT",
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.len() < 2_000, "the error must not echo the input back");
    let resp = app
        .gql(
            t,
            "mutation($id: ID!, $r: String) { deactivateUser(id: $id, input: { reason: $r }) { user { id } } }",
            json!({ "id": user_id(&member), "r": huge }),
        )
        .await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    assert_eq!(resp["errors"][0]["extensions"]["field"], "reason");

    // Variables nested far deeper than any input: refused before execution.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"query":"{{ me {{ id }} }}","variables":{{"x":{nested}}}}}"#);
    let resp = app
        .client
        .post(format!("{}/graphql", app.addr))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Bytes that are not UTF-8.
    let resp = app
        .client
        .post(format!("{}/graphql", app.addr))
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

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
        for query in [
            "query($id: ID!) { user(id: $id) { id } }",
            "mutation($id: ID!) { deactivateUser(id: $id) { user { id } } }",
            "mutation($id: ID!) { deleteUser(id: $id, policy: CASCADE) { deleted } }",
            "mutation($id: ID!) { anonymizeUser(id: $id) { user { id } } }",
            "query($id: ID!) { deletionPlan(userId: $id) { policy } }",
        ] {
            let code = app.err_code(t, query, json!({ "id": id })).await;
            assert!(
                code == "NOT_FOUND" || code == "INVALID_INPUT",
                "{query} with {id:?}: {code}"
            );
        }
    }
    for cursor in ["garbage", "", "\u{0}", "YXJyYXljb25uZWN0aW9uOjA="] {
        let code = app
            .err_code(
                t,
                "query($a: String) { users(first: 5, after: $a) { edges { cursor } } }",
                json!({ "a": cursor }),
            )
            .await;
        assert_eq!(code, "INVALID_INPUT", "cursor {cursor:?}");
    }
    let code = app
        .err_code(t, "{ users(first: -1) { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(code, "INVALID_INPUT");

    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "hostile input changed something"
    );
    // The superuser is still who they were and the server still serves.
    let me = app.ok(t, "{ me { id isSuperuser } }", json!({})).await;
    assert_eq!(me["me"]["id"], user_id(&root));
    server_is_up(&app).await;
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
    assert_eq!(
        app.count("SELECT count(*) FROM audit_entries WHERE action = 'LOGIN_FAILED'")
            .await,
        0
    );
    server_is_up(&app).await;
}
