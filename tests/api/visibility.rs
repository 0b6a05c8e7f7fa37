//! What a `User` object reveals, and which filters a bulk operation accepts.
//!
//! A `User` can be reached from many places (a question's author, a vote's
//! voter, an audit entry's actor and target, a deletion plan, a mutation's
//! payload). On every one of them another user's personal fields are for
//! staff with `auth.view_user` (or `auth.change_user`, which implies it) and
//! for the user themself; anyone else sees `id` and `username`, and every
//! other field is null with a `FORBIDDEN` error at that field's path.
//!
//! `deactivateUsers` refuses a filter that matches everyone (no field, or
//! only a blank `search`) unless it says `all: true`; a read (`users`) keeps
//! treating a blank search as no filter.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, ids, user_id};

/// Every field of `User` except `id` and `username`.
const PERSONAL: &[&str] = &[
    "email",
    "firstName",
    "lastName",
    "isActive",
    "isStaff",
    "isSuperuser",
    "dateJoined",
    "lastLogin",
    "deactivatedAt",
    "deactivationReason",
    "anonymizedAt",
    "groups",
    "userPermissions",
    "allPermissions",
    "votes",
    "voteCount",
];

/// A selection of `id`, `username` and every personal field.
const EVERY_FIELD: &str = "id username email firstName lastName isActive isStaff isSuperuser \
    dateJoined lastLogin deactivatedAt deactivationReason anonymizedAt groups { name } \
    userPermissions { key } allPermissions votes(first: 1) { totalCount } voteCount";

/// A question by `author` with one vote by `voter`, and a login of each in the audit log.
struct Poll {
    app: TestApp,
    author: String,
    voter: String,
    question: String,
}

async fn poll() -> Poll {
    let app = TestApp::spawn().await;
    let (author, author_token) = app.staff_with("author", &["polls.add_question"]).await;
    let created = app
        .create_question(&author_token, "Lunch?", &["yes", "no"])
        .ok()
        .await;
    let question = created["id"].as_str().unwrap().to_owned();
    let voter = app.user("voter", false, false).await;
    let voter_token = app.login("voter", PASSWORD).await;
    app.vote(&voter_token, &ids(&created["choices"])[0])
        .ok()
        .await;
    Poll {
        app,
        author: user_id(&author),
        voter: user_id(&voter),
        question,
    }
}

/// The question's author, the vote's voter, and the author's audit entry's
/// actor, each with every field. Needs a caller who may list votes and the log.
const THREE_PATHS: &str = "query($q: ID!, $voter: ID!, $author: ID!) {
    question(id: $q) { createdBy { FIELDS } }
    votes(userId: $voter, first: 1) { edges { node { user { FIELDS } } } }
    auditLog(filter: { actorId: $author, action: LOGIN }, first: 1) { edges { node { actor { FIELDS } } } }
}";

fn three_paths() -> String {
    THREE_PATHS.replace("FIELDS", EVERY_FIELD)
}

/// The JSON paths of the three users in [`THREE_PATHS`]' answer.
const USER_PATHS: [&[&str]; 3] = [
    &["question", "createdBy"],
    &["votes", "edges", "0", "node", "user"],
    &["auditLog", "edges", "0", "node", "actor"],
];

fn at<'a>(data: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(data, |v, key| match key.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[*key],
    })
}

/// The codes of the errors whose path is exactly `path`.
fn codes_at(resp: &Value, path: &[&str]) -> Vec<String> {
    let path: Vec<Value> = path
        .iter()
        .map(|p| match p.parse::<u64>() {
            Ok(i) => json!(i),
            Err(_) => json!(p),
        })
        .collect();
    resp["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["path"].as_array() == Some(&path))
        .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// `id` and `username` shown; every personal field null with a FORBIDDEN error at its path.
fn assert_only_public(resp: &Value, user_path: &[&str], username: &str) {
    let user = at(&resp["data"], user_path);
    assert_eq!(user["username"], username, "{user_path:?}: {resp:#}");
    assert!(user["id"].is_string(), "{user_path:?}: {resp:#}");
    for field in PERSONAL {
        assert!(
            user[*field].is_null(),
            "{user_path:?}.{field} leaked: {resp:#}"
        );
        let path: Vec<&str> = user_path.iter().copied().chain([*field]).collect();
        assert_eq!(
            codes_at(resp, &path),
            ["FORBIDDEN"],
            "{path:?}: one FORBIDDEN error: {resp:#}"
        );
    }
}

/// Every personal field answered, no error.
fn assert_all_shown(resp: &Value, user_path: &[&str], username: &str) {
    assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
    let user = at(&resp["data"], user_path);
    assert_eq!(user["username"], username);
    assert_eq!(user["email"], format!("{username}@example.org"));
    assert!(user["lastLogin"].is_string(), "{user:#}");
    for field in [
        "isActive",
        "dateJoined",
        "groups",
        "allPermissions",
        "votes",
        "voteCount",
    ] {
        assert!(!user[field].is_null(), "{user_path:?}.{field}: {user:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_fields_of_another_user_need_view_user_on_every_path() {
    let p = poll().await;
    let app = &p.app;
    let vars = json!({ "q": p.question, "voter": p.voter, "author": p.author });
    let query = three_paths();

    // Staff who may list votes and read the log, but not view users.
    let (_, reader) = app
        .staff_with("reader", &["polls.view_vote", "admin.view_logentry"])
        .await;
    let resp = app.gql(Some(&reader), &query, vars.clone()).await;
    assert_only_public(&resp, USER_PATHS[0], "author");
    assert_only_public(&resp, USER_PATHS[1], "voter");
    assert_only_public(&resp, USER_PATHS[2], "author");

    // A plain member reaches the question's author.
    app.user("member", false, false).await;
    let member = app.login("member", PASSWORD).await;
    let resp = app
        .gql(
            Some(&member),
            &format!("query($q: ID!) {{ question(id: $q) {{ createdBy {{ {EVERY_FIELD} }} }} }}"),
            json!({ "q": p.question }),
        )
        .await;
    assert_only_public(&resp, USER_PATHS[0], "author");

    // With auth.view_user (or auth.change_user, which implies it): everything.
    for perm in ["auth.view_user", "auth.change_user"] {
        let name = perm.replace("auth.", "");
        let (_, viewer) = app
            .staff_with(&name, &[perm, "polls.view_vote", "admin.view_logentry"])
            .await;
        let resp = app.gql(Some(&viewer), &query, vars.clone()).await;
        assert_all_shown(&resp, USER_PATHS[0], "author");
        assert_all_shown(&resp, USER_PATHS[1], "voter");
        assert_all_shown(&resp, USER_PATHS[2], "author");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_their_own_personal_fields_on_every_path() {
    let p = poll().await;
    let app = &p.app;
    // The author, through their own question and their own audit entry.
    let author = app.login("author", PASSWORD).await;
    let resp = app
        .gql(
            Some(&author),
            &format!(
                "query($q: ID!) {{ question(id: $q) {{ createdBy {{ {EVERY_FIELD} }} }} me {{ {EVERY_FIELD} }} }}"
            ),
            json!({ "q": p.question }),
        )
        .await;
    assert_all_shown(&resp, USER_PATHS[0], "author");
    assert_all_shown(&resp, &["me"], "author");
    // The voter, through their own vote.
    let voter = app.login("voter", PASSWORD).await;
    let resp = app
        .gql(
            Some(&voter),
            &format!("{{ me {{ votes {{ edges {{ node {{ user {{ {EVERY_FIELD} }} }} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_all_shown(
        &resp,
        &["me", "votes", "edges", "0", "node", "user"],
        "voter",
    );
    // At login the request has no token yet; the payload is the caller's own account.
    let resp = app
        .gql(
            None,
            &format!(
                "mutation($p: String!) {{ login(username: \"voter\", password: $p) {{ user {{ {EVERY_FIELD} }} }} }}"
            ),
            json!({ "p": PASSWORD }),
        )
        .await;
    assert_all_shown(&resp, &["login", "user"], "voter");
    assert_eq!(resp["data"]["login"]["user"]["voteCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_payloads_and_plans_show_only_id_and_username_without_view_user() {
    let app = TestApp::spawn().await;
    let target = app.user("target", false, false).await;
    let (_, adder) = app.staff_with("adder", &["auth.add_user"]).await;
    let input = json!({ "username": "newbie", "email": "newbie@example.org", "password": "a long enough passphrase here" });
    let resp = app
        .create_user(&adder, input)
        .select("id username email groups { name }")
        .send()
        .await;
    assert_eq!(resp["data"]["createUser"]["username"], "newbie", "{resp:#}");
    assert!(resp["data"]["createUser"]["email"].is_null(), "{resp:#}");
    assert_eq!(codes_at(&resp, &["createUser", "email"]), ["FORBIDDEN"]);
    assert_eq!(codes_at(&resp, &["createUser", "groups"]), ["FORBIDDEN"]);

    let (_, deleter) = app.staff_with("deleter", &["auth.delete_user"]).await;
    let resp = app
        .deletion_plan(&deleter, &user_id(&target))
        .select("allowed user { username email lastLogin }")
        .send()
        .await;
    assert_eq!(resp["data"]["deletionPlan"]["allowed"], true, "{resp:#}");
    assert_eq!(resp["data"]["deletionPlan"]["user"]["username"], "target");
    assert!(resp["data"]["deletionPlan"]["user"]["email"].is_null());
    assert_eq!(
        codes_at(&resp, &["deletionPlan", "user", "lastLogin"]),
        ["FORBIDDEN"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_matching_everyone_deactivates_nobody_unless_it_says_all() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    app.user("alice", false, false).await;
    app.user("bob", false, false).await;
    app.user("carol", false, false).await;
    let everyone = [
        json!({}),
        json!({ "search": "   " }),
        json!({ "search": "" }),
        json!({ "search": " \t ", "isActive": null }),
        json!({ "all": false }),
        json!({ "search": "  ", "all": false }),
    ];
    for filter in everyone {
        let call = app.deactivate_users(&root).filter(filter.clone());
        let refusal = call.refused("INVALID_INPUT").await;
        assert_eq!(refusal.field, "filter", "{filter}: {refusal:?}");
    }

    // A blank search on a read is harmless: no filter, everyone listed.
    let listed = app
        .ok(
            Some(&root),
            r#"{ users(filter: { search: "  " }) { totalCount edges { node { username } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(listed["users"]["totalCount"], 4, "{listed:#}");

    // A real field next to a blank search is a filter.
    let bulk = |filter: Value| {
        app.deactivate_users(&root)
            .filter(filter)
            .select("deactivated { username } skipped { code }")
    };
    let done = bulk(json!({ "search": " car ", "all": false })).ok().await;
    assert_eq!(done["deactivated"], json!([{ "username": "carol" }]));

    // Said on purpose: everyone the caller may act on.
    let done = bulk(json!({ "all": true })).ok().await;
    let names: Vec<&str> = done["deactivated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"bob"),
        "{done:#}"
    );
    let codes: Vec<&str> = done["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"SELF_ACTION"), "{done:#}");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE is_active")
            .await,
        1,
        "only the caller is left active"
    );
}
