//! The scope rule: nobody acts on an account holding a permission they lack,
//! and rights are re-read inside the transaction that uses them.
//!
//! The matrix: a caller holding exactly the permissions every operation
//! needs, against targets whose permissions are a strict subset of the
//! caller's, equal to them, or a strict superset (directly, through a group,
//! or kept by an open deactivation), for every operation on another user.

use memberdesk::domain::lifecycle::{self, DeactivateOptions};
use memberdesk::domain::{Actor, groups};
use serde_json::{Value, json};

use crate::helpers::{Call, PASSWORD, TestApp, group_id, snapshot, user_id};

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
    /// The caller's call of this operation on `target` (`group`: the group
    /// the membership operations use).
    fn call<'a>(self, app: &'a TestApp, token: &str, target: &str, group: &str) -> Call<'a> {
        let new_password = "plum tunnel cobalt harvest";
        match self {
            Op::UpdateUser => app.update_user(token, target, json!({ "firstName": "Changed" })),
            Op::SetPassword => app.set_password(token, target, new_password),
            Op::AddUserToGroup => app.add_to_group(token, target, group),
            Op::RemoveUserFromGroup => app.remove_from_group(token, target, group),
            Op::GrantPermission => app.grant(token, target, "polls.view_vote"),
            Op::RevokePermission => app.revoke(token, target, "auth.view_user"),
            Op::DeactivateUser => app.deactivate(token, target),
            Op::DeactivateUsers => app.deactivate_users(token).ids(vec![target]),
            Op::ReactivateUser => app.reactivate(token, target),
            Op::ReactivateUserRestoringAccess => app.reactivate(token, target).restore_access(),
            Op::DeleteUser => app.delete_user(token, target),
            Op::DeletionPlan => app.deletion_plan(token, target),
            Op::ExportUserData => app.export_user_data(token, target),
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
        groups::grant_permission(app.pool(), &Actor::System, user.id, perm)
            .await
            .expect("grant");
    }
    if relation == Relation::SupersetByGroup {
        let extra = vec!["auth.add_group".to_string()];
        let group = groups::create_group(app.pool(), &Actor::System, &format!("g{n}"), &extra)
            .await
            .expect("group");
        groups::add_user_to_group(app.pool(), &Actor::System, user.id, group.id)
            .await
            .expect("member");
    }
    if matches!(op, Op::RemoveUserFromGroup) {
        groups::add_user_to_group(app.pool(), &Actor::System, user.id, empty_group)
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

/// The id of the user with key `id`.
fn id(user: i64) -> String {
    memberdesk::ids::encode(memberdesk::ids::Kind::User, user)
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
            let target_id = target(&app, n, relation, op, empty_group).await;
            let before = snapshot(app.pool()).await;
            let call = op.call(&app, &token, &id(target_id), &group_id(empty_group));
            let resp = call.send().await;
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
    let update = |token: &str, user: i64| Op::UpdateUser.call(&app, token, &id(user), "");
    update(&root, wide).ok().await;
    update(&root, other_root.id).ok().await;
    update(&staff, other_root.id).refused("FORBIDDEN").await;
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
    app.set_password(&token, &user_id(&victim), "plum tunnel cobalt harvest")
        .refused("FORBIDDEN")
        .await;
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
    let set = app.set_password(&token, &user_id(&target), "plum tunnel cobalt harvest");
    let body = json!({ "query": set.document(), "variables": set.variables() });
    let request = tokio::spawn(app.post("/graphql").bearer_auth(token).json(&body).send());
    // Let the request pass its early checks and wait on the row lock.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    sqlx::query("UPDATE users SET is_superuser = true WHERE id = $1")
        .bind(target.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.commit().await.unwrap();
    let resp: Value = request.await.unwrap().unwrap().json().await.unwrap();
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
    let id = user_id(&target);
    let revoke_staff = json!({ "revokeStaff": true });
    for call in [
        app.deactivate(&staff, &id),
        app.deactivate_users(&staff).ids(vec![id.as_str()]),
    ] {
        call.input(revoke_staff.clone()).refused("FORBIDDEN").await;
    }
    let done = app
        .deactivate(&root, &id)
        .input(revoke_staff)
        .select("staffRevoked")
        .ok()
        .await;
    assert_eq!(done["staffRevoked"], true);
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
    let before = app.audit_count("GROUP_PERMISSIONS_SET").await;
    app.set_group_permissions(&root, &group_id(group.id), &["auth.view_user"])
        .ok()
        .await;
    assert_eq!(app.audit_count("GROUP_PERMISSIONS_SET").await, before);
}
