//! The member lifecycle end to end: deactivate (login blocked at once,
//! access stripped and remembered), reactivate (with and without restoring),
//! bulk and dormant deactivation, anonymization with its export beforehand.
//! Every refusal leaves the database as it was.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, snapshot, user_id};
use memberdesk::domain::Actor;
use memberdesk::domain::lifecycle::{self, DeactivateOptions};
use memberdesk::error::AppError;

const DEACTIVATE: &str = "mutation($id: ID!, $input: DeactivateUserInput) {
    deactivateUser(id: $id, input: $input) {
        user { isActive isStaff deactivatedAt deactivationReason groups { name } allPermissions }
        sessionsRevoked removedGroups { name } removedPermissions { key } staffRevoked } }";
const REACTIVATE: &str = "mutation($id: ID!, $restore: Boolean) {
    reactivateUser(id: $id, restoreAccess: $restore) {
        user { isActive isStaff deactivatedAt groups { name } userPermissions { key } }
        restoredGroups { name } restoredPermissions { key } staffRestored missingGroupIds } }";
const ME: &str = "{ me { username } }";

/// root (superuser) and alice: staff, in Editors (auth.view_user), with the
/// direct permission polls.add_question, logged in.
struct Team {
    app: TestApp,
    root: String,
    alice: Value,
    alice_token: String,
    editors: i64,
}

async fn team() -> Team {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let alice = app.user("alice", true, false).await;
    let editors: i64 =
        sqlx::query_scalar("INSERT INTO groups (name) VALUES ('Editors') RETURNING id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    for sql in [
        "INSERT INTO group_permissions (group_id, permission_id) SELECT $1, id FROM permissions WHERE codename = 'view_user'",
        "INSERT INTO user_groups (user_id, group_id) SELECT id, $1 FROM users WHERE username = 'alice'",
        "INSERT INTO user_permissions (user_id, permission_id) SELECT u.id, p.id FROM users u, permissions p
           WHERE u.username = 'alice' AND p.codename = 'add_question' AND $1 > 0",
    ] {
        sqlx::query(sql).bind(editors).execute(app.pool()).await.unwrap();
    }
    let alice_token = app.login("alice", PASSWORD).await;
    Team {
        alice: json!(user_id(&alice)),
        app,
        root,
        alice_token,
        editors,
    }
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_entries WHERE action = $1")
        .bind(action)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_blocks_login_at_once_and_reactivation_restores_exactly_what_it_took() {
    let t = team().await;
    let app = &t.app;
    assert_eq!(
        app.ok(Some(&t.alice_token), ME, json!({})).await["me"]["username"],
        "alice"
    );

    let input = json!({ "revokeStaff": true, "reason": "left the company" });
    let done = app
        .ok(
            Some(&t.root),
            DEACTIVATE,
            json!({ "id": t.alice, "input": input }),
        )
        .await["deactivateUser"]
        .clone();
    assert_eq!(done["sessionsRevoked"], 1);
    assert_eq!(done["removedGroups"], json!([{ "name": "Editors" }]));
    assert_eq!(
        done["removedPermissions"],
        json!([{ "key": "polls.add_question" }])
    );
    assert_eq!(done["staffRevoked"], true);
    let user = &done["user"];
    assert_eq!(
        (user["isActive"].clone(), user["isStaff"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(user["deactivationReason"], "left the company");
    assert_eq!(user["groups"], json!([]));
    assert_eq!(
        user["allPermissions"],
        json!([]),
        "an inactive user holds nothing"
    );

    // The old token stops working on the very next request; the right
    // password now says ACCOUNT_INACTIVE, a wrong one still says nothing.
    assert_eq!(
        app.err_code(Some(&t.alice_token), ME, json!({})).await,
        "UNAUTHENTICATED"
    );
    let login = "mutation($p: String!) { login(username: \"alice\", password: $p) { token } }";
    assert_eq!(
        app.err_code(None, login, json!({ "p": PASSWORD })).await,
        "ACCOUNT_INACTIVE"
    );
    assert_eq!(
        app.err_code(None, login, json!({ "p": "wrong password!" }))
            .await,
        "INVALID_CREDENTIALS"
    );
    assert_eq!(audit_count(app, "USER_DEACTIVATED").await, 1);

    // Idempotent: again changes nothing that matters and forgets nothing.
    let first_at = user["deactivatedAt"].clone();
    let again = app
        .ok(Some(&t.root), DEACTIVATE, json!({ "id": t.alice }))
        .await["deactivateUser"]
        .clone();
    assert_eq!(again["sessionsRevoked"], 0);
    assert_eq!(again["user"]["deactivatedAt"], first_at);
    assert_eq!(again["user"]["deactivationReason"], "left the company");
    assert_eq!(
        again["removedGroups"],
        json!([{ "name": "Editors" }]),
        "still remembered"
    );
    assert_eq!(
        audit_count(app, "USER_DEACTIVATED").await,
        1,
        "no change, no entry"
    );

    let back = app
        .ok(
            Some(&t.root),
            REACTIVATE,
            json!({ "id": t.alice, "restore": true }),
        )
        .await["reactivateUser"]
        .clone();
    assert_eq!(back["restoredGroups"], json!([{ "name": "Editors" }]));
    assert_eq!(
        back["restoredPermissions"],
        json!([{ "key": "polls.add_question" }])
    );
    assert_eq!(back["staffRestored"], true);
    assert_eq!(back["missingGroupIds"], json!([]));
    assert_eq!(back["user"]["isActive"], true);
    assert_eq!(back["user"]["isStaff"], true);
    assert_eq!(back["user"]["deactivatedAt"], Value::Null);
    assert_eq!(
        back["user"]["userPermissions"],
        json!([{ "key": "polls.add_question" }])
    );
    let token = app.login("alice", PASSWORD).await;
    assert_eq!(
        app.ok(Some(&token), ME, json!({})).await["me"]["username"],
        "alice"
    );
    assert_eq!(audit_count(app, "USER_REACTIVATED").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactivation_without_restore_and_with_a_group_deleted_meanwhile() {
    let t = team().await;
    let app = &t.app;
    app.ok(Some(&t.root), DEACTIVATE, json!({ "id": t.alice }))
        .await;
    let plain = app
        .ok(Some(&t.root), REACTIVATE, json!({ "id": t.alice }))
        .await["reactivateUser"]
        .clone();
    assert_eq!(plain["user"]["isActive"], true);
    assert_eq!(
        plain["user"]["groups"],
        json!([]),
        "access comes back only on request"
    );
    assert_eq!(plain["restoredGroups"], json!([]));
    // A reactivation ends the deactivation: a later restore has nothing left to give.
    app.ok(Some(&t.root), DEACTIVATE, json!({ "id": t.alice }))
        .await;
    let nothing = app
        .ok(
            Some(&t.root),
            REACTIVATE,
            json!({ "id": t.alice, "restore": true }),
        )
        .await;
    assert_eq!(nothing["reactivateUser"]["restoredPermissions"], json!([]));

    // Now with the group gone between deactivation and reactivation.
    sqlx::query("INSERT INTO user_groups (user_id, group_id) SELECT id, $1 FROM users WHERE username = 'alice'")
        .bind(t.editors)
        .execute(app.pool())
        .await
        .unwrap();
    app.ok(Some(&t.root), DEACTIVATE, json!({ "id": t.alice }))
        .await;
    for sql in [
        "DELETE FROM group_permissions WHERE group_id = $1",
        "DELETE FROM groups WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(t.editors)
            .execute(app.pool())
            .await
            .unwrap();
    }
    let back = app
        .ok(
            Some(&t.root),
            REACTIVATE,
            json!({ "id": t.alice, "restore": true }),
        )
        .await["reactivateUser"]
        .clone();
    assert_eq!(back["restoredGroups"], json!([]));
    assert_eq!(
        back["missingGroupIds"].as_array().unwrap().len(),
        1,
        "{back}"
    );
    assert_eq!(back["user"]["isActive"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_lifecycle_calls_change_nothing() {
    let t = team().await;
    let app = &t.app;
    let (root_row, _) = (
        sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = 'root'")
            .fetch_one(app.pool())
            .await
            .unwrap(),
        (),
    );
    let root_id = json!(memberdesk::ids::encode(
        memberdesk::ids::Kind::User,
        root_row
    ));
    let (_, changer) = app.staff_with("changer", &["auth.change_user"]).await;
    let (_, viewer) = app.staff_with("viewer", &["auth.view_user"]).await;
    let bob = app.user("bob", false, false).await;
    let bob_id = json!(user_id(&bob));
    let before = snapshot(app.pool()).await;
    let cases: Vec<(Option<&str>, &str, Value, &str)> = vec![
        (None, DEACTIVATE, json!({ "id": bob_id }), "UNAUTHENTICATED"),
        (
            Some(&viewer),
            DEACTIVATE,
            json!({ "id": bob_id }),
            "FORBIDDEN",
        ),
        (
            Some(&t.alice_token),
            DEACTIVATE,
            json!({ "id": bob_id }),
            "FORBIDDEN",
        ),
        (
            Some(&changer),
            DEACTIVATE,
            json!({ "id": root_id }),
            "FORBIDDEN",
        ),
        (
            Some(&t.root),
            DEACTIVATE,
            json!({ "id": root_id }),
            "SELF_ACTION",
        ),
        (
            Some(&t.root),
            DEACTIVATE,
            json!({ "id": "garbage!" }),
            "INVALID_INPUT",
        ),
        (
            Some(&t.root),
            DEACTIVATE,
            json!({ "id": bob_id, "input": { "reason": "x".repeat(5000) } }),
            "INVALID_INPUT",
        ),
        (
            Some(&t.root),
            REACTIVATE,
            json!({ "id": root_id }),
            "SELF_ACTION",
        ),
        (
            Some(&changer),
            "mutation($id: ID!) { anonymizeUser(id: $id) { user { id } } }",
            json!({ "id": bob_id }),
            "FORBIDDEN",
        ),
        (
            Some(&t.root),
            "mutation($id: ID!) { anonymizeUser(id: $id) { user { id } } }",
            json!({ "id": root_id }),
            "SELF_ACTION",
        ),
        (
            Some(&t.root),
            "mutation { deactivateUsers { deactivated { id } } }",
            json!({}),
            "INVALID_INPUT",
        ),
    ];
    for (token, query, vars, code) in cases {
        assert_eq!(
            app.err_code(token, query, vars.clone()).await,
            code,
            "{vars}"
        );
        assert_eq!(
            snapshot(app.pool()).await,
            before,
            "{code} for {vars} changed something"
        );
    }

    // Restoring access is granting it: a changer without polls.add_question
    // may reactivate alice but not hand her that permission back.
    app.ok(Some(&t.root), DEACTIVATE, json!({ "id": t.alice }))
        .await;
    let before = snapshot(app.pool()).await;
    let code = app
        .err_code(
            Some(&changer),
            REACTIVATE,
            json!({ "id": t.alice, "restore": true }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_active_superuser_cannot_be_taken_out() {
    let app = TestApp::spawn().await;
    let only = app.user("only", true, true).await;
    let before = snapshot(app.pool()).await;
    // Through the API a superuser acting on another always leaves themselves;
    // the system (the command line) has no such guarantee.
    for result in [
        lifecycle::deactivate_user(
            app.pool(),
            &Actor::System,
            only.id,
            DeactivateOptions::default(),
        )
        .await
        .err(),
        lifecycle::anonymize_user(
            app.pool(),
            &Actor::System,
            only.id,
            memberdesk::domain::validation::Reason::none(),
        )
        .await
        .err(),
    ] {
        assert!(
            matches!(result, Some(AppError::LastSuperuser)),
            "{result:?}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
    // A bulk run skips the last one instead of failing.
    let run = lifecycle::deactivate_users(
        app.pool(),
        &Actor::System,
        lifecycle::Selection::Ids(vec![only.id]),
        DeactivateOptions::default(),
    )
    .await
    .unwrap();
    assert!(run.deactivated.is_empty());
    assert_eq!(
        run.skipped,
        vec![(only.id, lifecycle::SkipReason::LastSuperuser)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_deactivation_by_ids_and_by_filter_with_skips() {
    let t = team().await;
    let app = &t.app;
    let bob = app.user("bob", false, false).await;
    let carol = app.user("carol", false, false).await;
    let dave = app.user("dave", false, false).await;
    sqlx::query("UPDATE users SET is_active = false, anonymized_at = now() WHERE id = $1")
        .bind(dave.id)
        .execute(app.pool())
        .await
        .unwrap();
    let root_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'root'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let enc = |id: i64| memberdesk::ids::encode(memberdesk::ids::Kind::User, id);
    let bulk = "mutation($ids: [ID!], $f: UserFilter) { deactivateUsers(ids: $ids, filter: $f) {
        deactivated { username isActive } skipped { id code } } }";
    let ids = json!([
        enc(root_id),
        enc(bob.id),
        enc(carol.id),
        enc(dave.id),
        enc(999_999)
    ]);
    let done = app.ok(Some(&t.root), bulk, json!({ "ids": ids })).await["deactivateUsers"].clone();
    assert_eq!(
        done["deactivated"],
        json!([{ "username": "bob", "isActive": false }, { "username": "carol", "isActive": false }])
    );
    let mut skipped: Vec<(String, String)> = done["skipped"]
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
    skipped.sort();
    let mut expected = vec![
        (enc(root_id), "SELF_ACTION".to_owned()),
        (enc(dave.id), "ANONYMIZED".to_owned()),
        (enc(999_999), "NOT_FOUND".to_owned()),
    ];
    expected.sort();
    assert_eq!(skipped, expected);
    assert_eq!(
        audit_count(app, "USER_DEACTIVATED").await,
        2,
        "one entry per deactivated user"
    );

    // A non-superuser's bulk run skips the superusers it may not touch.
    let (_, changer) = app.staff_with("changer", &["auth.change_user"]).await;
    let other_su = app.user("other-su", true, true).await;
    let done = app
        .ok(Some(&changer), bulk, json!({ "ids": [enc(other_su.id)] }))
        .await;
    assert_eq!(done["deactivateUsers"]["skipped"][0]["code"], "FORBIDDEN");

    // By filter: the dormant accounts only.
    sqlx::query("UPDATE users SET last_login = '2020-01-01T00:00:00Z' WHERE username IN ('alice', 'changer')")
        .execute(app.pool())
        .await
        .unwrap();
    let filter = json!({ "lastLoginBefore": "2021-01-01T00:00:00Z", "isActive": true });
    let done = app.ok(Some(&t.root), bulk, json!({ "f": filter })).await["deactivateUsers"].clone();
    let mut names: Vec<&str> = done["deactivated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "changer"]);
    assert_eq!(
        app.err_code(Some(&t.alice_token), ME, json!({})).await,
        "UNAUTHENTICATED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_dormant_command_dry_run_then_real_run() {
    let t = team().await;
    let app = &t.app;
    sqlx::query(
        "UPDATE users SET last_login = now() - interval '400 days' WHERE username = 'alice'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_memberdesk"))
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .output()
            .unwrap()
    };
    let before = snapshot(app.pool()).await;
    let dry = run(&["deactivate-dormant", "--days", "365", "--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{out}");
    assert!(out.contains("1 dormant") && out.contains("alice"), "{out}");
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a dry run changes nothing"
    );

    let real = run(&["deactivate-dormant", "--days", "365", "--batch-size", "1"]);
    let out = String::from_utf8_lossy(&real.stdout).to_string();
    assert!(
        real.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(out.contains("deactivated 1 dormant"), "{out}");
    assert!(out.contains("progress: 1/1"), "{out}");
    let (active, actor): (bool, String) = sqlx::query_as(
        "SELECT u.is_active, a.actor_username FROM users u JOIN audit_entries a ON a.target_user_id = u.id
          WHERE u.username = 'alice' AND a.action = 'USER_DEACTIVATED'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((active, actor.as_str()), (false, "system"));

    let bad = run(&["deactivate-dormant", "--days", "0"]);
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymization_erases_the_person_and_keeps_the_history() {
    let t = team().await;
    let app = &t.app;
    sqlx::query("UPDATE users SET first_name = 'Alice', last_name = 'Liddell', email = 'alice.liddell@example.org' WHERE username = 'alice'")
        .execute(app.pool())
        .await
        .unwrap();
    let q = app
        .ok(
            Some(&t.root),
            "mutation { createQuestion(text: \"Lunch?\", choices: [\"Yes\", \"No\"]) { id choices { id } } }",
            json!({}),
        )
        .await;
    let yes = q["createQuestion"]["choices"][0]["id"].clone();
    let question = q["createQuestion"]["id"].clone();
    app.ok(
        Some(&t.alice_token),
        "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
        json!({ "c": yes }),
    )
    .await;
    app.ok(
        Some(&t.root),
        "mutation($id: ID!) { updateUser(id: $id, input: { firstName: \"Alice\" }) { id } }",
        json!({ "id": t.alice }),
    )
    .await;

    let export = app
        .ok(
            Some(&t.root),
            "query($id: ID!) { exportUserData(userId: $id) }",
            json!({ "id": t.alice }),
        )
        .await;
    let doc = &export["exportUserData"];
    assert_eq!(doc["profile"]["email"], "alice.liddell@example.org");
    assert_eq!(doc["groups"], json!(["Editors"]));
    assert_eq!(doc["permissions"], json!(["polls.add_question"]));
    assert_eq!(doc["votes"][0]["question"], "Lunch?");
    assert!(!doc["auditEntries"].as_array().unwrap().is_empty());
    assert!(!doc.to_string().contains("$argon2"), "no hash in an export");

    let anon = "mutation($id: ID!) { anonymizeUser(id: $id, reason: \"erasure request\") {
        user { username email firstName lastName isActive isStaff isSuperuser anonymizedAt groups { name } } sessionsRevoked } }";
    let done = app.ok(Some(&t.root), anon, json!({ "id": t.alice })).await["anonymizeUser"].clone();
    let user = &done["user"];
    assert!(
        user["username"]
            .as_str()
            .unwrap()
            .starts_with("deleted-user-"),
        "{user}"
    );
    assert_eq!(
        (
            user["email"].clone(),
            user["firstName"].clone(),
            user["lastName"].clone()
        ),
        (json!(""), json!(""), json!(""))
    );
    assert_eq!(
        (user["isActive"].clone(), user["isStaff"].clone()),
        (json!(false), json!(false))
    );
    assert!(user["anonymizedAt"].is_string());
    assert_eq!(user["groups"], json!([]));
    assert_eq!(done["sessionsRevoked"], 1);
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username LIKE 'deleted-user-%'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(hash, None, "the password is unusable");

    // The history stays, without the person.
    let tally = app
        .ok(
            Some(&t.root),
            "query($q: ID!) { question(id: $q) { choices { voteCount } } }",
            json!({ "q": question }),
        )
        .await;
    assert_eq!(tally["question"]["choices"][0]["voteCount"], 1);
    let votes = app
        .ok(
            Some(&t.root),
            "query($u: ID!) { votes(userId: $u, first: 5) { edges { node { voterName } } } }",
            json!({ "u": t.alice }),
        )
        .await;
    assert_eq!(
        votes["votes"]["edges"][0]["node"]["voterName"],
        "Deleted user"
    );
    let log = app
        .ok(Some(&t.root), "{ auditLog(first: 100) { edges { node { action actorUsername targetRepr reason details } } } }", json!({}))
        .await
        .to_string();
    for trace in ["alice", "Alice", "Liddell"] {
        assert!(
            !log.contains(trace),
            "the audit log still names the person ({trace}): {log}"
        );
    }
    assert!(log.contains("USER_ANONYMIZED"));

    // Irreversible.
    for (query, vars) in [
        (REACTIVATE, json!({ "id": t.alice })),
        (DEACTIVATE, json!({ "id": t.alice })),
        (anon, json!({ "id": t.alice })),
        (
            "mutation($id: ID!) { updateUser(id: $id, input: { firstName: \"A\" }) { id } }",
            json!({ "id": t.alice }),
        ),
        (
            "mutation($id: ID!) { setPassword(userId: $id, password: \"another long passphrase\") }",
            json!({ "id": t.alice }),
        ),
    ] {
        let before = snapshot(app.pool()).await;
        assert_eq!(
            app.err_code(Some(&t.root), query, vars).await,
            "ANONYMIZED",
            "{query}"
        );
        assert_eq!(snapshot(app.pool()).await, before);
    }
    let login = "mutation { login(username: \"alice\", password: \"correct horse battery staple\") { token } }";
    assert_eq!(
        app.err_code(None, login, json!({})).await,
        "INVALID_CREDENTIALS"
    );
    // The name is free again.
    let again = app
        .ok(
            Some(&t.root),
            "mutation { createUser(input: { username: \"alice\", password: \"a fresh long passphrase\" }) { username } }",
            json!({}),
        )
        .await;
    assert_eq!(again["createUser"]["username"], "alice");
}
