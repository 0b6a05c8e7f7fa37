//! The first hour with the API: a bulk deactivation previewed before it is
//! run, plan tokens refused for what they are (another user, another policy,
//! not a token) rather than as a changed plan, messages that echo a bad id or
//! instant and say what to send instead, `GET /graphql` without a query,
//! audit details spelled as the schema spells them, and the audit trail of a
//! deleted user still found by name and by its old id. Every refusal leaves
//! the database as it was.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, snapshot, user_id};

const BULK: &str = "mutation($ids: [ID!], $f: UserFilter, $dry: Boolean) {
    deactivateUsers(ids: $ids, filter: $f, dryRun: $dry) {
        deactivated { username isActive } skipped { id code } } }";

const PLAN: &str = "query($id: ID!, $p: DeletePolicy!) {
    deletionPlan(userId: $id, policy: $p) { token } }";

const DELETE: &str = "mutation($id: ID!, $p: DeletePolicy!, $t: String) {
    deleteUser(id: $id, policy: $p, planToken: $t, reason: \"left\") { deleted } }";

/// The first error's code, field and message.
fn first_error(resp: &Value) -> (String, String, String) {
    let e = &resp["errors"][0];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&e["extensions"]["code"]),
        text(&e["extensions"]["field"]),
        text(&e["message"]),
    )
}

/// `(id, code)` of each skipped user, sorted.
fn skipped(payload: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = payload["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_entries WHERE action = $1")
        .bind(action)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_users_dry_run_reports_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (root, root_token) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let carol = app.user("carol", false, false).await;
    let bob_token = app.login("bob", PASSWORD).await;
    let ids = json!([user_id(&root), user_id(&bob), user_id(&carol)]);
    let before = snapshot(app.pool()).await;
    let preview = app
        .ok(Some(&root_token), BULK, json!({ "ids": ids, "dry": true }))
        .await["deactivateUsers"]
        .clone();
    assert_eq!(
        preview["deactivated"],
        json!([{ "username": "bob", "isActive": true }, { "username": "carol", "isActive": true }]),
        "who would be deactivated, as they are now"
    );
    assert_eq!(
        skipped(&preview),
        vec![(user_id(&root), "SELF_ACTION".to_owned())]
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a dry run changes nothing"
    );
    assert!(
        app.gql(Some(&bob_token), "{ me { username } }", json!({}))
            .await["errors"]
            .is_null()
    );

    // The run itself does what the preview said.
    let run =
        app.ok(Some(&root_token), BULK, json!({ "ids": ids })).await["deactivateUsers"].clone();
    assert_eq!(
        run["deactivated"],
        json!([{ "username": "bob", "isActive": false }, { "username": "carol", "isActive": false }])
    );
    assert_eq!(skipped(&run), skipped(&preview));

    // The empty filter is still refused, dry run or not.
    let before = snapshot(app.pool()).await;
    for dry in [true, false] {
        let resp = app
            .gql(Some(&root_token), BULK, json!({ "f": {}, "dry": dry }))
            .await;
        let (code, field, _) = first_error(&resp);
        assert_eq!(
            (code.as_str(), field.as_str()),
            ("INVALID_INPUT", "filter"),
            "{resp:#}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_users_skips_who_is_already_inactive_without_auditing() {
    let app = TestApp::spawn().await;
    let (_, root_token) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let carol = app.user("carol", false, false).await;
    let ids = json!([user_id(&bob), user_id(&carol)]);
    app.ok(Some(&root_token), BULK, json!({ "ids": [user_id(&bob)] }))
        .await;
    assert_eq!(audit_count(&app, "USER_DEACTIVATED").await, 1);

    // Bob is inactive with nothing left to take: skipped, in a preview too.
    let before = snapshot(app.pool()).await;
    let preview = app
        .ok(Some(&root_token), BULK, json!({ "ids": ids, "dry": true }))
        .await["deactivateUsers"]
        .clone();
    assert_eq!(
        preview["deactivated"],
        json!([{ "username": "carol", "isActive": true }])
    );
    assert_eq!(
        skipped(&preview),
        vec![(user_id(&bob), "ALREADY_INACTIVE".to_owned())]
    );
    assert_eq!(snapshot(app.pool()).await, before);
    let run =
        app.ok(Some(&root_token), BULK, json!({ "ids": ids })).await["deactivateUsers"].clone();
    assert_eq!(
        run["deactivated"],
        json!([{ "username": "carol", "isActive": false }])
    );
    assert_eq!(
        skipped(&run),
        vec![(user_id(&bob), "ALREADY_INACTIVE".to_owned())]
    );
    assert_eq!(
        audit_count(&app, "USER_DEACTIVATED").await,
        2,
        "carol's entry only: bob gets none the second time"
    );

    // Something left to take (a live session made behind the API's back)
    // is a change: deactivated again, and audited.
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, expires_at)
         VALUES ($1, 'x', now() + interval '1 day')",
    )
    .bind(bob.id)
    .execute(app.pool())
    .await
    .unwrap();
    let run = app
        .ok(Some(&root_token), BULK, json!({ "ids": [user_id(&bob)] }))
        .await["deactivateUsers"]
        .clone();
    assert_eq!(
        run["deactivated"],
        json!([{ "username": "bob", "isActive": false }])
    );
    assert_eq!(audit_count(&app, "USER_DEACTIVATED").await, 3);
}

/// root, a victim and another user; returns (app, root token, victim id,
/// other id).
async fn deletion_scene() -> (TestApp, String, String, String) {
    let app = TestApp::spawn().await;
    let (_, root_token) = app.superuser("root").await;
    let victim = app.user("victim", false, false).await;
    let other = app.user("other", false, false).await;
    (app, root_token, user_id(&victim), user_id(&other))
}

async fn plan_token(app: &TestApp, token: &str, id: &str, policy: &str) -> String {
    app.ok(Some(token), PLAN, json!({ "id": id, "p": policy }))
        .await["deletionPlan"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_tokens_for_another_user_or_policy_or_none_are_invalid_input() {
    let (app, root, victim, other) = deletion_scene().await;
    let for_victim = plan_token(&app, &root, &victim, "SET_NULL").await;
    let for_other = plan_token(&app, &root, &other, "SET_NULL").await;
    let before = snapshot(app.pool()).await;
    let cases = [
        (
            json!({ "id": victim, "p": "CASCADE", "t": for_victim }),
            "this plan token was made under policy SET_NULL, not CASCADE",
        ),
        (
            json!({ "id": victim, "p": "SET_NULL", "t": for_other }),
            "this plan token was made for another user",
        ),
        (
            json!({ "id": victim, "p": "SET_NULL", "t": "yes please" }),
            "'yes please' is not a plan token",
        ),
        (
            json!({ "id": victim, "p": "SET_NULL", "t": "" }),
            "'' is not a plan token",
        ),
    ];
    for (vars, says) in cases {
        let resp = app.gql(Some(&root), DELETE, vars.clone()).await;
        let (code, field, message) = first_error(&resp);
        assert_eq!(
            (code.as_str(), field.as_str()),
            ("INVALID_INPUT", "planToken"),
            "{vars}: {resp:#}"
        );
        assert!(message.starts_with(says), "{vars}: {message}");
    }
    // A token whose named user was edited to fit no longer matches its digest.
    let forged = for_other.replacen(&other, &victim, 1);
    assert_ne!(forged, for_other);
    let resp = app
        .gql(
            Some(&root),
            DELETE,
            json!({ "id": victim, "p": "SET_NULL", "t": forged }),
        )
        .await;
    assert_eq!(first_error(&resp).0, "PLAN_CHANGED", "{resp:#}");
    assert_eq!(snapshot(app.pool()).await, before, "nothing changed");

    // The data moving under a fitting token is still PLAN_CHANGED; the
    // fresh token deletes.
    app.ok(
        Some(&root),
        "mutation($u: ID!) { grantPermission(userId: $u, permission: \"polls.add_question\") { id } }",
        json!({ "u": victim }),
    )
    .await;
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(&root),
            DELETE,
            json!({ "id": victim, "p": "SET_NULL", "t": for_victim }),
        )
        .await;
    assert_eq!(first_error(&resp).0, "PLAN_CHANGED", "{resp:#}");
    assert_eq!(snapshot(app.pool()).await, before);
    let fresh = plan_token(&app, &root, &victim, "SET_NULL").await;
    let done = app
        .ok(
            Some(&root),
            DELETE,
            json!({ "id": victim, "p": "SET_NULL", "t": fresh }),
        )
        .await;
    assert_eq!(done["deleteUser"]["deleted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_id_or_instant_says_what_to_send() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    app.user("alice", false, false).await;
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(&root),
            "mutation($id: ID!) { deactivateUser(id: $id) { user { id } } }",
            json!({ "id": "alice" }),
        )
        .await;
    assert_eq!(
        first_error(&resp),
        (
            "INVALID_INPUT".into(),
            "id".into(),
            "'alice' is not a user id: ids look like VXNlcjoz; get one from user(username: \"alice\") { id }".into()
        ),
        "{resp:#}"
    );
    // A long value is not sent back whole.
    let long = "x".repeat(10_000);
    let resp = app
        .gql(
            Some(&root),
            "query($id: ID!) { group(id: $id) { name } }",
            json!({ "id": long }),
        )
        .await;
    let (code, field, message) = first_error(&resp);
    assert_eq!((code.as_str(), field.as_str()), ("INVALID_INPUT", "id"));
    assert!(message.len() < 200, "{message}");

    // A malformed instant names the expected form, as a variable or inline.
    for (query, vars) in [
        (
            "query($t: DateTime!) { auditLog(filter: {since: $t}) { totalCount } }",
            json!({ "t": "yesterday" }),
        ),
        (
            "query { auditLog(filter: {since: \"yesterday\"}) { totalCount } }",
            json!({}),
        ),
        (
            "mutation($f: UserFilter) { deactivateUsers(filter: $f) { skipped { id } } }",
            json!({ "f": { "lastLoginBefore": "2025-01-01" } }),
        ),
    ] {
        let resp = app.gql(Some(&root), query, vars).await;
        let (code, _, message) = first_error(&resp);
        assert_eq!(code, "INVALID_INPUT", "{resp:#}");
        assert!(
            message.contains("RFC 3339") && message.contains("2025-01-01T00:00:00Z"),
            "{query}: {resp:#}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_graphql_without_a_query_says_how_to_send_one() {
    let app = TestApp::spawn().await;
    let url = format!("{}/graphql", app.addr);
    // curl, a script, a monitoring probe: no query, no HTML wanted.
    for (accept, query) in [
        (None, None),
        (Some("application/json"), Some("")),
        (Some("*/*"), None),
    ] {
        let mut req = app.client.get(&url);
        if let Some(accept) = accept {
            req = req.header(reqwest::header::ACCEPT, accept);
        }
        if let Some(query) = query {
            req = req.query(&[("query", query)]);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "{accept:?}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("send a query: GET /graphql?query={me{username}} or POST JSON"),
            "{message}"
        );
    }
    // A browser still gets the playground.
    let resp = app
        .client
        .get(&url)
        .header(reqwest::header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert!(
        resp.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}

const AUDIT: &str = "query($f: AuditFilter) { auditLog(filter: $f, first: 100) {
    totalCount edges { node { action actorUsername targetRepr targetUser { id } details } } } }";

/// The actions of the entries `filter` finds, oldest first, and the nodes.
async fn audit_of(app: &TestApp, token: &str, filter: Value) -> (Vec<String>, Vec<Value>) {
    let data = app.ok(Some(token), AUDIT, json!({ "f": filter })).await;
    let mut nodes: Vec<Value> = data["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    nodes.reverse();
    assert_eq!(data["auditLog"]["totalCount"], nodes.len());
    let actions = nodes
        .iter()
        .map(|n| n["action"].as_str().unwrap().to_owned())
        .collect();
    (actions, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_entries_are_found_by_old_id_and_by_name() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let bob = app.user("Bob", true, false).await;
    let bob_id = user_id(&bob);
    app.ok(
        Some(&root),
        "mutation($u: ID!) { grantPermission(userId: $u, permission: \"polls.add_question\") { id } }",
        json!({ "u": bob_id }),
    )
    .await;
    let bob_token = app.login("bob", PASSWORD).await;
    app.ok(
        Some(&bob_token),
        "mutation { createQuestion(text: \"Lunch?\", choices: [\"yes\", \"no\"]) { id } }",
        json!({}),
    )
    .await;
    let token = plan_token(&app, &root, &bob_id, "CASCADE").await;
    app.ok(
        Some(&root),
        DELETE,
        json!({ "id": bob_id, "p": "CASCADE", "t": token }),
    )
    .await;

    // By the old id: the references are gone, the kept id is not.
    let about = [
        "USER_CREATED",
        "PERMISSION_GRANTED",
        "LOGIN",
        "USER_DELETED",
    ];
    let (actions, nodes) = audit_of(&app, &root, json!({ "targetUserId": bob_id })).await;
    assert_eq!(actions, about, "{nodes:#?}");
    assert!(
        nodes
            .iter()
            .all(|n| n["targetUser"].is_null() && n["targetRepr"] == "Bob")
    );
    let (by_bob, _) = audit_of(&app, &root, json!({ "actorId": bob_id })).await;
    assert_eq!(by_bob, ["LOGIN", "QUESTION_CREATED"]);

    // By name, regardless of case and width, on the snapshot.
    for name in ["Bob", "bob", "ＢＯＢ"] {
        let (actions, _) = audit_of(&app, &root, json!({ "targetUsername": name })).await;
        assert_eq!(actions, about, "{name}");
        let (actions, _) = audit_of(&app, &root, json!({ "actorUsername": name })).await;
        assert_eq!(actions, ["LOGIN", "QUESTION_CREATED"], "{name}");
    }
    let (by_root, _) = audit_of(
        &app,
        &root,
        json!({ "actorUsername": "ROOT", "targetUsername": "bob" }),
    )
    .await;
    assert_eq!(by_root, ["PERMISSION_GRANTED", "USER_DELETED"]);
    let (nobody, _) = audit_of(&app, &root, json!({ "targetUsername": "bo" })).await;
    assert!(nobody.is_empty(), "exact match, not a substring");

    // The deletion's details spell the policy as the schema does.
    assert_eq!(nodes[3]["details"]["policy"], "CASCADE", "{:#}", nodes[3]);

    // A blank name is refused, and changes nothing.
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(&root),
            AUDIT,
            json!({ "f": { "targetUsername": " " } }),
        )
        .await;
    let (code, field, _) = first_error(&resp);
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("INVALID_INPUT", "targetUsername")
    );
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_audit_entries_are_folded_and_kept_ids_never_change() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    // An entry as an older version wrote it: no folds.
    sqlx::query(
        "INSERT INTO audit_entries (action, actor_username, target_repr)
         VALUES ('LOGIN_FAILED', NULL, 'Ｅｖｅ')",
    )
    .execute(app.pool())
    .await
    .unwrap();
    memberdesk::db::migrate(app.pool(), &app.db.url)
        .await
        .expect("migrate again");
    let (actions, _) = audit_of(&app, &root, json!({ "targetUsername": "eve" })).await;
    assert_eq!(actions, ["LOGIN_FAILED"]);
    // The kept ids are append-only like the rest of the entry.
    let changed = sqlx::query(
        "UPDATE audit_entries SET actor_ref = actor_ref + 1 WHERE actor_ref IS NOT NULL",
    )
    .execute(app.pool())
    .await;
    assert!(changed.is_err(), "a kept id was changed");
}
