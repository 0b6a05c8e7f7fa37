//! Soft delete for content: archiveQuestion and restoreQuestion through
//! HTTP (what a client sees, what is kept, who may, what is audited, a
//! repeat changing nothing), and `memberdesk purge-archived` deleting the
//! questions archived long enough ago as `deleteQuestions` CASCADE does, in
//! batches, audited as the system, also when two runs go at once.

use std::process::Output;

use serde_json::{Value, json};

use crate::cli::memberdesk;
use crate::helpers::{PASSWORD, TestApp, ids, snapshot};
use memberdesk::ids::Kind;

/// A question with three choices, created by `token`: its payload.
async fn create_question(app: &TestApp, token: &str, text: &str) -> Value {
    let choices = ["yes", "no", "maybe"];
    app.create_question(token, text, &choices).ok().await
}

fn choice(question: &Value, n: usize) -> String {
    ids(&question["choices"])[n].clone()
}

fn id(question: &Value) -> String {
    question["id"].as_str().unwrap().to_owned()
}

/// The texts `questions` lists: live ones, or with `all` archived ones too.
async fn listed(app: &TestApp, token: &str, all: Option<bool>) -> Vec<String> {
    let mut call = app.questions(token);
    if let Some(all) = all {
        call = call.arg("includeArchived", "Boolean", all);
    }
    let mut texts: Vec<String> = call
        .ok()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    texts
}

/// `(target, actor, reason, details)` of every entry recording `action`.
async fn trail(app: &TestApp, action: &str) -> Vec<(String, String, Option<String>, Value)> {
    sqlx::query_as(
        "SELECT target_repr, actor_username, reason, details FROM audit_entries
          WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

/// The database id behind a question's API id.
fn question_db_id(question: &Value) -> i64 {
    memberdesk::ids::decode(Kind::Question, &id(question), "id").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_question_leaves_the_list_refuses_votes_and_keeps_its_tallies() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let (_, archivist) = app
        .staff_with("archivist", &["polls.delete_question"])
        .await;
    let question = create_question(&app, &root, "Tabs or spaces?").await;
    create_question(&app, &root, "Vim or Emacs?").await;
    app.user("alice", false, false).await;
    app.user("bob", false, false).await;
    let alice = app.login("alice", PASSWORD).await;
    let bob = app.login("bob", PASSWORD).await;
    app.vote(&alice, &choice(&question, 0)).ok().await;

    let archive = || {
        app.archive_question(&archivist, &id(&question))
            .reason("off topic")
    };
    let archived = archive().ok().await;
    assert_eq!(archived["text"], "Tabs or spaces?");
    let at = archived["archivedAt"].as_str().expect("archivedAt is set");
    assert_eq!(archived["choices"][0]["voteCount"], 1, "the tally stays");
    assert_eq!(listed(&app, &bob, None).await, ["Vim or Emacs?"]);
    assert_eq!(listed(&app, &bob, Some(false)).await, ["Vim or Emacs?"]);
    assert_eq!(
        listed(&app, &bob, Some(true)).await,
        ["Tabs or spaces?", "Vim or Emacs?"]
    );
    let found = app
        .ok(
            Some(&bob),
            "query($id: ID!) { question(id: $id) { archivedAt } }",
            json!({ "id": id(&question) }),
        )
        .await;
    assert_eq!(found["question"]["archivedAt"], at, "found by its id");
    assert_eq!(app.count("SELECT count(*) FROM votes").await, 1);
    assert_eq!(
        trail(&app, "QUESTION_ARCHIVED").await,
        [(
            format!("question {}", question_db_id(&question)),
            "archivist".to_owned(),
            Some("off topic".to_owned()),
            json!({ "questionId": question_db_id(&question), "text": "Tabs or spaces?" }),
        )]
    );

    // No new vote, and nothing changes for trying.
    let refused = app
        .vote(&bob, &choice(&question, 1))
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(refused.field, "choiceId");
    assert!(refused.message.contains("archived"), "{refused:?}");

    // Archiving it again changes nothing and is not audited.
    let before = snapshot(app.pool()).await;
    assert_eq!(archive().ok().await["archivedAt"], at);
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_question_is_listed_and_open_to_votes_again() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let (_, archivist) = app
        .staff_with("archivist", &["polls.delete_question"])
        .await;
    let question = create_question(&app, &root, "Tabs or spaces?").await;
    app.user("bob", false, false).await;
    let bob = app.login("bob", PASSWORD).await;
    let restore = || app.restore_question(&archivist, &id(&question));

    // Restoring a live question changes nothing and is not audited.
    let before = snapshot(app.pool()).await;
    assert_eq!(restore().ok().await["archivedAt"], Value::Null);
    assert_eq!(snapshot(app.pool()).await, before);

    app.archive_question(&archivist, &id(&question)).ok().await;
    assert_eq!(restore().ok().await["archivedAt"], Value::Null);
    assert_eq!(listed(&app, &bob, None).await, ["Tabs or spaces?"]);
    app.vote(&bob, &choice(&question, 2)).ok().await;
    let restored = trail(&app, "QUESTION_RESTORED").await;
    assert_eq!(restored.len(), 1);
    assert_eq!(
        (restored[0].1.as_str(), restored[0].2.as_deref()),
        ("archivist", None)
    );
    let before = snapshot(app.pool()).await;
    restore().ok().await;
    assert_eq!(snapshot(app.pool()).await, before, "a second restore");
}

/// A vote that arrives while an archiving holds the question (here one made
/// by hand, left open until the vote waits on it) is refused once the
/// archiving commits: it never lands on an archived question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_waiting_on_an_archiving_is_refused() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let question = create_question(&app, &root, "Tabs or spaces?").await;
    app.user("bob", false, false).await;
    let bob = app.login("bob", PASSWORD).await;

    let mut archiving = app.pool().begin().await.unwrap();
    sqlx::query("UPDATE questions SET archived_at = now() WHERE id = $1")
        .bind(question_db_id(&question))
        .execute(&mut *archiving)
        .await
        .unwrap();
    let vote = {
        let (addr, choice) = (app.addr.clone(), choice(&question, 0));
        tokio::spawn(async move {
            let body = json!({
                "query": "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
                "variables": { "c": choice },
            });
            let resp = reqwest::Client::new()
                .post(format!("{addr}/graphql"))
                .bearer_auth(bob)
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        })
    };
    // Until the vote waits on the question's row lock (or, wrongly, is done).
    let waiting = "SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'";
    while app.count(waiting).await == 0 && !vote.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    archiving.commit().await.unwrap();
    let refusal = crate::helpers::Refusal::of(&vote.await.unwrap());
    assert_eq!(refusal.code_and_field(), ("INVALID_INPUT", "choiceId"));
    assert_eq!(app.count("SELECT count(*) FROM votes").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_and_restoring_need_polls_delete_question() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let (_, editor) = app
        .staff_with("editor", &["polls.change_question", "polls.add_question"])
        .await;
    app.user("member", false, false).await;
    let member = app.login("member", PASSWORD).await;
    let question = id(&create_question(&app, &root, "Tabs or spaces?").await);
    let archived = id(&create_question(&app, &root, "Vim or Emacs?").await);
    app.archive_question(&root, &archived).ok().await;
    let nothing = memberdesk::ids::encode(Kind::Question, 987_654);
    let a_user = memberdesk::ids::encode(Kind::User, 1);

    let anonymous: Option<&str> = None;
    for (call, code) in [
        (
            app.archive_question(anonymous, &question),
            "UNAUTHENTICATED",
        ),
        (app.archive_question(&member, &question), "FORBIDDEN"),
        (app.archive_question(&editor, &question), "FORBIDDEN"),
        (app.restore_question(&editor, &archived), "FORBIDDEN"),
        (app.archive_question(&root, &nothing), "NOT_FOUND"),
        (app.restore_question(&root, &nothing), "NOT_FOUND"),
        (app.archive_question(&root, &a_user), "NOT_FOUND"),
    ] {
        call.refused(code).await;
    }
    let garbage = app.restore_question(&root, "nope").refused("INVALID_INPUT");
    assert_eq!(garbage.await.field, "id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_questions_selects_by_when_they_were_archived() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let old = create_question(&app, &root, "archived long ago").await;
    let recent = create_question(&app, &root, "archived today").await;
    create_question(&app, &root, "live").await;
    for question in [&old, &recent] {
        app.archive_question(&root, &id(question)).ok().await;
    }
    app.execute(
        "UPDATE questions SET archived_at = now() - interval '40 days' WHERE id = $1",
        question_db_id(&old),
    )
    .await;
    let done = app
        .ok(
            Some(&root),
            "mutation($before: DateTime!) {
                deleteQuestions(filter: { archivedBefore: $before }, policy: CASCADE) { deleted } }",
            json!({ "before": (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339() }),
        )
        .await;
    assert_eq!(done["deleteQuestions"]["deleted"], json!([old["id"]]));
    assert_eq!(app.count("SELECT count(*) FROM questions").await, 2);
}

// ---- purge-archived ----

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn purge(app: &TestApp, args: &[&str]) -> Output {
    let mut all = vec!["purge-archived"];
    all.extend_from_slice(args);
    let out = memberdesk(&app.db.url, &all, None);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `count` questions with two choices each and one vote on the first, by
/// `voter`, archived `days` days ago (in one statement).
async fn archived_questions(app: &TestApp, count: i64, days: i32, voter: i64) {
    sqlx::query(
        "WITH q AS (
             INSERT INTO questions (text, archived_at)
             SELECT 'archived ' || n, now() - make_interval(days => $2)
               FROM generate_series(1, $1) n RETURNING id),
         c AS (
             INSERT INTO choices (question_id, text, position)
             SELECT q.id, t, p FROM q, (VALUES ('yes', 1), ('no', 2)) x(t, p) RETURNING id, question_id, position)
         INSERT INTO votes (choice_id, question_id, user_id)
         SELECT id, question_id, $3 FROM c WHERE position = 1",
    )
    .bind(count)
    .bind(days)
    .bind(voter)
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_archived_deletes_what_was_archived_long_enough_ago_in_batches_as_the_system() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let voter = app.user("voter", false, false).await;
    archived_questions(&app, 3, 40, voter.id).await;
    archived_questions(&app, 1, 10, voter.id).await;
    let live = create_question(&app, &root, "live").await;
    let voter_token = app.login("voter", PASSWORD).await;
    app.vote(&voter_token, &choice(&live, 0)).ok().await;

    let before = snapshot(app.pool()).await;
    let dry = purge(&app, &["--older-than-days", "30", "--dry-run"]);
    assert_eq!(
        stdout(&dry),
        "dry run: 3 question(s) archived for more than 30 days would be deleted, with 6 choices, 3 votes\n"
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a dry run changes nothing"
    );

    let done = purge(&app, &["--older-than-days", "30", "--batch-size", "2"]);
    assert_eq!(
        stdout(&done),
        "progress: 2/3 archived question(s) deleted\n\
         progress: 3/3 archived question(s) deleted\n\
         3 question(s) archived for more than 30 days deleted, with 6 choices, 3 votes\n"
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT text FROM questions ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(
        left,
        ["archived 1", "live"],
        "the recent one and the live one stay"
    );
    assert_eq!(app.count("SELECT count(*) FROM votes").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM choices").await, 5);
    let deleted = trail(&app, "QUESTION_DELETED").await;
    assert_eq!(deleted.len(), 3, "one entry per question");
    for (_, actor, reason, details) in &deleted {
        assert_eq!(actor, "system");
        assert_eq!(reason.as_deref(), Some("archived for more than 30 days"));
        assert_eq!(details["policy"], "CASCADE");
    }
    let system_actor = "SELECT count(*) FROM audit_entries WHERE action = 'QUESTION_DELETED' AND actor_id IS NOT NULL";
    assert_eq!(app.count(system_actor).await, 0);

    let again = purge(&app, &["--older-than-days", "30"]);
    assert_eq!(
        stdout(&again),
        "no question has been archived for more than 30 days; nothing to purge\n"
    );
    // 0 days: every archived question, whenever it was archived.
    let all = purge(&app, &["--older-than-days", "0"]);
    assert!(stdout(&all).ends_with(
        "1 question(s) archived for more than 0 days deleted, with 2 choices, 1 votes\n"
    ));
    assert_eq!(app.count("SELECT count(*) FROM questions").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_purges_at_once_delete_each_question_once() {
    let app = TestApp::spawn().await;
    let voter = app.user("voter", false, false).await;
    archived_questions(&app, 60, 40, voter.id).await;
    let args = ["--older-than-days", "30", "--batch-size", "3"];
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let url = app.db.url.clone();
            std::thread::spawn(move || {
                let mut all = vec!["purge-archived"];
                all.extend_from_slice(&args);
                memberdesk(&url, &all, None)
            })
        })
        .collect();
    for run in runs {
        let out = run.join().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    for table in ["questions", "choices", "votes"] {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(app.pool())
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let once = "SELECT count(DISTINCT details->>'questionId') FROM audit_entries WHERE action = 'QUESTION_DELETED'";
    assert_eq!(app.count(once).await, 60);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_entries WHERE action = 'QUESTION_DELETED'")
            .await,
        60
    );
}
