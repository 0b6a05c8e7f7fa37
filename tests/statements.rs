//! Proves that nested fields go through DataLoaders: a page of users with
//! groups, permissions and vote counts costs the same number of SQL
//! statements whether it holds 2 users or 100, and says how many.
//!
//! It counts sqlx's own `sqlx::query` events (one per statement executed)
//! with a process-wide tracing layer, so it lives in a test binary of its
//! own: another test running in parallel would add its statements to the count.

#[path = "api/helpers.rs"]
// Shared with tests/api: this binary uses only part of the helpers.
#[allow(dead_code)]
mod helpers;

use std::sync::atomic::{AtomicUsize, Ordering};

use helpers::TestApp;
use serde_json::json;
use tracing_subscriber::layer::{Context, SubscriberExt};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

const PAGE: &str = "query($n: Int!) { users(first: $n) { totalCount edges { node {
    username groups { name permissions { key } } userPermissions { key }
    allPermissions voteCount
} } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_users_costs_a_fixed_number_of_statements() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountStatements))
        .expect("the only subscriber in this binary");
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    seed(&app, 120).await;

    let mut counts = Vec::new();
    for n in [2, 10, 50, 100] {
        // The first request of a size warms the pool and the statement cache.
        app.ok(Some(&token), PAGE, json!({ "n": n })).await;
        let before = STATEMENTS.load(Ordering::SeqCst);
        let data = app.ok(Some(&token), PAGE, json!({ "n": n })).await;
        let used = STATEMENTS.load(Ordering::SeqCst) - before;
        let edges = data["users"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n as usize);
        // The seeded data really is there, so the loaders did real work.
        let last = &edges[n as usize - 1]["node"];
        assert_eq!(last["groups"].as_array().unwrap().len(), 2, "{last}");
        assert_eq!(last["voteCount"], 1, "{last}");
        assert!(!last["allPermissions"].as_array().unwrap().is_empty());
        println!("users(first: {n}) with nested fields: {used} SQL statements");
        counts.push(used);
    }
    assert!(
        counts.iter().all(|&c| c == counts[0]),
        "statement count grows with page size: {counts:?}"
    );
    // The session check, the page, its totalCount, the users' facts (groups,
    // allPermissions and voteCount in one statement, see store::user_facts),
    // their direct grants, and their groups' permissions (a second round: it
    // needs the groups).
    assert_eq!(counts[0], 6, "{counts:?}");

    // The benchmark's page: the session check, the page, the facts.
    let facts_only = "query($n: Int!) { users(first: $n) { edges { node {
        username groups { name } allPermissions voteCount } } } }";
    app.ok(Some(&token), facts_only, json!({ "n": 50 })).await;
    let before = STATEMENTS.load(Ordering::SeqCst);
    app.ok(Some(&token), facts_only, json!({ "n": 50 })).await;
    assert_eq!(STATEMENTS.load(Ordering::SeqCst) - before, 3);
}

/// `users` plain members, each in two groups with permissions, with one
/// direct permission and one vote: every nested field has rows to load.
async fn seed(app: &TestApp, users: i64) {
    let pool = app.pool();
    let statements = [
        "INSERT INTO users (username, username_key, email)
           SELECT 'member' || i, 'member' || i, 'member' || i || '@example.org' FROM generate_series(1, $1) i",
        "INSERT INTO groups (name) VALUES ('Editors'), ('Readers')",
        "INSERT INTO group_permissions (group_id, permission_id)
           SELECT g.id, p.id FROM groups g, permissions p WHERE p.codename LIKE 'view_%'",
        "INSERT INTO user_groups (user_id, group_id)
           SELECT u.id, g.id FROM users u, groups g WHERE u.username LIKE 'member%'",
        "INSERT INTO user_permissions (user_id, permission_id)
           SELECT u.id, p.id FROM users u, permissions p WHERE u.username LIKE 'member%' AND p.codename = 'add_question'",
        "INSERT INTO questions (text) VALUES ('Tabs or spaces?')",
        "INSERT INTO choices (question_id, text, position) SELECT id, 'Tabs', 1 FROM questions",
        "INSERT INTO votes (choice_id, question_id, user_id)
           SELECT c.id, c.question_id, u.id FROM choices c, users u WHERE u.username LIKE 'member%'",
    ];
    for sql in statements {
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") {
            query.bind(users)
        } else {
            query
        };
        query
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}
