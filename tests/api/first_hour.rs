//! The first hour with the API: a bulk deactivation previewed before it is
//! run, plan tokens refused for what they are (another user, another policy,
//! not a token) rather than as a changed plan, messages that echo a bad id or
//! instant and say what to send instead, `GET /graphql` without a query,
//! audit details spelled as the schema spells them, and the audit trail of a
//! deleted user still found by name and by its old id. Every refusal leaves
//! the database as it was.

use serde_json::{Value, json};

use crate::helpers::{Call, PASSWORD, Refusal, TestApp, skipped, snapshot, user_id};

/// What a bulk deactivation payload shows here.
const BULK: &str = "deactivated { username isActive } skipped { id code }";

/// `deactivateUsers` of `ids` by root, previewed or not.
fn deactivate<'a>(app: &'a TestApp, root: &str, ids: Value, dry_run: bool) -> Call<'a> {
    app.deactivate_users(root)
        .ids(ids)
        .dry_run(dry_run)
        .select(BULK)
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
    let preview = deactivate(&app, &root_token, ids.clone(), true).ok().await;
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
    assert_eq!(app.me(&bob_token).await.unwrap(), "bob");

    // The run itself does what the preview said.
    let run = deactivate(&app, &root_token, ids, false).ok().await;
    assert_eq!(
        run["deactivated"],
        json!([{ "username": "bob", "isActive": false }, { "username": "carol", "isActive": false }])
    );
    assert_eq!(skipped(&run), skipped(&preview));

    // The empty filter is still refused, dry run or not.
    for dry in [true, false] {
        let call = app.deactivate_users(&root_token).filter(json!({}));
        let refusal = call.dry_run(dry).refused("INVALID_INPUT").await;
        assert_eq!(refusal.field, "filter", "{refusal:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_users_skips_who_is_already_inactive_without_auditing() {
    let app = TestApp::spawn().await;
    let (_, root_token) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let carol = app.user("carol", false, false).await;
    let ids = json!([user_id(&bob), user_id(&carol)]);
    deactivate(&app, &root_token, json!([user_id(&bob)]), false)
        .ok()
        .await;
    assert_eq!(app.audit_count("USER_DEACTIVATED").await, 1);

    // Bob is inactive with nothing left to take: skipped, in a preview too.
    let before = snapshot(app.pool()).await;
    let preview = deactivate(&app, &root_token, ids.clone(), true).ok().await;
    assert_eq!(
        preview["deactivated"],
        json!([{ "username": "carol", "isActive": true }])
    );
    let bob_skipped = vec![(user_id(&bob), "ALREADY_INACTIVE".to_owned())];
    assert_eq!(skipped(&preview), bob_skipped);
    assert_eq!(snapshot(app.pool()).await, before);
    let run = deactivate(&app, &root_token, ids, false).ok().await;
    assert_eq!(
        run["deactivated"],
        json!([{ "username": "carol", "isActive": false }])
    );
    assert_eq!(skipped(&run), bob_skipped);
    assert_eq!(
        app.audit_count("USER_DEACTIVATED").await,
        2,
        "carol's entry only: bob gets none the second time"
    );

    // Something left to take (a live session made behind the API's back)
    // is a change: deactivated again, and audited.
    let session = "INSERT INTO sessions (user_id, token_hash, expires_at)
         VALUES ($1, 'x', now() + interval '1 day')";
    app.execute(session, bob.id).await;
    let run = deactivate(&app, &root_token, json!([user_id(&bob)]), false)
        .ok()
        .await;
    assert_eq!(
        run["deactivated"],
        json!([{ "username": "bob", "isActive": false }])
    );
    assert_eq!(app.audit_count("USER_DEACTIVATED").await, 3);
}

/// `deleteUser` of `id` under `policy` with a plan token, for a reason.
fn delete<'a>(app: &'a TestApp, root: &str, id: &str, policy: &str, token: &str) -> Call<'a> {
    app.delete_user(root, id)
        .policy(policy)
        .plan_token(token)
        .reason("left")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_tokens_for_another_user_or_policy_or_none_are_invalid_input() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let victim = user_id(&app.user("victim", false, false).await);
    let other = user_id(&app.user("other", false, false).await);
    let for_victim = app.plan_token(&root, &victim, "SET_NULL").await;
    let for_other = app.plan_token(&root, &other, "SET_NULL").await;
    let cases = [
        (
            "CASCADE",
            for_victim.as_str(),
            "this plan token was made under policy SET_NULL, not CASCADE",
        ),
        (
            "SET_NULL",
            for_other.as_str(),
            "this plan token was made for another user",
        ),
        ("SET_NULL", "yes please", "'yes please' is not a plan token"),
        ("SET_NULL", "", "'' is not a plan token"),
    ];
    for (policy, token, says) in cases {
        let call = delete(&app, &root, &victim, policy, token);
        let refusal = call.refused("INVALID_INPUT").await;
        assert_eq!(refusal.field, "planToken", "{policy} {token}: {refusal:?}");
        assert!(refusal.message.starts_with(says), "{refusal:?}");
    }
    // A token whose named user was edited to fit no longer matches its digest.
    let forged = for_other.replacen(&other, &victim, 1);
    assert_ne!(forged, for_other);
    delete(&app, &root, &victim, "SET_NULL", &forged)
        .refused("PLAN_CHANGED")
        .await;

    // The data moving under a fitting token is still PLAN_CHANGED; the
    // fresh token deletes.
    app.grant(&root, &victim, "polls.add_question").ok().await;
    delete(&app, &root, &victim, "SET_NULL", &for_victim)
        .refused("PLAN_CHANGED")
        .await;
    let fresh = app.plan_token(&root, &victim, "SET_NULL").await;
    let done = delete(&app, &root, &victim, "SET_NULL", &fresh).ok().await;
    assert_eq!(done["deleted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_id_or_instant_says_what_to_send() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    app.user("alice", false, false).await;
    let before = snapshot(app.pool()).await;
    let refusal = app.deactivate(&root, "alice").error().await;
    assert_eq!(
        refusal,
        Refusal {
            code: "INVALID_INPUT".into(),
            field: "id".into(),
            message: "'alice' is not a user id: ids look like VXNlcjoz; get one from user(username: \"alice\") { id }".into()
        }
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
    let refusal = Refusal::of(&resp);
    assert_eq!(refusal.code_and_field(), ("INVALID_INPUT", "id"));
    assert!(refusal.message.len() < 200, "{refusal:?}");

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
        let refusal = Refusal::of(&app.gql(Some(&root), query, vars).await);
        assert_eq!(refusal.code, "INVALID_INPUT", "{query}: {refusal:?}");
        let message = &refusal.message;
        assert!(
            message.contains("RFC 3339") && message.contains("2025-01-01T00:00:00Z"),
            "{query}: {refusal:?}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_graphql_without_a_query_says_how_to_send_one() {
    let app = TestApp::spawn().await;
    // curl, a script, a monitoring probe: no query, no HTML wanted.
    for (accept, query) in [
        (None, None),
        (Some("application/json"), Some("")),
        (Some("*/*"), None),
    ] {
        let mut req = app.get("/graphql");
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
        .get("/graphql")
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

/// The actions of the entries `filter` finds, oldest first, and the entries.
async fn audit_of(app: &TestApp, token: &str, filter: Value) -> (Vec<String>, Vec<Value>) {
    let mut entries = app.audit_entries(token, filter).await;
    entries.reverse();
    let actions = entries
        .iter()
        .map(|n| n["action"].as_str().unwrap().to_owned())
        .collect();
    (actions, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_entries_are_found_by_old_id_and_by_name() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let bob = app.user("Bob", true, false).await;
    let bob_id = user_id(&bob);
    app.grant(&root, &bob_id, "polls.add_question").ok().await;
    let bob_token = app.login("bob", PASSWORD).await;
    app.create_question(&bob_token, "Lunch?", &["yes", "no"])
        .ok()
        .await;
    let token = app.plan_token(&root, &bob_id, "CASCADE").await;
    delete(&app, &root, &bob_id, "CASCADE", &token).ok().await;

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
    let refusal = app
        .audit_log(&root, json!({ "targetUsername": " " }))
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(refusal.field, "targetUsername");
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
