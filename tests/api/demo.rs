//! The demo data: `seed-demo` and `serve --demo` refuse a database holding
//! real users (the demo publishes a superuser's password) unless forced, are
//! idempotent, and give every step of the README's story something to show,
//! the `User managers` role included. Also the production switches
//! (`MEMBERDESK_PLAYGROUND`, `MEMBERDESK_INTROSPECTION`,
//! `MEMBERDESK_METRICS_BIND`), over HTTP.

use std::time::Duration;

use memberdesk::config::{Settings, Switch};
use memberdesk::domain::{Actor, accounts};
use secrecy::SecretString;
use serde_json::json;

use crate::cli::{memberdesk, memberdesk_within, text};
use crate::helpers::{Call, PASSWORD, TestApp, TestDb, snapshot};

const DEMO_PASSWORD: &str = "memberdesk-demo";

async fn real_user(db: &TestDb, username: &str) {
    let input = accounts::NewUserInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: SecretString::from(PASSWORD),
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
    };
    accounts::create_user(&db.pool, &Actor::System, input, &Default::default())
        .await
        .expect("create user");
}

/// `serve` with `args`, which must exit by itself within 60 s (a server
/// that starts instead is killed and fails the test).
fn serve_must_exit(db: &str, args: &[&str]) -> std::process::Output {
    let env = [("DATABASE_URL", db), ("NO_COLOR", "1")];
    memberdesk_within(args, &env, Duration::from_secs(60)).0
}

const REFUSAL: &str = "error: this database holds 1 user(s) that are not demo users (jane): the demo adds the superuser 'admin' with the published password 'memberdesk-demo'. Point DATABASE_URL at a new database, or pass --force-demo to add it anyway";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_a_database_with_real_users_unless_forced() {
    let db = TestDb::new().await;
    real_user(&db, "jane").await;
    let before = snapshot(&db.pool).await;

    let out = memberdesk(&db.url, &["seed-demo"], None);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), REFUSAL);
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let out = serve_must_exit(&db.url, &["serve", "--demo", "--bind", "127.0.0.1:0"]);
    assert!(!out.status.success(), "{}", text(&out));
    let last = String::from_utf8_lossy(&out.stderr);
    assert_eq!(last.trim().lines().last(), Some(REFUSAL), "{last}");
    assert_eq!(
        snapshot(&db.pool).await,
        before,
        "a refusal changes nothing"
    );

    let out = memberdesk(&db.url, &["seed-demo", "--force-demo"], None);
    assert!(out.status.success(), "{}", text(&out));
    let admins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'admin' AND is_superuser")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(admins, 1);
}

/// Anonymized accounts identify nobody: the README story erases `carol`,
/// and the demo still loads again (a new `carol` for the next reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_twice_is_the_same_data_and_anonymized_users_do_not_block_it() {
    let db = TestDb::new().await;
    let first = memberdesk(&db.url, &["seed-demo"], None);
    assert!(first.status.success(), "{}", text(&first));
    let once = snapshot(&db.pool).await;
    let again = memberdesk(&db.url, &["seed-demo"], None);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(snapshot(&db.pool).await, once, "seed-demo is idempotent");
    assert!(text(&again).contains("0 new users"), "{}", text(&again));

    let carol: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'carol'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    memberdesk::domain::lifecycle::anonymize_user(
        &db.pool,
        &Actor::System,
        carol,
        memberdesk::domain::validation::Reason::none(),
    )
    .await
    .expect("anonymize carol");
    let after = memberdesk(&db.url, &["seed-demo"], None);
    assert!(after.status.success(), "{}", text(&after));
    assert!(
        text(&after).contains("1 new users (carol)"),
        "{}",
        text(&after)
    );
}

/// What the story's deactivation shows: the user after, and what was taken.
const DEACTIVATED: &str =
    "user { isActive } sessionsRevoked removedGroups { name } removedPermissions { key }";
/// What the story's reactivation shows: the user after, and what came back.
const REACTIVATED: &str =
    "user { isActive groups { name } } restoredGroups { name } restoredPermissions { key }";

/// The story's deactivation of `id` (for a reason), and its reactivation
/// giving everything back.
fn deactivate<'a>(app: &'a TestApp, token: &str, id: &str) -> Call<'a> {
    let input = json!({ "reason": "left" });
    app.deactivate(token, id).input(input).select(DEACTIVATED)
}

fn reactivate<'a>(app: &'a TestApp, token: &str, id: &str) -> Call<'a> {
    app.reactivate(token, id)
        .restore_access()
        .select(REACTIVATED)
}

/// Every README step has something to show on the demo data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_data_gives_every_story_step_an_answer() {
    let app = TestApp::spawn().await;
    let out = memberdesk(&app.db.url, &["seed-demo"], None);
    assert!(out.status.success(), "{}", text(&out));
    let admin = app.login("admin", DEMO_PASSWORD).await;
    let alice = app.id_of(&admin, "alice").await;

    let gone = deactivate(&app, &admin, &alice).ok().await;
    assert_eq!(gone["sessionsRevoked"], 1, "{gone}");
    assert_eq!(
        gone["removedGroups"],
        json!([{ "name": "Editors" }]),
        "{gone}"
    );
    assert_eq!(
        gone["removedPermissions"],
        json!([{ "key": "polls.change_question" }])
    );
    let back = reactivate(&app, &admin, &alice).ok().await;
    assert_eq!(
        back["restoredGroups"],
        json!([{ "name": "Editors" }]),
        "{back}"
    );
    assert_eq!(
        back["restoredPermissions"],
        json!([{ "key": "polls.change_question" }])
    );

    let dormant = app
        .ok(
            Some(&admin),
            "{ users(filter: { isActive: true, lastLoginBefore: \"2025-01-01T00:00:00Z\" }) { edges { node { username } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        dormant["users"]["edges"],
        json!([{ "node": { "username": "dave" } }])
    );

    let bob = app.id_of(&admin, "bob").await;
    let plan = app.deletion_plan(&admin, &bob).policy("CASCADE").ok().await;
    let deleted = plan["deleted"].as_array().unwrap();
    assert!(
        deleted
            .iter()
            .any(|r| r["relation"] == "votes" && r["count"] == 2),
        "{plan}"
    );
}

/// `User managers` is enough to deactivate and reactivate a member, and the
/// scope rule keeps its holders off anyone holding more (alice, an Editor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_manager_deactivates_and_reactivates_members_within_scope() {
    let app = TestApp::spawn().await;
    let out = memberdesk(&app.db.url, &["seed-demo"], None);
    assert!(out.status.success(), "{}", text(&out));
    let manager = app.login("mia-manager", DEMO_PASSWORD).await;
    let bob = app.id_of(&manager, "bob").await;
    let gone = deactivate(&app, &manager, &bob).ok().await;
    assert_eq!(gone["user"]["isActive"], false);
    let back = reactivate(&app, &manager, &bob).ok().await;
    assert_eq!(back["user"]["isActive"], true);

    let alice = app.id_of(&manager, "alice").await;
    deactivate(&app, &manager, &alice)
        .refused("FORBIDDEN")
        .await;
}

fn settings(change: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    change(&mut s);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_playground_off_no_page_is_served() {
    let app = TestApp::spawn_with(settings(|s| s.playground = Switch::Off)).await;
    let get = |path: &str| {
        app.get(path)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
    };
    assert_eq!(get("/").await.unwrap().status(), 404);
    assert_eq!(
        get("/playground/assets/playground.js")
            .await
            .unwrap()
            .status(),
        404
    );
    let api = get("/graphql").await.unwrap();
    let kind = api.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(!kind.starts_with("text/html"), "{kind}");
    assert!(api.text().await.unwrap().contains("errors"));
    let answer = get("/graphql?query=%7B__typename%7D").await.unwrap();
    assert_eq!(
        answer.text().await.unwrap(),
        r#"{"data":{"__typename":"QueryRoot"}}"#
    );

    let on = TestApp::spawn().await;
    let page = on.get("/").send().await.unwrap();
    assert_eq!(page.status(), 200, "on by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_introspection_off_schema_queries_answer_nothing() {
    let app = TestApp::spawn_with(settings(|s| s.introspection = Switch::Off)).await;
    // async-graphql answers both fields with null: nothing of the schema leaks.
    let resp = app
        .gql(
            None,
            "{ __schema { queryType { name } } __type(name: \"User\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        resp,
        json!({ "data": { "__schema": null, "__type": null } })
    );
    assert_eq!(
        app.ok(None, "{ __typename }", json!({})).await,
        json!({ "__typename": "QueryRoot" })
    );
    let on = TestApp::spawn().await;
    let schema = on
        .ok(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(schema["__schema"]["queryType"]["name"], "QueryRoot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bind_serves_metrics_only_on_the_internal_address() {
    let db = TestDb::new().await;
    let server = memberdesk::http::bind("127.0.0.1:0")
        .await
        .unwrap()
        .bind_metrics("127.0.0.1:0")
        .await
        .unwrap();
    let main = format!("http://{}", server.addr);
    let internal = format!(
        "http://{}",
        server.metrics_addr().expect("a metrics listener")
    );
    tokio::spawn(server.serve(db.pool.clone(), Settings::default(), std::future::pending()));
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };
    assert_eq!(status(format!("{main}/metrics")).await, 404);
    assert_eq!(status(format!("{main}/healthz")).await, 200);
    assert_eq!(status(format!("{internal}/graphql")).await, 404);
    let scrape = client
        .get(format!("{internal}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let body = scrape.text().await.unwrap();
    assert!(body.contains("memberdesk_db_pool_connections"), "{body}");
}
