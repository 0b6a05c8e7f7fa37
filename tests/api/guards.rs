//! Who may call which mutation, proved over HTTP against real PostgreSQL.
//!
//! The guard matrix runs every admin mutation as each kind of caller the
//! contract distinguishes (anonymous, non-staff with the permission, staff
//! without it, staff with it, superuser, staff deactivated after login):
//! permitted callers change exactly what the mutation promises, refused ones
//! get the contract's code and leave every table as it was. The escalation
//! tests prove nobody hands out more than they hold, only superusers set the
//! staff/superuser flags or touch a superuser's account, and the last active
//! superuser cannot be demoted.

use memberdesk::domain::groups::{Access, Change};
use memberdesk::domain::{Actor, groups, polls};
use memberdesk::ids::{self, Kind};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, group_id, snapshot, user_id};

/// Every permission the migration seeds.
const ALL_PERMISSIONS: &[&str] = &[
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.delete_user",
    "auth.view_group",
    "auth.add_group",
    "auth.change_group",
    "auth.delete_group",
    "polls.view_question",
    "polls.add_question",
    "polls.change_question",
    "polls.delete_question",
    "polls.view_vote",
    "admin.view_logentry",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anonymous,
    NonStaffWithPerm,
    StaffWithoutPerm,
    StaffWithPerm,
    Superuser,
    InactiveStaff,
}

const EVERYONE: [Who; 6] = [
    Who::Anonymous,
    Who::NonStaffWithPerm,
    Who::StaffWithoutPerm,
    Who::StaffWithPerm,
    Who::Superuser,
    Who::InactiveStaff,
];

impl Who {
    /// Names this caller's own account (`c_<label>`) and fixtures
    /// (`t_<label>`, `g_<label>`, ...), so the effect probes can find them.
    fn label(self) -> &'static str {
        match self {
            Who::Anonymous => "anon",
            Who::NonStaffWithPerm => "nonstaff",
            Who::StaffWithoutPerm => "staffnoperm",
            Who::StaffWithPerm => "staffperm",
            Who::Superuser => "superuser",
            Who::InactiveStaff => "inactive",
        }
    }
}

/// The objects one caller's calls act on, so permitted calls by different
/// callers never see each other's effects.
struct Targets {
    label: &'static str,
    /// `t_<label>`: a plain user with a live session, a direct
    /// `polls.view_vote` grant and membership of `m_<label>`.
    user: String,
    /// `g_<label>`: an empty group without permissions.
    group: String,
    /// `m_<label>`: a group `t_<label>` belongs to.
    member_group: String,
    /// The first choice of question `q_<label>`.
    choice: String,
}

struct Case {
    name: &'static str,
    query: &'static str,
    /// What the guard needs; `None` means any active user may call it.
    perm: Option<&'static str>,
    vars: fn(&Targets) -> Value,
    /// A boolean SQL probe on `$1` (the caller's label): false before a
    /// permitted call, true after it.
    effect: &'static str,
}

impl Case {
    fn expected(&self, who: Who) -> Result<(), &'static str> {
        match who {
            Who::Anonymous | Who::InactiveStaff => Err("UNAUTHENTICATED"),
            Who::StaffWithPerm | Who::Superuser => Ok(()),
            // Only active staff may call admin operations, whatever a
            // non-staff user has been granted.
            Who::NonStaffWithPerm | Who::StaffWithoutPerm if self.perm.is_none() => Ok(()),
            Who::NonStaffWithPerm | Who::StaffWithoutPerm => Err("FORBIDDEN"),
        }
    }
}

async fn grant_as_system(app: &TestApp, user: i64, perm: &str) {
    let access = Access::Permission(perm);
    groups::change_access(app.pool(), &Actor::System, user, access, Change::Give)
        .await
        .expect("grant");
}

async fn group_as_system(app: &TestApp, name: &str, perms: &[&str]) -> i64 {
    let perms: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
    groups::create_group(app.pool(), &Actor::System, name, &perms)
        .await
        .expect("create group")
        .id
}

async fn add_to_group_as_system(app: &TestApp, user: i64, group: i64) {
    let access = Access::Group(group);
    groups::change_access(app.pool(), &Actor::System, user, access, Change::Give)
        .await
        .expect("add to group");
}

async fn deactivate_directly(app: &TestApp, username: &str) {
    sqlx::query("UPDATE users SET is_active = false WHERE username = $1")
        .bind(username)
        .execute(app.pool())
        .await
        .expect("deactivate");
}

/// Logs in every kind of caller. The staff-without-permission caller holds
/// every other permission, so a refusal can only come from the missing one.
async fn callers(app: &TestApp, perms: &[&str]) -> Vec<(Who, Option<String>)> {
    let mut out = Vec::new();
    for who in EVERYONE {
        let name = format!("c_{}", who.label());
        let token = match who {
            Who::Anonymous => None,
            Who::NonStaffWithPerm => {
                let user = app.user(&name, false, false).await;
                for perm in perms {
                    grant_as_system(app, user.id, perm).await;
                }
                Some(app.login(&name, PASSWORD).await)
            }
            Who::StaffWithoutPerm => {
                let others: Vec<&str> = ALL_PERMISSIONS
                    .iter()
                    .copied()
                    .filter(|p| !perms.contains(p))
                    .collect();
                Some(app.staff_with(&name, &others).await.1)
            }
            // Also the permission the targets hold, so that they are within
            // this caller's scope (the scope rule has its own matrix, `scope.rs`).
            Who::StaffWithPerm => {
                let mut held = perms.to_vec();
                held.push(TARGET_PERMISSION);
                Some(app.staff_with(&name, &held).await.1)
            }
            Who::Superuser => Some(app.superuser(&name).await.1),
            Who::InactiveStaff => {
                // Logged in while active, so the token existed and was valid.
                let token = app.staff_with(&name, perms).await.1;
                deactivate_directly(app, &name).await;
                Some(token)
            }
        };
        out.push((who, token));
    }
    out
}

/// The one permission every target holds.
const TARGET_PERMISSION: &str = "polls.view_vote";

async fn targets_for(app: &TestApp, who: Who) -> Targets {
    let label = who.label();
    let user = app.user(&format!("t_{label}"), false, false).await;
    app.login(&user.username, PASSWORD).await;
    grant_as_system(app, user.id, TARGET_PERMISSION).await;
    let group = group_as_system(app, &format!("g_{label}"), &[]).await;
    let member_group = group_as_system(app, &format!("m_{label}"), &[]).await;
    add_to_group_as_system(app, user.id, member_group).await;
    let question = polls::create_question(
        app.pool(),
        &Actor::System,
        &format!("q_{label}"),
        &["yes".to_owned(), "no".to_owned()],
    )
    .await
    .expect("create question");
    let choice: i64 = sqlx::query_scalar(
        "SELECT id FROM choices WHERE question_id = $1 ORDER BY position LIMIT 1",
    )
    .bind(question.id)
    .fetch_one(app.pool())
    .await
    .expect("choice");
    Targets {
        label,
        user: user_id(&user),
        group: group_id(group),
        member_group: group_id(member_group),
        choice: ids::encode(Kind::Choice, choice),
    }
}

async fn probe(app: &TestApp, sql: &'static str, label: &str) -> bool {
    sqlx::query_scalar(sql)
        .bind(label)
        .fetch_one(app.pool())
        .await
        .unwrap_or_else(|e| panic!("probe {sql}: {e}"))
}

/// Runs every case as every caller on one fresh server.
async fn run_matrix(cases: &[Case]) {
    let app = TestApp::spawn().await;
    let mut perms: Vec<&str> = cases.iter().filter_map(|c| c.perm).collect();
    perms.sort();
    perms.dedup();
    let callers = callers(&app, &perms).await;
    let mut targets = Vec::new();
    for who in EVERYONE {
        targets.push(targets_for(&app, who).await);
    }
    for case in cases {
        for ((who, token), target) in callers.iter().zip(&targets) {
            let at = format!("{} as {who:?}", case.name);
            assert!(
                !probe(&app, case.effect, target.label).await,
                "{at}: effect present before the call"
            );
            let before = snapshot(app.pool()).await;
            let resp = app
                .gql(token.as_deref(), case.query, (case.vars)(target))
                .await;
            match case.expected(*who) {
                Ok(()) => {
                    assert!(resp.get("errors").is_none(), "{at}: refused: {resp:#}");
                    assert!(
                        probe(&app, case.effect, target.label).await,
                        "{at}: succeeded but the database does not show it: {resp:#}"
                    );
                }
                Err(code) => {
                    assert_eq!(
                        resp["errors"][0]["extensions"]["code"], code,
                        "{at}: {resp:#}"
                    );
                    assert_eq!(
                        snapshot(app.pool()).await,
                        before,
                        "{at}: refused but changed the database"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_matrix_user_mutations() {
    run_matrix(&[
        Case {
            name: "createUser",
            query: "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
            perm: Some("auth.add_user"),
            vars: |t| json!({ "input": { "username": format!("new_{}", t.label), "password": PASSWORD } }),
            effect: "SELECT EXISTS(SELECT 1 FROM users WHERE username = 'new_' || $1 AND NOT is_staff)",
        },
        Case {
            name: "updateUser",
            query: "mutation($id: ID!) { updateUser(id: $id, input: {firstName: \"Changed\"}) { id } }",
            perm: Some("auth.change_user"),
            vars: |t| json!({ "id": t.user }),
            effect: "SELECT first_name = 'Changed' FROM users WHERE username = 't_' || $1",
        },
        Case {
            // Another user's password; setting your own is tested below.
            name: "setPassword",
            query: "mutation($id: ID!) { setPassword(userId: $id, password: \"a brand new passphrase\") }",
            perm: Some("auth.change_user"),
            vars: |t| json!({ "id": t.user }),
            // The target's sessions are revoked by a successful call.
            effect: "SELECT NOT EXISTS(SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE u.username = 't_' || $1 AND s.revoked_at IS NULL)",
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_matrix_group_mutations() {
    run_matrix(&[
        Case {
            name: "createGroup",
            query: "mutation($name: String!) { createGroup(name: $name, permissions: [\"auth.add_group\"]) { id } }",
            perm: Some("auth.add_group"),
            vars: |t| json!({ "name": format!("made_{}", t.label) }),
            effect: "SELECT EXISTS(SELECT 1 FROM groups g JOIN group_permissions gp ON gp.group_id = g.id \
                     JOIN permissions p ON p.id = gp.permission_id \
                     WHERE g.name = 'made_' || $1 AND p.codename = 'add_group')",
        },
        Case {
            name: "setGroupPermissions",
            query: "mutation($g: ID!) { setGroupPermissions(groupId: $g, permissions: [\"auth.change_group\"]) { id } }",
            perm: Some("auth.change_group"),
            vars: |t| json!({ "g": t.group }),
            effect: "SELECT EXISTS(SELECT 1 FROM groups g JOIN group_permissions gp ON gp.group_id = g.id \
                     JOIN permissions p ON p.id = gp.permission_id \
                     WHERE g.name = 'g_' || $1 AND p.codename = 'change_group')",
        },
        Case {
            name: "addUserToGroup",
            query: "mutation($u: ID!, $g: ID!) { addUserToGroup(userId: $u, groupId: $g) { id } }",
            perm: Some("auth.change_user"),
            vars: |t| json!({ "u": t.user, "g": t.group }),
            effect: "SELECT EXISTS(SELECT 1 FROM user_groups ug JOIN users u ON u.id = ug.user_id \
                     JOIN groups g ON g.id = ug.group_id WHERE u.username = 't_' || $1 AND g.name = 'g_' || $1)",
        },
        Case {
            name: "removeUserFromGroup",
            query: "mutation($u: ID!, $g: ID!) { removeUserFromGroup(userId: $u, groupId: $g) { id } }",
            perm: Some("auth.change_user"),
            vars: |t| json!({ "u": t.user, "g": t.member_group }),
            effect: "SELECT NOT EXISTS(SELECT 1 FROM user_groups ug JOIN users u ON u.id = ug.user_id \
                     JOIN groups g ON g.id = ug.group_id WHERE u.username = 't_' || $1 AND g.name = 'm_' || $1)",
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_matrix_permission_grants() {
    run_matrix(&[
        Case {
            name: "grantPermission",
            // A permission every permitted caller holds, so only the guard can refuse.
            query: "mutation($u: ID!) { grantPermission(userId: $u, permission: \"auth.change_user\") { id } }",
            perm: Some("auth.change_user"),
            vars: |t| json!({ "u": t.user }),
            effect: "SELECT EXISTS(SELECT 1 FROM user_permissions up JOIN users u ON u.id = up.user_id \
                     JOIN permissions p ON p.id = up.permission_id \
                     WHERE u.username = 't_' || $1 AND p.codename = 'change_user')",
        },
        Case {
            name: "revokePermission",
            query: "mutation($u: ID!) { revokePermission(userId: $u, permission: \"polls.view_vote\") { id } }",
            perm: Some("auth.change_user"),
            vars: |t| json!({ "u": t.user }),
            effect: "SELECT NOT EXISTS(SELECT 1 FROM user_permissions up JOIN users u ON u.id = up.user_id \
                     JOIN permissions p ON p.id = up.permission_id \
                     WHERE u.username = 't_' || $1 AND p.codename = 'view_vote')",
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_matrix_polls() {
    run_matrix(&[
        Case {
            name: "createQuestion",
            query: "mutation($text: String!) { createQuestion(text: $text, choices: [\"a\", \"b\"]) { id } }",
            perm: Some("polls.add_question"),
            vars: |t| json!({ "text": format!("asked_{}", t.label) }),
            effect: "SELECT count(*) = 2 FROM choices c JOIN questions q ON q.id = c.question_id \
                     JOIN users u ON u.id = q.created_by WHERE q.text = 'asked_' || $1 AND u.username = 'c_' || $1",
        },
        Case {
            name: "castVote",
            query: "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
            perm: None,
            vars: |t| json!({ "c": t.choice }),
            effect: "SELECT EXISTS(SELECT 1 FROM votes v JOIN questions q ON q.id = v.question_id \
                     JOIN users u ON u.id = v.user_id WHERE q.text = 'q_' || $1 AND u.username = 'c_' || $1)",
        },
    ])
    .await;
}

/// Asserts a call is refused with `code` and leaves every table as it was.
async fn refused(app: &TestApp, token: &str, code: &str, query: &str, vars: Value) {
    let before = snapshot(app.pool()).await;
    let resp = app.gql(Some(token), query, vars.clone()).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], code,
        "{query} {vars}: {resp:#}"
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "{query} {vars}: refused but changed the database"
    );
}

async fn has_direct_perm(app: &TestApp, user: i64, key: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM user_permissions up JOIN permissions p ON p.id = up.permission_id \
         WHERE up.user_id = $1 AND p.app_label || '.' || p.codename = $2)",
    )
    .bind(user)
    .bind(key)
    .fetch_one(app.pool())
    .await
    .expect("direct perm")
}

async fn group_perms(app: &TestApp, group: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT p.app_label || '.' || p.codename FROM group_permissions gp \
         JOIN permissions p ON p.id = gp.permission_id WHERE gp.group_id = $1 ORDER BY 1",
    )
    .bind(group)
    .fetch_all(app.pool())
    .await
    .expect("group perms")
}

async fn is_member(app: &TestApp, user: i64, group: i64) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM user_groups WHERE user_id = $1 AND group_id = $2)",
    )
    .bind(user)
    .bind(group)
    .fetch_one(app.pool())
    .await
    .expect("membership")
}

const GRANT: &str =
    "mutation($u: ID!, $p: String!) { grantPermission(userId: $u, permission: $p) { id } }";
const REVOKE: &str =
    "mutation($u: ID!, $p: String!) { revokePermission(userId: $u, permission: $p) { id } }";
const ADD_TO_GROUP: &str =
    "mutation($u: ID!, $g: ID!) { addUserToGroup(userId: $u, groupId: $g) { id } }";
const REMOVE_FROM_GROUP: &str =
    "mutation($u: ID!, $g: ID!) { removeUserFromGroup(userId: $u, groupId: $g) { id } }";
const SET_GROUP_PERMS: &str = "mutation($g: ID!, $p: [String!]!) { setGroupPermissions(groupId: $g, permissions: $p) { id } }";
const CREATE_GROUP: &str =
    "mutation($n: String!, $p: [String!]!) { createGroup(name: $n, permissions: $p) { id } }";
const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }";
const UPDATE_USER: &str =
    "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }";
const SET_PASSWORD: &str = "mutation($id: ID!, $p: String!, $c: String) { setPassword(userId: $id, password: $p, currentPassword: $c) }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_escalation_through_direct_grants() {
    let app = TestApp::spawn().await;
    let (me, token) = app
        .staff_with("granter", &["auth.change_user", "auth.view_user"])
        .await;
    let other = app.user("other", false, false).await;

    for (target, perm) in [(&other, "auth.delete_user"), (&me, "auth.add_user")] {
        refused(
            &app,
            &token,
            "FORBIDDEN",
            GRANT,
            json!({ "u": user_id(target), "p": perm }),
        )
        .await;
    }

    // What the granter holds, they may pass on.
    app.ok(
        Some(&token),
        GRANT,
        json!({ "u": user_id(&other), "p": "auth.view_user" }),
    )
    .await;
    assert!(has_direct_perm(&app, other.id, "auth.view_user").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_escalation_through_group_permissions() {
    let app = TestApp::spawn().await;
    let (me, token) = app
        .staff_with(
            "grouper",
            &["auth.add_group", "auth.change_group", "auth.view_group"],
        )
        .await;
    let mine = group_as_system(&app, "Mine", &["auth.view_group"]).await;
    add_to_group_as_system(&app, me.id, mine).await;
    let legacy = group_as_system(&app, "Legacy", &["auth.delete_user"]).await;

    refused(
        &app,
        &token,
        "FORBIDDEN",
        CREATE_GROUP,
        json!({ "n": "Sneaky", "p": ["auth.view_group", "auth.delete_user"] }),
    )
    .await;
    // Their own group would hand the permission straight back to them.
    refused(
        &app,
        &token,
        "FORBIDDEN",
        SET_GROUP_PERMS,
        json!({ "g": group_id(mine), "p": ["auth.view_group", "auth.delete_user"] }),
    )
    .await;
    refused(
        &app,
        &token,
        "FORBIDDEN",
        SET_GROUP_PERMS,
        json!({ "g": group_id(legacy), "p": ["auth.delete_user", "admin.view_logentry"] }),
    )
    .await;

    // Taking a permission away is never an escalation, even one they lack.
    app.ok(
        Some(&token),
        SET_GROUP_PERMS,
        json!({ "g": group_id(legacy), "p": ["auth.view_group"] }),
    )
    .await;
    assert_eq!(group_perms(&app, legacy).await, ["auth.view_group"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_escalation_through_group_membership() {
    let app = TestApp::spawn().await;
    let (me, token) = app.staff_with("adder", &["auth.change_user"]).await;
    let other = app.user("other", true, false).await;
    let admins = group_as_system(&app, "Admins", &["auth.change_user", "auth.delete_user"]).await;
    let helpers_group = group_as_system(&app, "Helpers", &["auth.change_user"]).await;

    for target in [&me, &other] {
        refused(
            &app,
            &token,
            "FORBIDDEN",
            ADD_TO_GROUP,
            json!({ "u": user_id(target), "g": group_id(admins) }),
        )
        .await;
    }

    app.ok(
        Some(&token),
        ADD_TO_GROUP,
        json!({ "u": user_id(&other), "g": group_id(helpers_group) }),
    )
    .await;
    assert!(is_member(&app, other.id, helpers_group).await);

    // Holding counts permissions from groups too, read afresh on each request.
    let deleters = group_as_system(&app, "Deleters", &["auth.delete_user"]).await;
    add_to_group_as_system(&app, me.id, deleters).await;
    app.ok(
        Some(&token),
        ADD_TO_GROUP,
        json!({ "u": user_id(&other), "g": group_id(admins) }),
    )
    .await;
    assert!(is_member(&app, other.id, admins).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_superusers_set_staff_and_superuser_flags() {
    let app = TestApp::spawn().await;
    let (me, token) = app
        .staff_with("manager", &["auth.add_user", "auth.change_user"])
        .await;
    let (_, root) = app.superuser("root").await;
    let plain = app.user("plain", false, false).await;
    let colleague = app.user("colleague", true, false).await;

    for flag in ["isStaff", "isSuperuser"] {
        refused(
            &app,
            &token,
            "FORBIDDEN",
            CREATE_USER,
            json!({ "input": { "username": "promoted", "password": PASSWORD, flag: true } }),
        )
        .await;
    }
    for (target, input) in [
        (&plain, json!({ "isStaff": true })),
        (&plain, json!({ "isSuperuser": true })),
        (&me, json!({ "isSuperuser": true })),
        (&colleague, json!({ "isStaff": false })),
    ] {
        refused(
            &app,
            &token,
            "FORBIDDEN",
            UPDATE_USER,
            json!({ "id": user_id(target), "input": input }),
        )
        .await;
    }

    // A superuser may set them.
    app.ok(
        Some(&root),
        CREATE_USER,
        json!({ "input": { "username": "promoted", "password": PASSWORD, "isStaff": true } }),
    )
    .await;
    app.ok(
        Some(&root),
        UPDATE_USER,
        json!({ "id": user_id(&plain), "input": { "isStaff": true } }),
    )
    .await;
    let staff: Vec<String> = sqlx::query_scalar(
        "SELECT username FROM users WHERE is_staff AND NOT is_superuser ORDER BY username",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(staff, ["colleague", "manager", "plain", "promoted"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_cannot_touch_a_superuser_account() {
    let app = TestApp::spawn().await;
    // Every permission there is, and still not a superuser.
    let (_, token) = app.staff_with("almighty", ALL_PERMISSIONS).await;
    let (root, _) = app.superuser("root").await;
    let empty = group_as_system(&app, "Empty", &[]).await;
    let member_of = group_as_system(&app, "RootsGroup", &[]).await;
    add_to_group_as_system(&app, root.id, member_of).await;
    grant_as_system(&app, root.id, "polls.view_vote").await;
    let root_id = user_id(&root);

    let attempts = [
        (
            UPDATE_USER,
            json!({ "id": root_id, "input": { "firstName": "Pwned" } }),
        ),
        (
            SET_PASSWORD,
            json!({ "id": root_id, "p": "a brand new passphrase" }),
        ),
        (GRANT, json!({ "u": root_id, "p": "auth.view_user" })),
        (REVOKE, json!({ "u": root_id, "p": "polls.view_vote" })),
        (ADD_TO_GROUP, json!({ "u": root_id, "g": group_id(empty) })),
        (
            REMOVE_FROM_GROUP,
            json!({ "u": root_id, "g": group_id(member_of) }),
        ),
    ];
    for (query, vars) in attempts {
        refused(&app, &token, "FORBIDDEN", query, vars).await;
    }
    // The password really is unchanged.
    app.login("root", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demoting_the_last_active_superuser_is_refused() {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let demote = json!({ "id": user_id(&root), "input": { "isSuperuser": false } });

    refused(&app, &token, "LAST_SUPERUSER", UPDATE_USER, demote.clone()).await;

    // An inactive superuser cannot take over, so it does not count.
    app.user("backup", true, true).await;
    deactivate_directly(&app, "backup").await;
    refused(&app, &token, "LAST_SUPERUSER", UPDATE_USER, demote.clone()).await;

    sqlx::query("UPDATE users SET is_active = true WHERE username = 'backup'")
        .execute(app.pool())
        .await
        .unwrap();
    app.ok(Some(&token), UPDATE_USER, demote).await;
    let superusers: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE is_superuser ORDER BY username")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(superusers, ["backup"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_active_may_set_their_own_password() {
    let app = TestApp::spawn().await;
    let me = app.user("member", false, false).await;
    let token = app.login("member", PASSWORD).await;
    let data = app
        .ok(
            Some(&token),
            SET_PASSWORD,
            json!({ "id": user_id(&me), "p": "a brand new passphrase", "c": PASSWORD }),
        )
        .await;
    assert_eq!(data["setPassword"], true);
    app.login("member", "a brand new passphrase").await;

    // Once deactivated, not even that.
    deactivate_directly(&app, "member").await;
    refused(
        &app,
        &token,
        "UNAUTHENTICATED",
        SET_PASSWORD,
        json!({ "id": user_id(&me), "p": "yet another passphrase", "c": "a brand new passphrase" }),
    )
    .await;
}

/// The permission constants the guards and rules name are exactly the
/// permissions the migrations seed: a constant with a typo, or a seeded
/// permission without a constant, fails here instead of forbidding everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_constants_are_the_seeded_catalog() {
    let app = TestApp::spawn().await;
    let mut seeded: Vec<String> =
        sqlx::query_scalar("SELECT app_label || '.' || codename FROM permissions")
            .fetch_all(app.pool())
            .await
            .unwrap();
    seeded.sort();
    let mut named: Vec<String> = memberdesk::domain::access::CATALOG
        .iter()
        .map(|k| k.to_string())
        .collect();
    named.sort();
    assert_eq!(seeded, named);
}
