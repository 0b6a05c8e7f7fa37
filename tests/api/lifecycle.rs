//! The member lifecycle end to end: deactivate (login blocked at once,
//! access stripped and remembered), reactivate (with and without restoring),
//! bulk and dormant deactivation, anonymization with its export beforehand.
//! Every refusal leaves the database as it was.

use serde_json::{Value, json};

use crate::cli::{memberdesk, text};
use crate::helpers::{ANONYMOUS, Call, PASSWORD, TestApp, skipped, snapshot, user_id};
use memberdesk::domain::Actor;
use memberdesk::domain::lifecycle::{self, DeactivateOptions};
use memberdesk::error::AppError;

/// What a deactivation payload shows here: the user after, and what was taken.
const DEACTIVATED: &str =
    "user { isActive isStaff deactivatedAt deactivationReason groups { name } allPermissions }
    sessionsRevoked removedGroups { name } removedPermissions { key } staffRevoked";
/// What a reactivation payload shows here: the user after, and what came back.
const REACTIVATED: &str =
    "user { isActive isStaff deactivatedAt groups { name } userPermissions { key } }
    restoredGroups { name } restoredPermissions { key } staffRestored missingGroupIds";

/// What an anonymization payload shows here: every field it erases.
const ANONYMIZED: &str = "user { username email firstName lastName isActive isStaff isSuperuser
    anonymizedAt groups { name } } sessionsRevoked";

/// root (superuser) and alice: staff, in Editors (auth.view_user), with the
/// direct permission polls.add_question, logged in.
struct Team {
    app: TestApp,
    root: String,
    /// alice's id.
    alice: String,
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
        app.execute(sql, editors).await;
    }
    let alice_token = app.login("alice", PASSWORD).await;
    Team {
        alice: user_id(&alice),
        app,
        root,
        alice_token,
        editors,
    }
}

impl Team {
    /// Root deactivates alice (add `.input(..)` for what to take).
    fn deactivate_alice(&self) -> Call<'_> {
        self.app
            .deactivate(&self.root, &self.alice)
            .select(DEACTIVATED)
    }

    /// Root reactivates alice (add `.restore_access()` to give back).
    fn reactivate_alice(&self) -> Call<'_> {
        self.app
            .reactivate(&self.root, &self.alice)
            .select(REACTIVATED)
    }

    /// Root erases alice, for a reason.
    fn anonymize_alice(&self) -> Call<'_> {
        self.app
            .anonymize(&self.root, &self.alice)
            .reason("erasure request")
            .select(ANONYMIZED)
    }

    /// Alice deactivated with her staff flag, for a reason: the payload.
    async fn alice_deactivated(&self) -> Value {
        let input = json!({ "revokeStaff": true, "reason": "left the company" });
        self.deactivate_alice().input(input).ok().await
    }

    /// The code `login` answers for alice with `password`.
    async fn alice_login_code(&self, password: &str) -> String {
        let login = "mutation($p: String!) { login(username: \"alice\", password: $p) { token } }";
        let vars = json!({ "p": password });
        self.app.err_code(ANONYMOUS, login, vars).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_takes_access_away_and_blocks_login_at_once() {
    let t = team().await;
    let app = &t.app;
    assert_eq!(app.me(&t.alice_token).await.unwrap(), "alice");

    let done = t.alice_deactivated().await;
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
    assert_eq!(app.me(&t.alice_token).await.unwrap_err(), "UNAUTHENTICATED");
    assert_eq!(t.alice_login_code(PASSWORD).await, "ACCOUNT_INACTIVE");
    assert_eq!(
        t.alice_login_code("wrong password!").await,
        "INVALID_CREDENTIALS"
    );
    assert_eq!(app.audit_count("USER_DEACTIVATED").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_again_changes_nothing_and_forgets_nothing() {
    let t = team().await;
    let first = t.alice_deactivated().await;
    let again = t.deactivate_alice().ok().await;
    assert_eq!(again["sessionsRevoked"], 0);
    assert_eq!(
        again["user"]["deactivatedAt"],
        first["user"]["deactivatedAt"]
    );
    assert_eq!(again["user"]["deactivationReason"], "left the company");
    assert_eq!(
        again["removedGroups"],
        json!([{ "name": "Editors" }]),
        "still remembered"
    );
    assert_eq!(
        t.app.audit_count("USER_DEACTIVATED").await,
        1,
        "no change, no entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactivation_with_restore_gives_back_exactly_what_was_taken() {
    let t = team().await;
    let app = &t.app;
    t.alice_deactivated().await;
    // A repeated deactivation in between must forget nothing.
    t.deactivate_alice().ok().await;

    let back = t.reactivate_alice().restore_access().ok().await;
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
    assert_eq!(app.me(&token).await.unwrap(), "alice");
    assert_eq!(app.audit_count("USER_REACTIVATED").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactivation_without_restore_and_with_a_group_deleted_meanwhile() {
    let t = team().await;
    let app = &t.app;
    t.deactivate_alice().ok().await;
    let plain = t.reactivate_alice().ok().await;
    assert_eq!(plain["user"]["isActive"], true);
    assert_eq!(
        plain["user"]["groups"],
        json!([]),
        "access comes back only on request"
    );
    assert_eq!(plain["restoredGroups"], json!([]));
    // A reactivation ends the deactivation: a later restore has nothing left to give.
    t.deactivate_alice().ok().await;
    let nothing = t.reactivate_alice().restore_access().ok().await;
    assert_eq!(nothing["restoredPermissions"], json!([]));

    // Now with the group gone between deactivation and reactivation.
    app.execute("INSERT INTO user_groups (user_id, group_id) SELECT id, $1 FROM users WHERE username = 'alice'", t.editors).await;
    t.deactivate_alice().ok().await;
    for sql in [
        "DELETE FROM group_permissions WHERE group_id = $1",
        "DELETE FROM groups WHERE id = $1",
    ] {
        app.execute(sql, t.editors).await;
    }
    let back = t.reactivate_alice().restore_access().ok().await;
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
    let root = app.id_of(&t.root, "root").await;
    let (_, changer) = app.staff_with("changer", &["auth.change_user"]).await;
    let (_, viewer) = app.staff_with("viewer", &["auth.view_user"]).await;
    let bob = user_id(&app.user("bob", false, false).await);
    let long_reason = json!({ "reason": "x".repeat(5000) });
    let cases = [
        (app.deactivate(ANONYMOUS, &bob), "UNAUTHENTICATED"),
        (app.deactivate(&viewer, &bob), "FORBIDDEN"),
        (app.deactivate(&t.alice_token, &bob), "FORBIDDEN"),
        (app.deactivate(&changer, &root), "FORBIDDEN"),
        (app.deactivate(&t.root, &root), "SELF_ACTION"),
        (app.deactivate(&t.root, "garbage!"), "INVALID_INPUT"),
        (
            app.deactivate(&t.root, &bob).input(long_reason),
            "INVALID_INPUT",
        ),
        (app.reactivate(&t.root, &root), "SELF_ACTION"),
        (app.anonymize(&changer, &bob), "FORBIDDEN"),
        (app.anonymize(&t.root, &root), "SELF_ACTION"),
        (app.deactivate_users(&t.root), "INVALID_INPUT"),
    ];
    for (call, code) in cases {
        call.refused(code).await;
    }
}

/// Restoring access is granting it: a changer without polls.add_question
/// may reactivate alice but not hand her that permission back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_access_needs_every_permission_it_gives_back() {
    let t = team().await;
    let app = &t.app;
    let (_, changer) = app.staff_with("changer", &["auth.change_user"]).await;
    t.deactivate_alice().ok().await;
    app.reactivate(&changer, &t.alice)
        .restore_access()
        .refused("FORBIDDEN")
        .await;
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

/// What a bulk deactivation payload shows here.
const BULK: &str = "deactivated { username isActive } skipped { id code }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_deactivation_by_ids_and_by_filter_with_skips() {
    let t = team().await;
    let app = &t.app;
    let bob = app.user("bob", false, false).await;
    let carol = app.user("carol", false, false).await;
    let dave = app.user("dave", false, false).await;
    app.execute(
        "UPDATE users SET is_active = false, anonymized_at = now() WHERE id = $1",
        dave.id,
    )
    .await;
    let root = app.id_of(&t.root, "root").await;
    let nobody = memberdesk::ids::encode(memberdesk::ids::Kind::User, 999_999);
    let ids = [
        &root,
        &user_id(&bob),
        &user_id(&carol),
        &user_id(&dave),
        &nobody,
    ];
    let ids: Vec<&str> = ids.into_iter().map(String::as_str).collect();
    let done = app
        .deactivate_users(&t.root)
        .ids(ids)
        .select(BULK)
        .ok()
        .await;
    assert_eq!(
        done["deactivated"],
        json!([{ "username": "bob", "isActive": false }, { "username": "carol", "isActive": false }])
    );
    let mut expected = vec![
        (root, "SELF_ACTION".to_owned()),
        (user_id(&dave), "ANONYMIZED".to_owned()),
        (nobody, "NOT_FOUND".to_owned()),
    ];
    expected.sort();
    assert_eq!(skipped(&done), expected);
    assert_eq!(
        app.audit_count("USER_DEACTIVATED").await,
        2,
        "one entry per deactivated user"
    );

    // A non-superuser's bulk run skips the superusers it may not touch.
    let (_, changer) = app.staff_with("changer", &["auth.change_user"]).await;
    let other_su = app.user("other-su", true, true).await;
    let done = app
        .deactivate_users(&changer)
        .ids(vec![user_id(&other_su)])
        .ok()
        .await;
    assert_eq!(done["skipped"][0]["code"], "FORBIDDEN");

    // By filter: the dormant accounts only.
    sqlx::query("UPDATE users SET last_login = '2020-01-01T00:00:00Z' WHERE username IN ('alice', 'changer')")
        .execute(app.pool())
        .await
        .unwrap();
    let filter = json!({ "lastLoginBefore": "2021-01-01T00:00:00Z", "isActive": true });
    let done = app.deactivate_users(&t.root).filter(filter).ok().await;
    let mut names: Vec<&str> = done["deactivated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "changer"]);
    assert_eq!(app.me(&t.alice_token).await.unwrap_err(), "UNAUTHENTICATED");
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
    let run = |args: &[&str]| memberdesk(&app.db.url, args, None);
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
    assert!(real.status.success(), "{}", text(&real));
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

/// Alice with a full name and an address, a vote on root's question and an
/// edit in the audit log; her data exported, then her account anonymized.
struct Erasure {
    t: Team,
    /// The question alice voted on.
    question: String,
    /// `exportUserData` just before the anonymization.
    export: Value,
    /// The `anonymizeUser` payload.
    done: Value,
}

async fn erasure() -> Erasure {
    let t = team().await;
    let app = &t.app;
    sqlx::query("UPDATE users SET first_name = 'Alice', last_name = 'Liddell', email = 'alice.liddell@example.org' WHERE username = 'alice'")
        .execute(app.pool())
        .await
        .unwrap();
    let q = app
        .create_question(&t.root, "Lunch?", &["Yes", "No"])
        .ok()
        .await;
    let yes = q["choices"][0]["id"].as_str().unwrap();
    app.vote(&t.alice_token, yes).ok().await;
    app.update_user(&t.root, &t.alice, json!({ "firstName": "Alice" }))
        .ok()
        .await;
    let export = app.export_user_data(&t.root, &t.alice).ok().await;
    let done = t.anonymize_alice().ok().await;
    Erasure {
        question: q["id"].as_str().unwrap().to_owned(),
        t,
        export,
        done,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_before_an_erasure_holds_everything_about_the_person() {
    let e = erasure().await;
    let doc = &e.export;
    assert_eq!(doc["profile"]["email"], "alice.liddell@example.org");
    assert_eq!(doc["groups"], json!(["Editors"]));
    assert_eq!(doc["permissions"], json!(["polls.add_question"]));
    assert_eq!(doc["votes"][0]["question"], "Lunch?");
    assert!(!doc["auditEntries"].as_array().unwrap().is_empty());
    assert!(!doc.to_string().contains("$argon2"), "no hash in an export");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymization_erases_every_personal_field_and_the_password() {
    let e = erasure().await;
    let user = &e.done["user"];
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
    assert_eq!(e.done["sessionsRevoked"], 1);
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username LIKE 'deleted-user-%'")
            .fetch_one(e.t.app.pool())
            .await
            .unwrap();
    assert_eq!(hash, None, "the password is unusable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymization_keeps_the_history_without_the_person() {
    let e = erasure().await;
    let (app, t) = (&e.t.app, &e.t);
    let tally = app
        .ok(
            Some(&t.root),
            "query($q: ID!) { question(id: $q) { choices { voteCount } } }",
            json!({ "q": e.question }),
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
    let log = app.audit_entries(&t.root, json!({})).await;
    let log = Value::from(log).to_string();
    for trace in ["alice", "Alice", "Liddell"] {
        assert!(
            !log.contains(trace),
            "the audit log still names the person ({trace}): {log}"
        );
    }
    assert!(log.contains("USER_ANONYMIZED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymization_is_irreversible_and_frees_the_username() {
    let e = erasure().await;
    let (app, t) = (&e.t.app, &e.t);
    for call in [
        t.reactivate_alice(),
        t.deactivate_alice(),
        t.anonymize_alice(),
        app.update_user(&t.root, &t.alice, json!({ "firstName": "A" })),
        app.set_password(&t.root, &t.alice, "another long passphrase"),
    ] {
        call.refused("ANONYMIZED").await;
    }
    assert_eq!(t.alice_login_code(PASSWORD).await, "INVALID_CREDENTIALS");
    // The name is free again.
    let input = json!({ "username": "alice", "password": "a fresh long passphrase" });
    let again = app.create_user(&t.root, input).ok().await;
    assert_eq!(again["username"], "alice");
}
