//! deleteUsers and deleteQuestions: who is skipped and why, a plan summed
//! over the set, a token bound to the selection and its counts, one audit
//! entry per record, and every refusal leaving the database as it was.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, snapshot, user_id};
use memberdesk::ids::{self, Kind};

const DELETE_USERS: &str = "mutation($ids: [ID!], $f: UserFilter, $p: DeletePolicy!, $dry: Boolean!, $t: String) {
    deleteUsers(ids: $ids, filter: $f, policy: $p, dryRun: $dry, planToken: $t, reason: \"spam wave\") {
        deleted skipped { id code }
        plan { kind targetCount allowed token user { username } target { __typename }
               protected { relation count } deleted { relation count } detached { relation count } } } }";

const DELETE_QUESTIONS: &str = "mutation($ids: [ID!], $f: QuestionFilter, $p: DeletePolicy!, $dry: Boolean!, $t: String) {
    deleteQuestions(ids: $ids, filter: $f, policy: $p, dryRun: $dry, planToken: $t, reason: \"tidy\") {
        deleted skipped { id code }
        plan { kind targetCount token protected { relation count } deleted { relation count } } } }";

fn by_ids(ids: &[&str], policy: &str, dry: bool, token: Option<&str>) -> Value {
    json!({ "ids": ids, "p": policy, "dry": dry, "t": token })
}

fn by_filter(filter: Value, policy: &str, dry: bool, token: Option<&str>) -> Value {
    json!({ "f": filter, "p": policy, "dry": dry, "t": token })
}

fn counts(list: &Value) -> BTreeMap<String, i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected relation counts: {list}"))
        .iter()
        .map(|rc| {
            let relation = rc["relation"].as_str().unwrap().to_owned();
            (relation, rc["count"].as_i64().unwrap())
        })
        .collect()
}

/// `(id, code)` of each skipped record.
fn skipped(payload: &Value) -> Vec<(String, String)> {
    payload["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |v: &Value| v.as_str().unwrap().to_owned();
            (text(&s["id"]), text(&s["code"]))
        })
        .collect()
}

fn refusal(resp: &Value) -> (String, String) {
    let e = &resp["errors"][0]["extensions"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&e["code"]), text(&e["field"]))
}

async fn vote_first_choice(app: &TestApp, token: &str, question: &Value) {
    app.ok(
        Some(token),
        "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
        json!({ "c": question["choices"][0]["id"] }),
    )
    .await;
}

async fn create_question(app: &TestApp, token: &str, text: &str) -> Value {
    app.ok(
        Some(token),
        "mutation($t: String!) { createQuestion(text: $t, choices: [\"yes\", \"no\"]) { id choices { id } } }",
        json!({ "t": text }),
    )
    .await["createQuestion"]
        .clone()
}

async fn entries(app: &TestApp, action: &str) -> Vec<(String, Option<i64>, Value)> {
    sqlx::query_as(
        "SELECT target_repr, target_user_ref, details FROM audit_entries WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_users_skips_with_codes_and_deletes_the_rest_at_once() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let (deleter, token) = app
        .staff_with("deleter", &["auth.delete_user", "auth.view_user"])
        .await;
    let quiet = app.user("quiet", false, false).await;
    let quiet2 = app.user("quiet2", false, false).await;
    let voter = app.user("voter", false, false).await;
    let boss = app.user("boss", true, true).await;
    let question = create_question(&app, &root, "Q").await;
    vote_first_choice(&app, &app.login("voter", PASSWORD).await, &question).await;
    let nobody = ids::encode(Kind::User, 987_654);
    let (q, v, b, me) = (
        user_id(&quiet),
        user_id(&voter),
        user_id(&boss),
        user_id(&deleter),
    );
    let q2 = user_id(&quiet2);
    let all = [q.as_str(), &v, &b, &me, &nobody, &q2];

    let before = snapshot(app.pool()).await;
    let dry = app
        .ok(
            Some(&token),
            DELETE_USERS,
            by_ids(&all, "PROTECT", true, None),
        )
        .await;
    let dry = &dry["deleteUsers"];
    let mut expected_skips = vec![
        (v.clone(), "DELETE_PROTECTED".to_owned()),
        (b.clone(), "FORBIDDEN".to_owned()),
        (me.clone(), "SELF_ACTION".to_owned()),
        (nobody.clone(), "NOT_FOUND".to_owned()),
    ];
    let id_of = |id: &str| ids::decode(Kind::User, id, "id").unwrap();
    expected_skips.sort_by_key(|(id, _)| id_of(id));
    assert_eq!(skipped(dry), expected_skips, "{dry:#}");
    assert_eq!(dry["deleted"], json!([q, q2]));
    let plan = &dry["plan"];
    assert_eq!(
        (plan["kind"].as_str(), plan["targetCount"].as_i64()),
        (Some("USER"), Some(2))
    );
    assert_eq!(
        (plan["user"].clone(), plan["target"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(plan["allowed"], true, "a bulk plan skips what is protected");
    assert_eq!(
        counts(&plan["protected"]),
        BTreeMap::from([("votes".into(), 1)])
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a dry run changes nothing"
    );

    let token_of_plan = plan["token"].as_str().unwrap();
    let done = app
        .ok(
            Some(&token),
            DELETE_USERS,
            by_ids(&all, "PROTECT", false, Some(token_of_plan)),
        )
        .await;
    assert_eq!(done["deleteUsers"]["deleted"], json!([q, q2]));
    assert_eq!(done["deleteUsers"]["plan"]["token"], token_of_plan);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE username IN ('quiet', 'quiet2')")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        4,
        "the skipped stay"
    );
    let trail = entries(&app, "USER_DELETED").await;
    let named: Vec<_> = trail
        .iter()
        .map(|(repr, id, _)| (repr.as_str(), *id))
        .collect();
    assert_eq!(
        named,
        [("quiet", Some(quiet.id)), ("quiet2", Some(quiet2.id))]
    );
    assert_eq!(trail[0].2["bulk"]["count"], 2);
    assert_eq!(trail[0].2["policy"], "PROTECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_users_by_filter_cascades_and_the_token_binds_set_and_counts() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let question = create_question(&app, &root, "Q").await;
    let other = create_question(&app, &root, "R").await;
    for name in ["spam1", "spam2", "spam3"] {
        app.user(name, false, false).await;
        let token = app.login(name, PASSWORD).await;
        vote_first_choice(&app, &token, &question).await;
        vote_first_choice(&app, &token, &other).await;
    }
    let keeper = app.user("keeper", false, false).await;
    vote_first_choice(&app, &app.login("keeper", PASSWORD).await, &question).await;
    let filter = json!({ "search": "spam" });

    let dry = app
        .ok(
            Some(&root),
            DELETE_USERS,
            by_filter(filter.clone(), "CASCADE", true, None),
        )
        .await;
    let plan = dry["deleteUsers"]["plan"].clone();
    let deleted = counts(&plan["deleted"]);
    assert_eq!(deleted["votes"], 6);
    assert_eq!(deleted["sessions"], 3);
    assert_eq!(plan["targetCount"], 3);
    let token = plan["token"].as_str().unwrap().to_owned();

    // Another spammer signs up: the set moved.
    app.user("spam4", false, false).await;
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(&root),
            DELETE_USERS,
            by_filter(filter.clone(), "CASCADE", false, Some(&token)),
        )
        .await;
    assert_eq!(refusal(&resp).0, "PLAN_CHANGED", "{resp:#}");
    // A token for another selection, another policy or one user does not fit.
    let single = app
        .ok(
            Some(&root),
            "query($id: ID!) { deletionPlan(userId: $id, policy: CASCADE) { token } }",
            json!({ "id": user_id(&keeper) }),
        )
        .await["deletionPlan"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (variables, says) in [
        (
            by_filter(json!({ "search": "spa" }), "CASCADE", false, Some(&token)),
            "another bulk selection of users",
        ),
        (
            by_filter(filter.clone(), "SET_NULL", false, Some(&token)),
            "made under policy CASCADE",
        ),
        (
            by_filter(filter.clone(), "CASCADE", false, Some(&single)),
            "made for a user (",
        ),
    ] {
        let resp = app.gql(Some(&root), DELETE_USERS, variables).await;
        assert_eq!(
            refusal(&resp),
            ("INVALID_INPUT".into(), "planToken".into()),
            "{resp:#}"
        );
        let message = resp["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    for (variables, field) in [
        (by_filter(json!({}), "CASCADE", false, None), "filter"),
        (
            json!({ "ids": [], "f": filter, "p": "CASCADE", "dry": false }),
            "ids",
        ),
    ] {
        let resp = app.gql(Some(&root), DELETE_USERS, variables).await;
        assert_eq!(
            refusal(&resp),
            ("INVALID_INPUT".into(), field.into()),
            "{resp:#}"
        );
    }
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "no refusal changed anything"
    );

    let fresh = app
        .ok(
            Some(&root),
            DELETE_USERS,
            by_filter(filter.clone(), "CASCADE", true, None),
        )
        .await;
    let fresh = fresh["deleteUsers"]["plan"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, token);
    let done = app
        .ok(
            Some(&root),
            DELETE_USERS,
            by_filter(filter, "CASCADE", false, Some(&fresh)),
        )
        .await;
    assert_eq!(done["deleteUsers"]["deleted"].as_array().unwrap().len(), 4);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE username LIKE 'spam%'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM votes").await,
        1,
        "the keeper's vote stays"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE user_id IS NULL")
            .await,
        0
    );
    assert_eq!(
        entries(&app, "USER_DELETED").await.len(),
        4,
        "one entry per user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_questions_by_filter_skips_those_with_votes_under_protect() {
    let app = TestApp::spawn().await;
    let (author, root) = app.superuser("root").await;
    let (_, writer) = app.staff_with("writer", &["polls.add_question"]).await;
    let (_, deleter) = app.staff_with("deleter", &["polls.delete_question"]).await;
    let old_quiet = create_question(&app, &root, "old quiet").await;
    let old_voted = create_question(&app, &root, "old voted").await;
    let by_writer = create_question(&app, &writer, "by writer").await;
    vote_first_choice(&app, &app.login("root", PASSWORD).await, &old_voted).await;
    sqlx::query(
        "UPDATE questions SET archived_at = now() - interval '1 day' WHERE text LIKE 'old%'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let archived = json!({ "archived": true });

    let before = snapshot(app.pool()).await;
    for (token, variables, expected) in [
        (
            &deleter,
            by_filter(json!({}), "CASCADE", false, None),
            ("INVALID_INPUT", "filter"),
        ),
        (
            &deleter,
            by_filter(archived.clone(), "SET_NULL", false, None),
            ("INVALID_INPUT", "policy"),
        ),
        (
            &writer,
            by_filter(archived.clone(), "CASCADE", false, None),
            ("FORBIDDEN", ""),
        ),
    ] {
        let resp = app.gql(Some(token), DELETE_QUESTIONS, variables).await;
        assert_eq!(
            refusal(&resp),
            (expected.0.into(), expected.1.into()),
            "{resp:#}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);

    let done = app
        .ok(
            Some(&deleter),
            DELETE_QUESTIONS,
            by_filter(archived.clone(), "PROTECT", false, None),
        )
        .await;
    let done = &done["deleteQuestions"];
    assert_eq!(done["deleted"], json!([old_quiet["id"]]));
    assert_eq!(
        skipped(done),
        [(
            old_voted["id"].as_str().unwrap().to_owned(),
            "DELETE_PROTECTED".to_owned()
        )]
    );
    assert_eq!(
        counts(&done["plan"]["protected"]),
        BTreeMap::from([("votes".into(), 1)])
    );
    assert_eq!(
        counts(&done["plan"]["deleted"]),
        BTreeMap::from([("choices".into(), 2)])
    );
    let trail = entries(&app, "QUESTION_DELETED").await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].2["text"], "old quiet");

    // By author and date; a vanished id is NOT_FOUND; CASCADE takes the votes too.
    let by_root = json!({ "createdBy": user_id(&author), "createdBefore": "2999-01-01T00:00:00Z" });
    let gone = ids::encode(Kind::Question, 987_654);
    let done = app
        .ok(
            Some(&deleter),
            DELETE_QUESTIONS,
            by_filter(by_root, "CASCADE", false, None),
        )
        .await;
    assert_eq!(done["deleteQuestions"]["deleted"], json!([old_voted["id"]]));
    let done = app
        .ok(
            Some(&deleter),
            DELETE_QUESTIONS,
            by_ids(
                &[by_writer["id"].as_str().unwrap(), &gone],
                "CASCADE",
                false,
                None,
            ),
        )
        .await;
    assert_eq!(
        skipped(&done["deleteQuestions"]),
        [(gone, "NOT_FOUND".to_owned())]
    );
    for table in ["questions", "choices", "votes"] {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(app.pool())
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(entries(&app, "QUESTION_DELETED").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_asked_twice_that_names_nobody_is_skipped_once() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let nobody = ids::encode(Kind::User, 987_654);
    let asked = [nobody.as_str(), &user_id(&bob), &nobody];
    let once = vec![(nobody.clone(), "NOT_FOUND".to_owned())];

    let before = snapshot(app.pool()).await;
    let dry = app
        .ok(
            Some(&root),
            DELETE_USERS,
            by_ids(&asked, "PROTECT", true, None),
        )
        .await;
    assert_eq!(skipped(&dry["deleteUsers"]), once, "{dry:#}");
    assert_eq!(dry["deleteUsers"]["deleted"], json!([user_id(&bob)]));
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "a preview changes nothing"
    );

    let done = app.deactivate_users(&root).ids(asked.to_vec()).ok().await;
    assert_eq!(skipped(&done), once, "{done:#}");
    assert_eq!(done["deactivated"][0]["username"], "bob");
}
