//! Soft delete for content: archiveQuestion and restoreQuestion through
//! HTTP (what a client sees, what is kept, who may, what is audited, a
//! repeat changing nothing), and `memberdesk purge-archived` deleting the
//! questions archived long enough ago as `deleteQuestions` CASCADE does, in
//! batches, audited as the system, also when two runs go at once.

use std::process::Output;

use serde_json::{Value, json};

use crate::cli::memberdesk;
use crate::helpers::{PASSWORD, TestApp, snapshot};
use memberdesk::ids::{self, Kind};

const ARCHIVE: &str = "mutation($id: ID!, $r: String) {
    archiveQuestion(id: $id, reason: $r) { id text archivedAt choices { text voteCount } } }";
const RESTORE: &str = "mutation($id: ID!) { restoreQuestion(id: $id) { id archivedAt } }";
const VOTE: &str = "mutation($c: ID!) { castVote(choiceId: $c) { id } }";
const LISTED: &str =
    "query($all: Boolean) { questions(includeArchived: $all) { text archivedAt } }";

async fn create_question(app: &TestApp, token: &str, text: &str) -> Value {
    app.ok(
        Some(token),
        "mutation($t: String!) { createQuestion(text: $t, choices: [\"yes\", \"no\", \"maybe\"]) {
            id choices { id } } }",
        json!({ "t": text }),
    )
    .await["createQuestion"]
        .clone()
}

fn choice(question: &Value, n: usize) -> String {
    question["choices"][n]["id"].as_str().unwrap().to_owned()
}

fn id(question: &Value) -> String {
    question["id"].as_str().unwrap().to_owned()
}

/// The texts `questions` lists, live ones only or (`all`) archived ones too.
async fn listed(app: &TestApp, token: &str, all: Option<bool>) -> Vec<String> {
    let data = app.ok(Some(token), LISTED, json!({ "all": all })).await;
    data["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["text"].as_str().unwrap().to_owned())
        .collect()
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

/// The first error's (code, field).
fn refusal(resp: &Value) -> (String, String) {
    let e = &resp["errors"][0]["extensions"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&e["code"]), text(&e["field"]))
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
    app.ok(Some(&alice), VOTE, json!({ "c": choice(&question, 0) }))
        .await;

    let vars = json!({ "id": id(&question), "r": "off topic" });
    let archived = app.ok(Some(&archivist), ARCHIVE, vars.clone()).await;
    let archived = &archived["archiveQuestion"];
    assert_eq!(archived["text"], "Tabs or spaces?");
    let at = archived["archivedAt"].as_str().expect("archivedAt is set");
    assert_eq!(archived["choices"][0]["voteCount"], 1, "the tally stays");
    assert_eq!(listed(&app, &bob, None).await, ["Vim or Emacs?"]);
    assert_eq!(listed(&app, &bob, Some(false)).await, ["Vim or Emacs?"]);
    let mut all = listed(&app, &bob, Some(true)).await;
    all.sort();
    assert_eq!(all, ["Tabs or spaces?", "Vim or Emacs?"]);
    let found = app
        .ok(
            Some(&bob),
            "query($id: ID!) { question(id: $id) { archivedAt choices { voteCount } } }",
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
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(Some(&bob), VOTE, json!({ "c": choice(&question, 1) }))
        .await;
    assert_eq!(refusal(&resp), ("INVALID_INPUT".into(), "choiceId".into()));
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("archived")
    );
    assert_eq!(snapshot(app.pool()).await, before);

    // Archiving it again changes nothing and is not audited.
    let again = app.ok(Some(&archivist), ARCHIVE, vars).await;
    assert_eq!(again["archiveQuestion"]["archivedAt"], at);
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
    let vars = json!({ "id": id(&question) });

    // Restoring a live question changes nothing and is not audited.
    let before = snapshot(app.pool()).await;
    let live = app.ok(Some(&archivist), RESTORE, vars.clone()).await;
    assert_eq!(live["restoreQuestion"]["archivedAt"], Value::Null);
    assert_eq!(snapshot(app.pool()).await, before);

    app.ok(Some(&archivist), ARCHIVE, vars.clone()).await;
    let restored = app.ok(Some(&archivist), RESTORE, vars.clone()).await;
    assert_eq!(restored["restoreQuestion"]["archivedAt"], Value::Null);
    assert_eq!(listed(&app, &bob, None).await, ["Tabs or spaces?"]);
    app.ok(Some(&bob), VOTE, json!({ "c": choice(&question, 2) }))
        .await;
    let restored = trail(&app, "QUESTION_RESTORED").await;
    assert_eq!(restored.len(), 1);
    assert_eq!(
        (restored[0].1.as_str(), restored[0].2.as_deref()),
        ("archivist", None)
    );
    let before = snapshot(app.pool()).await;
    app.ok(Some(&archivist), RESTORE, vars).await;
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
            let body = json!({ "query": VOTE, "variables": { "c": choice } });
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
    let resp = vote.await.unwrap();
    assert_eq!(refusal(&resp), ("INVALID_INPUT".into(), "choiceId".into()));
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
    let question = create_question(&app, &root, "Tabs or spaces?").await;
    let archived = create_question(&app, &root, "Vim or Emacs?").await;
    app.ok(Some(&root), ARCHIVE, json!({ "id": id(&archived) }))
        .await;
    let nothing = ids::encode(Kind::Question, 987_654);
    let a_user = ids::encode(Kind::User, 1);

    let before = snapshot(app.pool()).await;
    for (token, document, target, expected) in [
        (None, ARCHIVE, id(&question), ("UNAUTHENTICATED", "")),
        (Some(&member), ARCHIVE, id(&question), ("FORBIDDEN", "")),
        (Some(&editor), ARCHIVE, id(&question), ("FORBIDDEN", "")),
        (Some(&editor), RESTORE, id(&archived), ("FORBIDDEN", "")),
        (Some(&root), ARCHIVE, nothing.clone(), ("NOT_FOUND", "")),
        (Some(&root), RESTORE, nothing, ("NOT_FOUND", "")),
        (Some(&root), ARCHIVE, a_user, ("NOT_FOUND", "")),
        (
            Some(&root),
            RESTORE,
            "nope".to_owned(),
            ("INVALID_INPUT", "id"),
        ),
    ] {
        let resp = app
            .gql(token.map(String::as_str), document, json!({ "id": target }))
            .await;
        assert_eq!(
            refusal(&resp),
            (expected.0.into(), expected.1.into()),
            "{document}: {resp:#}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_questions_selects_by_when_they_were_archived() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let old = create_question(&app, &root, "archived long ago").await;
    let recent = create_question(&app, &root, "archived today").await;
    create_question(&app, &root, "live").await;
    for question in [&old, &recent] {
        app.ok(Some(&root), ARCHIVE, json!({ "id": id(question) }))
            .await;
    }
    execute(
        &app,
        "UPDATE questions SET archived_at = now() - interval '40 days' WHERE text = 'archived long ago'",
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

/// The database id behind a question's API id.
fn question_db_id(question: &Value) -> i64 {
    ids::decode(Kind::Question, &id(question), "id").unwrap()
}

/// A change made behind the API's back (a literal statement).
async fn execute(app: &TestApp, sql: &'static str) {
    sqlx::query(sql).execute(app.pool()).await.unwrap();
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
    app.ok(Some(&voter_token), VOTE, json!({ "c": choice(&live, 0) }))
        .await;

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
