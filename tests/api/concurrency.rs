//! Concurrency: a mixed workload of voters, readers, logins and lifecycle
//! operations on one server, two servers sharing one database, and racing
//! votes. Afterwards the invariants of the README's "Guarantees" must hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use memberdesk::config::Settings;
use serde_json::{Value, json};

use crate::helpers::{Call, PASSWORD, TestApp, ids, user_id};

/// The invariants every test here ends with.
pub async fn assert_invariants(pool: &sqlx::PgPool) {
    let active_superusers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE is_active AND is_superuser")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(active_superusers >= 1, "no active superuser left");
    let live_sessions_of_inactive: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.revoked_at IS NULL AND s.expires_at > now() AND NOT u.is_active",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        live_sessions_of_inactive, 0,
        "a live session of an inactive user"
    );
    // A vote is attached to an existing user or detached; never two per user and question.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM votes WHERE user_id IS NOT NULL
          GROUP BY user_id, question_id HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM votes v JOIN choices c ON c.id = v.choice_id WHERE c.question_id <> v.question_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0, "a vote's question disagrees with its choice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_user_voting_twice_at_once_gets_exactly_one_vote() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let q = app.create_question(&root, "Now?", &["A", "B"]).ok().await;
    let choices = ids(&q["choices"]);
    app.user("voter", false, false).await;
    let token = app.login("voter", PASSWORD).await;
    let attempts: Vec<_> = (0..10)
        .map(|i| app.vote(&token, &choices[i % 2]).send())
        .collect();
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{results:#?}");
    for refused in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{refused}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM votes").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_on_one_server_blocks_the_token_on_another_at_once() {
    let app = TestApp::spawn().await;
    // A second instance on the same database, as behind a load balancer.
    let other = memberdesk::http::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/graphql", other.addr);
    tokio::spawn(other.serve(
        app.pool().clone(),
        Settings::default(),
        std::future::pending(),
    ));
    let (_, root) = app.superuser("root").await;
    let alice = app.user("alice", false, false).await;
    let token = app.login("alice", PASSWORD).await;
    let me = |url: String, token: String| {
        let client = app.client.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ me { username } }" }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        me(other_url.clone(), token.clone()).await["data"]["me"]["username"],
        "alice"
    );
    app.deactivate(&root, &user_id(&alice)).ok().await;
    let after = me(other_url, token).await;
    assert_eq!(
        after["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{after}"
    );
}

/// Member `m{i}` logs in, votes for `choice` and reads; a member removed
/// meanwhile simply gets no token.
async fn member_session(app: &TestApp, i: usize, choice: &str) {
    let login =
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";
    let resp = app
        .gql(None, login, json!({ "u": format!("m{i}"), "p": PASSWORD }))
        .await;
    if let Some(token) = resp["data"]["login"]["token"].as_str() {
        app.vote(token, choice).send().await;
        let read = "{ me { username voteCount } questions { choices { voteCount } } }";
        app.gql(Some(token), read, json!({})).await;
    }
}

/// The `n`th lifecycle operation of the rotation an admin works through.
fn lifecycle_operation<'a>(app: &'a TestApp, n: usize, token: &str, id: &str) -> Call<'a> {
    match n % 5 {
        0 => app.deactivate(token, id),
        1 => app.reactivate(token, id).restore_access(),
        2 => app.delete_user(token, id).policy("SET_NULL"),
        3 => app.delete_user(token, id).policy("CASCADE"),
        _ => app.anonymize(token, id),
    }
}

/// An admin works through every member, starting the rotation at `offset`;
/// `changes` counts the calls that changed something. Refusals may only be
/// the ones a concurrent change explains.
async fn admin_pass(
    app: &TestApp,
    token: &str,
    members: &[String],
    offset: usize,
    changes: &AtomicI64,
) {
    for (n, member) in members.iter().enumerate() {
        let call = lifecycle_operation(app, n + offset, token, member);
        let field = call.field();
        let resp = call.send().await;
        if resp.get("errors").is_none() && !resp["data"][field].is_null() {
            changes.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let code = resp["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("none");
        // UNAUTHENTICATED: this admin lost the duel below.
        let explained = [
            "NOT_FOUND",
            "ANONYMIZED",
            "DELETE_PROTECTED",
            "UNAUTHENTICATED",
        ];
        assert!(
            explained.contains(&code),
            "unexpected refusal {code}: {resp}"
        );
    }
}

/// The tallies shown through the API, summed.
async fn shown_votes(app: &TestApp, token: &str) -> i64 {
    let shown = app
        .ok(
            Some(token),
            "{ questions { choices { voteCount } } }",
            json!({}),
        )
        .await;
    shown["questions"][0]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["voteCount"].as_i64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_workload_keeps_every_invariant() {
    let app = Arc::new(TestApp::spawn().await);
    let (root_row, root) = app.superuser("root").await;
    let (root2_row, root2) = app.superuser("root2").await;
    let q = app
        .create_question(&root, "Best day?", &["Mon", "Fri"])
        .ok()
        .await;
    let choice = ids(&q["choices"])[1].clone();
    let mut members = Vec::new();
    for i in 0..12 {
        members.push(user_id(&app.user(&format!("m{i}"), false, false).await));
    }
    let changes = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    // Voters and readers.
    for i in 0..12 {
        let (app, choice) = (app.clone(), choice.clone());
        tasks.push(tokio::spawn(async move {
            member_session(&app, i, &choice).await
        }));
    }
    // Two admins working through the members at the same time.
    for (offset, token) in [(0, root.clone()), (1, root2.clone())] {
        let (app, members, changes) = (app.clone(), members.clone(), changes.clone());
        tasks.push(tokio::spawn(async move {
            admin_pass(&app, &token, &members, offset, &changes).await
        }));
    }
    // The two admins also try to take each other out.
    let (a, b) = tokio::join!(
        app.deactivate(&root, &user_id(&root2_row)).send(),
        app.deactivate(&root2, &user_id(&root_row)).send(),
    );
    for task in tasks {
        task.await.unwrap();
    }
    let duel_wins = [&a, &b]
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    assert!(
        duel_wins <= 1,
        "both superusers deactivated each other: {a} {b}"
    );

    assert_invariants(app.pool()).await;
    // Every counted change is audited; a reactivation of an active user or a
    // repeated deactivation changes nothing and is neither counted nor audited,
    // so the log holds at most the counted changes plus the duel.
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_entries WHERE action IN ('USER_DEACTIVATED', 'USER_REACTIVATED', 'USER_DELETED', 'USER_ANONYMIZED')",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    let counted = changes.load(Ordering::SeqCst) + duel_wins as i64;
    assert!(audited <= counted, "audited {audited} > changes {counted}");
    let tallies = app.count("SELECT count(*) FROM votes").await;
    let (_, auditor) = app.superuser("auditor").await;
    assert_eq!(
        shown_votes(&app, &auditor).await,
        tallies,
        "tallies equal the votes"
    );
}
