//! Every read in the contract: filters, ordering, Relay pagination and its
//! edges, nested fields, and the guards on each query.

use crate::helpers::{TestApp, ids, user_id};
use serde_json::{Value, json};

/// A small population whose every filter has a distinct answer:
/// root (superuser), alice (plain), bob (staff, in Editors), carol
/// (deactivated), dave (anonymized), erin (dormant since 2020).
struct World {
    app: TestApp,
    token: String,
    editors: String,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    app.user("alice", false, false).await;
    let bob = app.user("bob", true, false).await;
    let carol = app.user("carol", false, false).await;
    let dave = app.user("dave", false, false).await;
    let erin = app.user("erin", false, false).await;
    for (sql, user) in [
        (
            "UPDATE users SET is_active = false, deactivated_at = now(), deactivation_reason = 'left' WHERE id = $1",
            carol.id,
        ),
        (
            "UPDATE users SET is_active = false, anonymized_at = now() WHERE id = $1",
            dave.id,
        ),
        (
            "UPDATE users SET last_login = '2020-01-01T00:00:00Z', date_joined = '2019-01-01T00:00:00Z' WHERE id = $1",
            erin.id,
        ),
    ] {
        app.execute(sql, user).await;
    }
    let group = app
        .create_group(&token, "Editors", &["auth.view_user"])
        .ok()
        .await;
    let editors = group["id"].as_str().unwrap().to_owned();
    app.add_to_group(&token, &user_id(&bob), &editors)
        .ok()
        .await;
    World {
        app,
        token,
        editors,
    }
}

impl World {
    /// Usernames of `users(filter, orderBy)` on one page of 100.
    async fn usernames(&self, filter: Value, order: &str) -> Vec<String> {
        let data = self
            .app
            .ok(
                Some(&self.token),
                &format!(
                    "query($f: UserFilter) {{ users(filter: $f, orderBy: {order}, first: 100) {{
                        totalCount edges {{ node {{ username }} }} }} }}"
                ),
                json!({ "f": filter }),
            )
            .await;
        let names: Vec<String> = data["users"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["username"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            data["users"]["totalCount"],
            json!(names.len()),
            "totalCount agrees with the page"
        );
        names
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_filter_selects_exactly_its_users() {
    let w = world().await;
    let cases = [
        (
            json!({}),
            vec!["alice", "bob", "carol", "dave", "erin", "root"],
        ),
        (
            json!({ "isActive": true }),
            vec!["alice", "bob", "erin", "root"],
        ),
        (json!({ "isActive": false }), vec!["carol", "dave"]),
        (json!({ "isStaff": true }), vec!["bob", "root"]),
        (json!({ "isSuperuser": true }), vec!["root"]),
        (json!({ "search": "ALI" }), vec!["alice"]),
        // The e-mail is part of the search too.
        (
            json!({ "search": "@example.org" }),
            vec!["alice", "bob", "carol", "dave", "erin", "root"],
        ),
        (json!({ "groupId": w.editors }), vec!["bob"]),
        (
            json!({ "lastLoginBefore": "2021-01-01T00:00:00Z" }),
            vec!["erin"],
        ),
        (json!({ "deactivated": true }), vec!["carol"]),
        (json!({ "anonymized": true }), vec!["dave"]),
        (
            json!({ "anonymized": false, "isActive": false }),
            vec!["carol"],
        ),
        // SQL wildcards in a search are literal text, not patterns.
        (json!({ "search": "%" }), vec![]),
        (json!({ "search": "_" }), vec![]),
    ];
    for (filter, expected) in cases {
        let got = sorted(w.usernames(filter.clone(), "ID_ASC").await);
        assert_eq!(got, expected, "filter {filter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderings_sort_as_named() {
    let w = world().await;
    let by_name = w.usernames(json!({}), "USERNAME_ASC").await;
    assert_eq!(by_name, ["alice", "bob", "carol", "dave", "erin", "root"]);
    let by_name_desc = w.usernames(json!({}), "USERNAME_DESC").await;
    assert_eq!(
        by_name_desc,
        ["root", "erin", "dave", "carol", "bob", "alice"]
    );
    let by_id = w.usernames(json!({}), "ID_ASC").await;
    assert_eq!(by_id, ["root", "alice", "bob", "carol", "dave", "erin"]);
    // erin joined in 2019, everyone else today.
    let joined = w.usernames(json!({}), "DATE_JOINED_ASC").await;
    assert_eq!(joined[0], "erin");
    let joined_desc = w.usernames(json!({}), "DATE_JOINED_DESC").await;
    assert_eq!(joined_desc.last().unwrap(), "erin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_every_user_once_in_every_order() {
    let w = world().await;
    for order in [
        "ID_ASC",
        "ID_DESC",
        "USERNAME_ASC",
        "USERNAME_DESC",
        "DATE_JOINED_ASC",
        "DATE_JOINED_DESC",
    ] {
        let full = w.usernames(json!({}), order).await;
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = w
                .app
                .ok(
                    Some(&w.token),
                    &format!(
                        "query($a: String) {{ users(orderBy: {order}, first: 4, after: $a) {{
                            edges {{ cursor node {{ username }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
                    ),
                    json!({ "a": after }),
                )
                .await;
            let page = &data["users"];
            let edges = page["edges"].as_array().unwrap();
            assert!(edges.len() <= 4);
            walked.extend(
                edges
                    .iter()
                    .map(|e| e["node"]["username"].as_str().unwrap().to_owned()),
            );
            if page["pageInfo"]["hasNextPage"] == json!(false) {
                break;
            }
            after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        }
        assert_eq!(walked, full, "paging in {order} neither skips nor repeats");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_edges_are_clear_errors() {
    let w = world().await;
    let q = "query($n: Int, $a: String) { users(first: $n, after: $a) { edges { node { id } } } }";
    for (vars, field) in [
        (json!({ "n": 101 }), "first"),
        (json!({ "n": -1 }), "first"),
        (json!({ "n": 2, "a": "not a cursor" }), "after"),
    ] {
        let resp = w.app.gql(Some(&w.token), q, vars.clone()).await;
        assert_eq!(
            resp["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{vars}: {resp}"
        );
        assert_eq!(
            resp["errors"][0]["extensions"]["field"], field,
            "{vars}: {resp}"
        );
    }
    // 100 is the documented maximum; 0 is an empty page.
    let full = w.app.ok(Some(&w.token), q, json!({ "n": 100 })).await;
    assert_eq!(full["users"]["edges"].as_array().unwrap().len(), 6);
    let empty = w.app.ok(Some(&w.token), q, json!({ "n": 0 })).await;
    assert_eq!(empty["users"]["edges"], json!([]));
    // A cursor from the last page leads to an empty page, not an error.
    let last = w
        .app
        .ok(
            Some(&w.token),
            "{ users(first: 100) { pageInfo { endCursor hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(last["users"]["pageInfo"]["hasNextPage"], false);
    let after_end = w
        .app
        .ok(
            Some(&w.token),
            q,
            json!({ "n": 5, "a": last["users"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(after_end["users"]["edges"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_user_lookups_and_nested_fields() {
    let w = world().await;
    let q = "query($id: ID, $name: String) { user(id: $id, username: $name) {
        username isActive deactivatedAt deactivationReason anonymizedAt
        groups { name } userPermissions { key } allPermissions voteCount } }";
    let bob = w.app.ok(Some(&w.token), q, json!({ "name": "BOB" })).await;
    assert_eq!(bob["user"]["username"], "bob");
    assert_eq!(bob["user"]["groups"], json!([{ "name": "Editors" }]));
    assert_eq!(bob["user"]["userPermissions"], json!([]));
    assert_eq!(
        bob["user"]["allPermissions"],
        json!(["auth.view_user"]),
        "group permissions count"
    );
    let carol = w
        .app
        .ok(Some(&w.token), q, json!({ "name": "carol" }))
        .await;
    assert_eq!(carol["user"]["isActive"], false);
    assert_eq!(carol["user"]["deactivationReason"], "left");
    assert!(carol["user"]["deactivatedAt"].is_string());
    let root = w.app.ok(Some(&w.token), q, json!({ "name": "root" })).await;
    assert_eq!(
        root["user"]["allPermissions"].as_array().unwrap().len(),
        14,
        "an active superuser holds every seeded permission"
    );
    // An unknown name is null; an id that names nothing is NOT_FOUND, as is
    // an id of another kind; a garbage id is bad input.
    let none = w
        .app
        .ok(Some(&w.token), q, json!({ "name": "nobody" }))
        .await;
    assert_eq!(none["user"], Value::Null);
    let missing = memberdesk::ids::encode(memberdesk::ids::Kind::User, 999_999);
    assert_eq!(
        w.app
            .err_code(Some(&w.token), q, json!({ "id": missing }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        w.app
            .err_code(Some(&w.token), q, json!({ "id": w.editors }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        w.app
            .err_code(Some(&w.token), q, json!({ "id": "%%%" }))
            .await,
        "INVALID_INPUT"
    );
    assert_eq!(
        w.app
            .err_code(Some(&w.token), q, json!({ "id": missing, "name": "bob" }))
            .await,
        "INVALID_INPUT",
        "exactly one of id and username"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_permissions_questions_and_votes() {
    let w = world().await;
    let data = w
        .app
        .ok(
            Some(&w.token),
            "query($g: ID!) { groups { name memberCount permissions { key } }
               group(id: $g) { name members(first: 10) { totalCount edges { node { username } } } }
               permissions { key appLabel codename } }",
            json!({ "g": w.editors }),
        )
        .await;
    assert_eq!(
        data["groups"],
        json!([{ "name": "Editors", "memberCount": 1, "permissions": [{ "key": "auth.view_user" }] }])
    );
    assert_eq!(data["group"]["members"]["totalCount"], 1);
    assert_eq!(
        data["group"]["members"]["edges"][0]["node"]["username"],
        "bob"
    );
    let perms = data["permissions"].as_array().unwrap();
    assert_eq!(perms.len(), 14);
    assert!(perms.iter().all(|p| p["key"]
        == json!(format!(
            "{}.{}",
            p["appLabel"].as_str().unwrap(),
            p["codename"].as_str().unwrap()
        ))));

    let q = w
        .app
        .create_question(&w.token, "Tabs or spaces?", &["Tabs", "Spaces"])
        .ok()
        .await;
    let question = q["id"].as_str().unwrap().to_owned();
    let spaces = &ids(&q["choices"])[1];
    let vote = w
        .app
        .vote(&w.token, spaces)
        .select("voterName choice { text question { text } } user { username }")
        .ok()
        .await;
    assert_eq!(vote["voterName"], "root");
    assert_eq!(vote["choice"]["question"]["text"], "Tabs or spaces?");
    let read = w
        .app
        .ok(
            Some(&w.token),
            "query($q: ID!) { question(id: $q) { text createdBy { username } choices { text voteCount } }
               questions { text } }",
            json!({ "q": question }),
        )
        .await;
    assert_eq!(read["question"]["createdBy"]["username"], "root");
    assert_eq!(
        read["question"]["choices"],
        json!([{ "text": "Tabs", "voteCount": 0 }, { "text": "Spaces", "voteCount": 1 }])
    );
    assert_eq!(read["questions"], json!([{ "text": "Tabs or spaces?" }]));
    let me = w
        .app
        .ok(Some(&w.token), "{ me { id voteCount } }", json!({}))
        .await;
    let votes = w
        .app
        .ok(
            Some(&w.token),
            "query($u: ID!) { votes(userId: $u, first: 10) { totalCount edges { node { choice { text } } } } }",
            json!({ "u": me["me"]["id"] }),
        )
        .await;
    assert_eq!(me["me"]["voteCount"], 1);
    assert_eq!(votes["votes"]["totalCount"], 1);
    assert_eq!(
        votes["votes"]["edges"][0]["node"]["choice"]["text"],
        "Spaces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_their_view_permission() {
    let w = world().await;
    let (_, plain) = w.app.staff_with("plainstaff", &[]).await;
    let (_, viewer) = w.app.staff_with("viewer", &["auth.view_user"]).await;
    let alice_token = w.app.login("alice", crate::helpers::PASSWORD).await;
    for (query, permission) in [
        ("{ users(first: 1) { totalCount } }", "auth.view_user"),
        ("{ user(username: \"alice\") { id } }", "auth.view_user"),
        ("{ groups { id } }", "auth.view_group"),
        (
            "{ auditLog(first: 1) { totalCount } }",
            "admin.view_logentry",
        ),
    ] {
        assert_eq!(
            w.app.err_code(None, query, json!({})).await,
            "UNAUTHENTICATED",
            "{query}"
        );
        assert_eq!(
            w.app.err_code(Some(&plain), query, json!({})).await,
            "FORBIDDEN",
            "{query}"
        );
        // Not staff: even a matching permission opens no admin read.
        assert_eq!(
            w.app.err_code(Some(&alice_token), query, json!({})).await,
            "FORBIDDEN",
            "{query}"
        );
        let as_viewer = w.app.gql(Some(&viewer), query, json!({})).await;
        assert_eq!(
            as_viewer.get("errors").is_none(),
            permission == "auth.view_user",
            "{query} with only auth.view_user: {as_viewer}"
        );
    }
    // Everyone signed in may read themselves.
    assert_eq!(w.app.me(&alice_token).await.unwrap(), "alice");
}

/// A page reads its users' groups, permissions and vote counts ahead, in one
/// statement with the page (`types::user::read_ahead`); a single lookup
/// loads them through the DataLoader. Both give the same facts, whether the
/// page selects them through `edges`, `nodes` or a fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reads_ahead_the_facts_a_single_lookup_loads() {
    let w = world().await;
    let facts = "groups { name } allPermissions voteCount";
    let single = format!("query($name: String) {{ user(username: $name) {{ {facts} }} }}");
    let pages = [
        format!("{{ users(first: 100) {{ edges {{ node {{ username {facts} }} }} }} }}"),
        format!("{{ users(first: 100) {{ nodes {{ username {facts} }} }} }}"),
        format!(
            "{{ users(first: 100) {{ nodes {{ username ...F }} }} }} fragment F on User {{ {facts} }}"
        ),
    ];
    for page in &pages {
        let data = w.app.ok(Some(&w.token), page, json!({})).await;
        let nodes: Vec<Value> = match data["users"]["nodes"].as_array() {
            Some(nodes) => nodes.clone(),
            None => data["users"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone())
                .collect(),
        };
        assert!(nodes.len() >= 3, "{data}");
        for node in nodes {
            let name = node["username"].as_str().unwrap();
            let alone = w
                .app
                .ok(Some(&w.token), &single, json!({ "name": name }))
                .await;
            for field in ["groups", "allPermissions", "voteCount"] {
                assert_eq!(
                    node[field], alone["user"][field],
                    "{name} {field} in {page}"
                );
            }
        }
    }
}
