//! The scope rule: nobody acts on an account holding a permission they lack,
//! and rights are re-read inside the transaction that uses them.
//!
//! The matrix: a caller holding exactly the permissions every operation
//! needs, against targets whose permissions are a strict subset of the
//! caller's, equal to them, or a strict superset (directly, through a group,
//! or kept by an open deactivation), for every operation on another user.

use memberdesk::domain::groups::{Access, Change};
use memberdesk::domain::lifecycle::{self, DeactivateOptions};
use memberdesk::domain::{Actor, groups};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, group_id, snapshot, user_id};

/// What the caller holds: enough for every operation in the matrix.
const CALLER: &[&str] = &[
    "auth.view_user",
    "auth.change_user",
    "auth.delete_user",
    "polls.view_vote",
    "admin.view_logentry",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Relation {
    Subset,
    Equal,
    /// One more permission than the caller, granted directly.
    SupersetDirect,
    /// One more, through a group.
    SupersetByGroup,
    /// One more, taken by a deactivation that will give it back.
    SupersetKept,
}

impl Relation {
    fn in_scope(self) -> bool {
        matches!(self, Relation::Subset | Relation::Equal)
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    UpdateUser,
    SetPassword,
    AddUserToGroup,
    RemoveUserFromGroup,
    GrantPermission,
    RevokePermission,
    DeactivateUser,
    DeactivateUsers,
    ReactivateUser,
    ReactivateUserRestoringAccess,
    DeleteUser,
    DeletionPlan,
    ExportUserData,
}

const OPS: [Op; 13] = [
    Op::UpdateUser,
    Op::SetPassword,
    Op::AddUserToGroup,
    Op::RemoveUserFromGroup,
    Op::GrantPermission,
    Op::RevokePermission,
    Op::DeactivateUser,
    Op::DeactivateUsers,
    Op::ReactivateUser,
    Op::ReactivateUserRestoringAccess,
    Op::DeleteUser,
    Op::DeletionPlan,
    Op::ExportUserData,
];

impl Op {
    fn document(self) -> &'static str {
        match self {
            Op::UpdateUser => {
                "mutation($id: ID!) { updateUser(id: $id, input: {firstName: \"Changed\"}) { id } }"
            }
            Op::SetPassword => {
                "mutation($id: ID!) { setPassword(userId: $id, password: \"plum tunnel cobalt harvest\") }"
            }
            Op::AddUserToGroup => {
                "mutation($id: ID!, $g: ID!) { addUserToGroup(userId: $id, groupId: $g) { id } }"
            }
            Op::RemoveUserFromGroup => {
                "mutation($id: ID!, $g: ID!) { removeUserFromGroup(userId: $id, groupId: $g) { id } }"
            }
            Op::GrantPermission => {
                "mutation($id: ID!) { grantPermission(userId: $id, permission: \"polls.view_vote\") { id } }"
            }
            Op::RevokePermission => {
                "mutation($id: ID!) { revokePermission(userId: $id, permission: \"auth.view_user\") { id } }"
            }
            Op::DeactivateUser => {
                "mutation($id: ID!) { deactivateUser(id: $id) { sessionsRevoked } }"
            }
            Op::DeactivateUsers => {
                "mutation($id: ID!) { deactivateUsers(ids: [$id]) { deactivated { id } skipped { id code } } }"
            }
            Op::ReactivateUser => {
                "mutation($id: ID!) { reactivateUser(id: $id) { user { isActive } } }"
            }
            Op::ReactivateUserRestoringAccess => {
                "mutation($id: ID!) { reactivateUser(id: $id, restoreAccess: true) { user { isActive } } }"
            }
            Op::DeleteUser => "mutation($id: ID!) { deleteUser(id: $id) { deleted } }",
            Op::DeletionPlan => "query($id: ID!) { deletionPlan(userId: $id) { allowed } }",
            Op::ExportUserData => "query($id: ID!) { exportUserData(userId: $id) }",
        }
    }

    fn starts_deactivated(self) -> bool {
        matches!(self, Op::ReactivateUser | Op::ReactivateUserRestoringAccess)
    }
}

/// A target in `relation` to the caller, prepared for `op`.
async fn target(app: &TestApp, n: usize, relation: Relation, op: Op, empty_group: i64) -> i64 {
    let name = format!("target{n}");
    let user = app.user(&name, true, false).await;
    let mut perms: Vec<&str> = match relation {
        Relation::Subset => vec!["auth.view_user"],
        _ => CALLER.to_vec(),
    };
    if matches!(relation, Relation::SupersetDirect | Relation::SupersetKept) {
        perms.push("auth.add_group");
    }
    for perm in perms {
        let access = Access::Permission(perm);
        groups::change_access(app.pool(), &Actor::System, user.id, access, Change::Give)
            .await
            .expect("grant");
    }
    if relation == Relation::SupersetByGroup {
        let extra = vec!["auth.add_group".to_string()];
        let group = groups::create_group(app.pool(), &Actor::System, &format!("g{n}"), &extra)
            .await
            .expect("group");
        let access = Access::Group(group.id);
        groups::change_access(app.pool(), &Actor::System, user.id, access, Change::Give)
            .await
            .expect("member");
    }
    if matches!(op, Op::RemoveUserFromGroup) {
        let access = Access::Group(empty_group);
        groups::change_access(app.pool(), &Actor::System, user.id, access, Change::Give)
            .await
            .expect("member");
    }
    if relation == Relation::SupersetKept || op.starts_deactivated() {
        lifecycle::deactivate_user(
            app.pool(),
            &Actor::System,
            user.id,
            DeactivateOptions::default(),
        )
        .await
        .expect("deactivate");
    }
    user.id
}

async fn run(app: &TestApp, token: &str, op: Op, target: i64, group: i64) -> Value {
    let vars = json!({ "id": memberdesk::ids::encode(memberdesk::ids::Kind::User, target), "g": group_id(group) });
    app.gql(Some(token), op.document(), vars).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_matrix() {
    let app = TestApp::spawn().await;
    let (_, token) = app.staff_with("caller", CALLER).await;
    let empty_group = groups::create_group(app.pool(), &Actor::System, "Empty", &[])
        .await
        .expect("group")
        .id;
    let relations = [
        Relation::Subset,
        Relation::Equal,
        Relation::SupersetDirect,
        Relation::SupersetByGroup,
        Relation::SupersetKept,
    ];
    let mut n = 0;
    for relation in relations {
        for op in OPS {
            n += 1;
            let id = target(&app, n, relation, op, empty_group).await;
            let before = snapshot(app.pool()).await;
            let resp = run(&app, &token, op, id, empty_group).await;
            let case = format!("{op:?} on a target whose permissions are {relation:?}");
            if relation.in_scope() {
                assert!(resp.get("errors").is_none(), "{case}: {resp:#}");
                continue;
            }
            if matches!(op, Op::DeactivateUsers) {
                let data = &resp["data"]["deactivateUsers"];
                assert_eq!(data["deactivated"], json!([]), "{case}: {resp:#}");
                assert_eq!(data["skipped"][0]["code"], "FORBIDDEN", "{case}: {resp:#}");
            } else {
                assert_eq!(
                    resp["errors"][0]["extensions"]["code"], "FORBIDDEN",
                    "{case}: {resp:#}"
                );
            }
            assert_eq!(
                snapshot(app.pool()).await,
                before,
                "{case}: refused but changed the database"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_acts_on_anyone_and_staff_never_on_a_superuser() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let (_, staff) = app.staff_with("staff", CALLER).await;
    let other_root = app.user("root2", true, true).await;
    let wide = target(&app, 1, Relation::SupersetDirect, Op::UpdateUser, 0).await;
    let update = Op::UpdateUser.document();
    let vars = |id: i64| json!({ "id": memberdesk::ids::encode(memberdesk::ids::Kind::User, id) });
    app.ok(Some(&root), update, vars(wide)).await;
    app.ok(Some(&root), update, vars(other_root.id)).await;
    let before = snapshot(app.pool()).await;
    assert_eq!(
        app.err_code(Some(&staff), update, vars(other_root.id))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(snapshot(app.pool()).await, before);
}

/// The takeover the scope rule closes: set a better-endowed colleague's
/// password, log in as them, grant yourself what they hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_takeover_of_a_better_endowed_account() {
    let app = TestApp::spawn().await;
    let (_, token) = app.staff_with("mallory", &["auth.change_user"]).await;
    let (victim, _) = app
        .staff_with(
            "victim",
            &[
                "auth.change_user",
                "auth.delete_user",
                "admin.view_logentry",
            ],
        )
        .await;
    let before = snapshot(app.pool()).await;
    let code = app
        .err_code(
            Some(&token),
            "mutation($id: ID!) { setPassword(userId: $id, password: \"plum tunnel cobalt harvest\") }",
            json!({ "id": user_id(&victim) }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(snapshot(app.pool()).await, before);
    // Refusals are counted for the operators.
    let metrics = app.metrics().await;
    let forbidden = metrics
        .lines()
        .find(|l| l.starts_with("memberdesk_graphql_errors_total{code=\"FORBIDDEN\"}"))
        .unwrap_or_else(|| panic!("no FORBIDDEN counter in /metrics:\n{metrics}"));
    assert!(!forbidden.ends_with(" 0"), "{forbidden}");
    // The victim's own password still works.
    app.login("victim", PASSWORD).await;
}

/// Rights lost by an earlier mutation of the same request are lost for the
/// later ones: each mutation re-reads its caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_are_reread_by_each_mutation_of_a_request() {
    let app = TestApp::spawn().await;
    let (me, token) = app.staff_with("me", &["auth.change_user"]).await;
    let other = app.user("other", false, false).await;
    let resp = app
        .gql(
            Some(&token),
            "mutation($me: ID!, $other: ID!) {
               a: revokePermission(userId: $me, permission: \"auth.change_user\") { id }
               b: updateUser(id: $other, input: {firstName: \"Changed\"}) { firstName }
             }",
            json!({ "me": user_id(&me), "other": user_id(&other) }),
        )
        .await;
    assert!(resp["data"]["a"]["id"].is_string(), "{resp:#}");
    let b = resp["errors"]
        .as_array()
        .and_then(|errs| errs.iter().find(|e| e["path"][0] == "b"))
        .unwrap_or_else(|| panic!("b must fail: {resp:#}"));
    assert_eq!(b["extensions"]["code"], "FORBIDDEN", "{resp:#}");
    let first_name: String = sqlx::query_scalar("SELECT first_name FROM users WHERE id = $1")
        .bind(other.id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(first_name, "");
}

/// A target promoted to superuser while its new password was being hashed
/// keeps its old password: the rule is checked again under the row lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_password_rechecks_the_target_under_its_lock() {
    let app = TestApp::spawn().await;
    let (_, token) = app.staff_with("staff", &["auth.change_user"]).await;
    let target = app.user("target", true, false).await;
    let mut holder = app.pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(target.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let request = {
        let app_addr = app.addr.clone();
        let client = app.client.clone();
        let id = user_id(&target);
        tokio::spawn(async move {
            let body = json!({
                "query": "mutation($id: ID!) { setPassword(userId: $id, password: \"plum tunnel cobalt harvest\") }",
                "variables": { "id": id },
            });
            let resp = client
                .post(format!("{app_addr}/graphql"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        })
    };
    // Let the request pass its early checks and wait on the row lock.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    sqlx::query("UPDATE users SET is_superuser = true WHERE id = $1")
        .bind(target.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.commit().await.unwrap();
    let resp = request.await.unwrap();
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{resp:#}"
    );
    app.login("target", PASSWORD).await;
}

/// `revokeStaff` changes the staff flag, which only a superuser may do; a
/// deactivation and a plain reactivation cannot clear it behind
/// `updateUser`'s back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_superuser_revokes_the_staff_flag() {
    let app = TestApp::spawn().await;
    let (_, staff) = app.staff_with("staff", &["auth.change_user"]).await;
    let (_, root) = app.superuser("root").await;
    let target = app.user("target", true, false).await;
    let id = json!({ "id": user_id(&target) });
    for doc in [
        "mutation($id: ID!) { deactivateUser(id: $id, input: {revokeStaff: true}) { staffRevoked } }",
        "mutation($id: ID!) { deactivateUsers(ids: [$id], input: {revokeStaff: true}) { deactivated { id } } }",
    ] {
        let before = snapshot(app.pool()).await;
        assert_eq!(
            app.err_code(Some(&staff), doc, id.clone()).await,
            "FORBIDDEN",
            "{doc}"
        );
        assert_eq!(snapshot(app.pool()).await, before, "{doc}");
    }
    let done = app
        .ok(
            Some(&root),
            "mutation($id: ID!) { deactivateUser(id: $id, input: {revokeStaff: true}) { staffRevoked } }",
            id,
        )
        .await;
    assert_eq!(done["deactivateUser"]["staffRevoked"], true);
}

/// Setting a group's permissions to what they already are changes nothing
/// and writes no audit entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_the_same_group_permissions_is_not_audited() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let perms = vec!["auth.view_user".to_string()];
    let group = groups::create_group(app.pool(), &Actor::System, "Viewers", &perms)
        .await
        .unwrap();
    let audited = "SELECT count(*) FROM audit_entries WHERE action = 'GROUP_PERMISSIONS_SET'";
    let before = app.count(audited).await;
    app.ok(
        Some(&root),
        "mutation($g: ID!) { setGroupPermissions(groupId: $g, permissions: [\"auth.view_user\"]) { id } }",
        json!({ "g": group_id(group.id) }),
    )
    .await;
    assert_eq!(app.count(audited).await, before);
}
