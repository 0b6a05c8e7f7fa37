//! deleteGroup, deleteQuestion, deleteChoice and deletionPlan(id:) for any
//! record: each policy's effect on the rows that reference it, the rules
//! of each kind (no deleting a group carrying permissions you lack, a
//! question keeps two choices, SET_NULL means nothing for polls), plan
//! tokens bound to their record, and the audit entry. Every refusal leaves
//! the database as it was.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, group_id, snapshot, user_id};

const PLAN: &str = "query($id: ID!, $p: DeletePolicy!) {
    deletionPlan(id: $id, policy: $p) {
        kind targetCount allowed token user { username }
        target { __typename ... on Group { name } ... on Question { text } ... on Choice { text } }
        protected { relation count } deleted { relation count } detached { relation count } } }";

/// One delete mutation (`deleteGroup`, `deleteQuestion`, `deleteChoice`) with every argument.
fn delete(field: &str) -> String {
    format!(
        "mutation($id: ID!, $p: DeletePolicy!, $dry: Boolean!, $t: String) {{
            {field}(id: $id, policy: $p, dryRun: $dry, planToken: $t, reason: \"cleanup\") {{
                deleted plan {{ kind allowed token protected {{ relation count }}
                               deleted {{ relation count }} detached {{ relation count }} }} }} }}"
    )
}

fn vars(id: &str, policy: &str, dry: bool, token: Option<&str>) -> Value {
    json!({ "id": id, "p": policy, "dry": dry, "t": token })
}

/// `[{relation, count}]` as a map.
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

fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The first error's (code, field).
fn refusal(resp: &Value) -> (String, String) {
    let e = &resp["errors"][0]["extensions"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&e["code"]), text(&e["field"]))
}

async fn create_question(app: &TestApp, token: &str, text: &str, choices: &[&str]) -> Value {
    app.ok(
        Some(token),
        "mutation($t: String!, $c: [String!]!) { createQuestion(text: $t, choices: $c) { id choices { id } } }",
        json!({ "t": text, "c": choices }),
    )
    .await["createQuestion"]
        .clone()
}

fn choice(question: &Value, n: usize) -> String {
    question["choices"][n]["id"].as_str().unwrap().to_owned()
}

async fn vote(app: &TestApp, token: &str, choice: &str) {
    app.ok(
        Some(token),
        "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
        json!({ "c": choice }),
    )
    .await;
}

/// A member who logs in, for voting.
async fn voter(app: &TestApp, name: &str) -> String {
    app.user(name, false, false).await;
    app.login(name, PASSWORD).await
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT json_build_object('repr', target_repr, 'reason', reason, 'actor', actor_username, 'details', details)
           FROM audit_entries WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

async fn create_group(app: &TestApp, token: &str, name: &str, permissions: &[&str]) -> String {
    app.ok(
        Some(token),
        "mutation($n: String!, $p: [String!]) { createGroup(name: $n, permissions: $p) { id } }",
        json!({ "n": name, "p": permissions }),
    )
    .await["createGroup"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn add_to_group(app: &TestApp, token: &str, user: &str, group: &str) {
    app.ok(
        Some(token),
        "mutation($u: ID!, $g: ID!) { addUserToGroup(userId: $u, groupId: $g) { id } }",
        json!({ "u": user, "g": group }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_protected_by_its_members_and_goes_with_its_links() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let group = create_group(
        &app,
        &root,
        "Voters",
        &["polls.view_vote", "auth.view_user"],
    )
    .await;
    let (alice, bob) = (
        app.user("alice", false, false).await,
        app.user("bob", false, false).await,
    );
    add_to_group(&app, &root, &user_id(&alice), &group).await;
    add_to_group(&app, &root, &user_id(&bob), &group).await;
    // Bob is deactivated: the deactivation remembers the group.
    app.ok(
        Some(&root),
        "mutation($id: ID!) { deactivateUser(id: $id) { sessionsRevoked } }",
        json!({ "id": user_id(&bob) }),
    )
    .await;

    let plan = app
        .ok(Some(&root), PLAN, vars(&group, "PROTECT", false, None))
        .await["deletionPlan"]
        .clone();
    assert_eq!(plan["kind"], "GROUP");
    assert_eq!(plan["targetCount"], 1);
    assert_eq!(
        plan["target"],
        json!({ "__typename": "Group", "name": "Voters" })
    );
    assert_eq!(plan["user"], Value::Null, "not a user's plan");
    assert_eq!(plan["allowed"], false);
    assert_eq!(counts(&plan["protected"]), map(&[("members", 1)]));
    assert_eq!(counts(&plan["deleted"]), map(&[("groupPermissions", 2)]));
    assert_eq!(
        counts(&plan["detached"]),
        map(&[("rememberedMemberships", 1)])
    );

    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(&root),
            &delete("deleteGroup"),
            vars(&group, "PROTECT", false, None),
        )
        .await;
    assert_eq!(refusal(&resp).0, "DELETE_PROTECTED", "{resp:#}");
    assert_eq!(
        counts(&resp["errors"][0]["extensions"]["protected"]),
        map(&[("members", 1)])
    );
    let dry = app
        .ok(
            Some(&root),
            &delete("deleteGroup"),
            vars(&group, "SET_NULL", true, None),
        )
        .await;
    assert_eq!(dry["deleteGroup"]["deleted"], false);
    assert_eq!(
        counts(&dry["deleteGroup"]["plan"]["deleted"]),
        map(&[("members", 1), ("groupPermissions", 2)])
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "refusal and dry run change nothing"
    );

    let token = dry["deleteGroup"]["plan"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .ok(
            Some(&root),
            &delete("deleteGroup"),
            vars(&group, "SET_NULL", false, Some(&token)),
        )
        .await;
    assert_eq!(done["deleteGroup"]["deleted"], true);
    assert_eq!(
        done["deleteGroup"]["plan"]["token"],
        token.as_str(),
        "the plan confirmed is the plan done"
    );
    for sql in [
        "SELECT count(*) FROM groups",
        "SELECT count(*) FROM user_groups",
        "SELECT count(*) FROM group_permissions",
    ] {
        assert_eq!(app.count(sql).await, 0, "{sql}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        3,
        "members stay"
    );
    let entries = audit(&app, "GROUP_DELETED").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["repr"], "group Voters");
    assert_eq!(entries[0]["reason"], "cleanup");
    assert_eq!(entries[0]["details"]["policy"], "SET_NULL");
    // Bob comes back: the group he remembered is reported missing.
    let back = app
        .ok(
            Some(&root),
            "mutation($id: ID!) { reactivateUser(id: $id, restoreAccess: true) { restoredGroups { name } missingGroupIds } }",
            json!({ "id": user_id(&bob) }),
        )
        .await;
    assert_eq!(back["reactivateUser"]["restoredGroups"], json!([]));
    assert_eq!(back["reactivateUser"]["missingGroupIds"], json!([group]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_group_needs_every_permission_it_carries() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let group = create_group(&app, &root, "Pollsters", &["polls.view_vote"]).await;
    let (_, narrow) = app.staff_with("narrow", &["auth.delete_group"]).await;
    let (_, wide) = app
        .staff_with("wide", &["auth.delete_group", "polls.view_vote"])
        .await;
    let (_, other) = app
        .staff_with("other", &["auth.change_group", "polls.view_vote"])
        .await;
    let someone = user_id(&app.user("someone", false, false).await);
    let before = snapshot(app.pool()).await;
    let nowhere = group_id(987_654);
    let cases = [
        (Some(narrow.as_str()), group.as_str(), "FORBIDDEN"),
        (Some(other.as_str()), group.as_str(), "FORBIDDEN"),
        (None, group.as_str(), "UNAUTHENTICATED"),
        (Some(root.as_str()), nowhere.as_str(), "NOT_FOUND"),
    ];
    for (token, id, code) in cases {
        for dry in [false, true] {
            let resp = app
                .gql(
                    token,
                    &delete("deleteGroup"),
                    vars(id, "CASCADE", dry, None),
                )
                .await;
            assert_eq!(refusal(&resp).0, code, "dryRun={dry}: {resp:#}");
        }
        let resp = app.gql(token, PLAN, vars(id, "CASCADE", false, None)).await;
        assert_eq!(refusal(&resp).0, code, "deletionPlan: {resp:#}");
    }
    // A user's id is no group id.
    let resp = app
        .gql(
            Some(&root),
            &delete("deleteGroup"),
            vars(&someone, "CASCADE", false, None),
        )
        .await;
    assert_eq!(refusal(&resp).0, "NOT_FOUND");
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "no refusal changed anything"
    );
    let done = app
        .ok(
            Some(&wide),
            &delete("deleteGroup"),
            vars(&group, "PROTECT", false, None),
        )
        .await;
    assert_eq!(
        done["deleteGroup"]["deleted"], true,
        "no members: PROTECT deletes"
    );
    assert_eq!(app.count("SELECT count(*) FROM groups").await, 0);
}

/// root with a question (three choices) that alice and bob voted on, and
/// another question with a vote by alice.
struct Polls {
    app: TestApp,
    root: String,
    alice: String,
    question: Value,
    other: Value,
}

async fn polls() -> Polls {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let question = create_question(&app, &root, "Lunch?", &["pizza", "soup", "salad"]).await;
    let other = create_question(&app, &root, "Coffee?", &["yes", "no"]).await;
    let alice = voter(&app, "alice").await;
    let bob = voter(&app, "bob").await;
    vote(&app, &alice, &choice(&question, 0)).await;
    vote(&app, &bob, &choice(&question, 1)).await;
    vote(&app, &alice, &choice(&other, 0)).await;
    Polls {
        app,
        root,
        alice,
        question,
        other,
    }
}

impl Polls {
    fn question_id(&self) -> String {
        self.question["id"].as_str().unwrap().to_owned()
    }

    /// The other question's vote, which no deletion of the first may touch.
    async fn other_votes(&self) -> i64 {
        let id = memberdesk::ids::decode(
            memberdesk::ids::Kind::Question,
            self.other["id"].as_str().unwrap(),
            "id",
        )
        .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM votes WHERE question_id = $1")
            .bind(id)
            .fetch_one(self.app.pool())
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_protected_by_its_votes_and_cascades_to_choices_and_votes() {
    let p = polls().await;
    let (app, root, id) = (&p.app, &p.root, p.question_id());
    let plan = app
        .ok(Some(root), PLAN, vars(&id, "PROTECT", false, None))
        .await["deletionPlan"]
        .clone();
    assert_eq!(
        (plan["kind"].as_str(), plan["allowed"].as_bool()),
        (Some("QUESTION"), Some(false))
    );
    assert_eq!(plan["target"]["text"], "Lunch?");
    assert_eq!(counts(&plan["protected"]), map(&[("votes", 2)]));
    assert_eq!(counts(&plan["deleted"]), map(&[("choices", 3)]));

    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(root),
            &delete("deleteQuestion"),
            vars(&id, "PROTECT", false, None),
        )
        .await;
    assert_eq!(refusal(&resp).0, "DELETE_PROTECTED", "{resp:#}");
    for dry in [false, true] {
        let resp = app
            .gql(
                Some(root),
                &delete("deleteQuestion"),
                vars(&id, "SET_NULL", dry, None),
            )
            .await;
        assert_eq!(
            refusal(&resp),
            ("INVALID_INPUT".into(), "policy".into()),
            "{resp:#}"
        );
    }
    let resp = app
        .gql(Some(root), PLAN, vars(&id, "SET_NULL", false, None))
        .await;
    assert_eq!(
        refusal(&resp),
        ("INVALID_INPUT".into(), "policy".into()),
        "{resp:#}"
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "refusals change nothing"
    );

    let token = app
        .ok(Some(root), PLAN, vars(&id, "CASCADE", false, None))
        .await["deletionPlan"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .ok(
            Some(root),
            &delete("deleteQuestion"),
            vars(&id, "CASCADE", false, Some(&token)),
        )
        .await;
    let plan = &done["deleteQuestion"]["plan"];
    assert_eq!(done["deleteQuestion"]["deleted"], true);
    assert_eq!(
        counts(&plan["deleted"]),
        map(&[("votes", 2), ("choices", 3)])
    );
    assert_eq!(app.count("SELECT count(*) FROM questions").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM choices").await,
        2,
        "the other question's"
    );
    assert_eq!(p.other_votes().await, 1, "other votes untouched");
    assert_eq!(app.count("SELECT count(*) FROM votes").await, 1);
    let entries = audit(app, "QUESTION_DELETED").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["details"]["text"], "Lunch?");
    assert_eq!(entries[0]["details"]["policy"], "CASCADE");
    assert_eq!(entries[0]["actor"], "root");
    // The question's id now names nothing.
    let resp = app
        .gql(
            Some(root),
            &delete("deleteQuestion"),
            vars(&id, "CASCADE", false, None),
        )
        .await;
    assert_eq!(refusal(&resp).0, "NOT_FOUND");
    // A question without votes goes under PROTECT, with its choices.
    let quiet = create_question(app, root, "Tea?", &["green", "black"]).await;
    let done = app
        .ok(
            Some(root),
            &delete("deleteQuestion"),
            vars(quiet["id"].as_str().unwrap(), "PROTECT", false, None),
        )
        .await;
    assert_eq!(
        counts(&done["deleteQuestion"]["plan"]["deleted"]),
        map(&[("choices", 2)])
    );
    assert_eq!(app.count("SELECT count(*) FROM questions").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_goes_with_its_votes_and_a_question_keeps_two() {
    let p = polls().await;
    let (app, root) = (&p.app, &p.root);
    let (pizza, soup, salad) = (
        choice(&p.question, 0),
        choice(&p.question, 1),
        choice(&p.question, 2),
    );
    let (_, deleter) = app.staff_with("deleter", &["polls.delete_question"]).await;
    let (_, changer) = app.staff_with("changer", &["polls.change_question"]).await;
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(root),
            &delete("deleteChoice"),
            vars(&pizza, "PROTECT", false, None),
        )
        .await;
    assert_eq!(refusal(&resp).0, "DELETE_PROTECTED", "{resp:#}");
    assert_eq!(
        counts(&resp["errors"][0]["extensions"]["protected"]),
        map(&[("votes", 1)])
    );
    let resp = app
        .gql(
            Some(root),
            &delete("deleteChoice"),
            vars(&pizza, "SET_NULL", false, None),
        )
        .await;
    assert_eq!(refusal(&resp), ("INVALID_INPUT".into(), "policy".into()));
    let resp = app
        .gql(
            Some(&deleter),
            &delete("deleteChoice"),
            vars(&salad, "CASCADE", false, None),
        )
        .await;
    assert_eq!(
        refusal(&resp).0,
        "FORBIDDEN",
        "deleting a choice is changing its question"
    );
    let resp = app
        .gql(Some(&deleter), PLAN, vars(&salad, "CASCADE", false, None))
        .await;
    assert_eq!(refusal(&resp).0, "FORBIDDEN", "{resp:#}");
    assert_eq!(snapshot(app.pool()).await, before);

    let plan = app
        .ok(Some(&changer), PLAN, vars(&pizza, "CASCADE", false, None))
        .await["deletionPlan"]
        .clone();
    assert_eq!(
        (plan["kind"].as_str(), plan["target"]["text"].as_str()),
        (Some("CHOICE"), Some("pizza"))
    );
    let token = plan["token"].as_str().unwrap();
    let done = app
        .ok(
            Some(&changer),
            &delete("deleteChoice"),
            vars(&pizza, "CASCADE", false, Some(token)),
        )
        .await;
    assert_eq!(
        counts(&done["deleteChoice"]["plan"]["deleted"]),
        map(&[("votes", 1)])
    );
    let tallies = app
        .ok(
            Some(root),
            "query($id: ID!) { question(id: $id) { choices { text voteCount } } }",
            json!({ "id": p.question_id() }),
        )
        .await;
    assert_eq!(
        tallies["question"]["choices"],
        json!([{ "text": "soup", "voteCount": 1 }, { "text": "salad", "voteCount": 0 }]),
        "the other tallies are untouched"
    );
    assert_eq!(p.other_votes().await, 1);
    // Alice's vote went with the choice: she may vote on the question again.
    vote(app, &p.alice, &salad).await;
    let entries = audit(app, "CHOICE_DELETED").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["details"]["text"], "pizza");

    // Two choices left: neither may go, not even previewed.
    let before = snapshot(app.pool()).await;
    for (id, policy) in [(&soup, "CASCADE"), (&salad, "PROTECT")] {
        let resp = app
            .gql(
                Some(root),
                &delete("deleteChoice"),
                vars(id, policy, false, None),
            )
            .await;
        assert_eq!(
            refusal(&resp),
            ("INVALID_INPUT".into(), "id".into()),
            "{resp:#}"
        );
        let resp = app
            .gql(Some(root), PLAN, vars(id, policy, false, None))
            .await;
        assert_eq!(
            refusal(&resp),
            ("INVALID_INPUT".into(), "id".into()),
            "{resp:#}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_tokens_are_bound_to_their_record_and_any_id_can_be_planned() {
    let p = polls().await;
    let (app, root, id) = (&p.app, &p.root, p.question_id());
    let other = p.other["id"].as_str().unwrap().to_owned();
    let group = create_group(app, root, "Readers", &[]).await;
    let token_of = |id: String, policy: &'static str| async move {
        app.ok(Some(root), PLAN, vars(&id, policy, false, None))
            .await["deletionPlan"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let for_question = token_of(id.clone(), "CASCADE").await;
    let for_group = token_of(group.clone(), "CASCADE").await;
    let before = snapshot(app.pool()).await;
    let cases = [
        (
            &other,
            &for_question,
            "this plan token was made for another question (",
        ),
        (&id, &for_group, "this plan token was made for a group ("),
    ];
    for (target, token, says) in cases {
        let resp = app
            .gql(
                Some(root),
                &delete("deleteQuestion"),
                vars(target, "CASCADE", false, Some(token)),
            )
            .await;
        assert_eq!(
            refusal(&resp),
            ("INVALID_INPUT".into(), "planToken".into()),
            "{resp:#}"
        );
        let message = resp["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{message}");
    }
    // A new vote moves the plan.
    let carol = voter(app, "carol").await;
    vote(app, &carol, &choice(&p.question, 2)).await;
    let before_vote = snapshot(app.pool()).await;
    assert_ne!(before_vote, before);
    let resp = app
        .gql(
            Some(root),
            &delete("deleteQuestion"),
            vars(&id, "CASCADE", false, Some(&for_question)),
        )
        .await;
    assert_eq!(refusal(&resp).0, "PLAN_CHANGED", "{resp:#}");
    assert_eq!(snapshot(app.pool()).await, before_vote, "nothing changed");

    // deletionPlan: `id` for a user is the same plan as `userId`; one of them, and a deletable kind.
    let alice = app
        .ok(
            Some(root),
            "{ user(username: \"alice\") { id } }",
            json!({}),
        )
        .await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_id = app
        .ok(Some(root), PLAN, vars(&alice, "SET_NULL", false, None))
        .await;
    let by_user_id = app
        .ok(
            Some(root),
            "query($id: ID!) { deletionPlan(userId: $id, policy: SET_NULL) { kind token user { username } } }",
            json!({ "id": alice }),
        )
        .await;
    assert_eq!(
        by_id["deletionPlan"]["token"],
        by_user_id["deletionPlan"]["token"]
    );
    assert_eq!(by_id["deletionPlan"]["kind"], "USER");
    assert_eq!(by_id["deletionPlan"]["user"]["username"], "alice");
    assert_eq!(by_id["deletionPlan"]["target"]["__typename"], "User");
    let vote_id = memberdesk::ids::encode(memberdesk::ids::Kind::Vote, 1);
    for (query, variables, expected) in [
        (
            PLAN,
            vars(&vote_id, "PROTECT", false, None),
            ("NOT_FOUND", ""),
        ),
        (
            PLAN,
            vars("not an id", "PROTECT", false, None),
            ("INVALID_INPUT", "id"),
        ),
        (
            "query($id: ID!) { deletionPlan(id: $id, userId: $id) { token } }",
            json!({ "id": alice }),
            ("INVALID_INPUT", "id"),
        ),
        (
            "{ deletionPlan { token } }",
            json!({}),
            ("INVALID_INPUT", "id"),
        ),
    ] {
        let resp = app.gql(Some(root), query, variables).await;
        assert_eq!(
            refusal(&resp),
            (expected.0.into(), expected.1.into()),
            "{resp:#}"
        );
    }
    // Each kind's own permission: a question's deleter may not plan a user's deletion.
    let (_, deleter) = app.staff_with("deleter", &["polls.delete_question"]).await;
    let resp = app
        .gql(Some(&deleter), PLAN, vars(&alice, "PROTECT", false, None))
        .await;
    assert_eq!(refusal(&resp).0, "FORBIDDEN");
    app.ok(Some(&deleter), PLAN, vars(&id, "PROTECT", false, None))
        .await;
}
