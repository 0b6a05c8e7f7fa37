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

use memberdesk::domain::{Actor, groups, polls};
use memberdesk::ids::{self, Kind};
use serde_json::json;

use crate::helpers::{Call, PASSWORD, TestApp, group_id, snapshot, user_id};

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

/// The call a caller (`None`: anonymous) makes on its own targets.
type MakeCall = for<'a> fn(&'a TestApp, Option<&'a str>, &'a Targets) -> Call<'a>;

struct Case {
    call: MakeCall,
    /// What the guard needs; `None` means any active user may call it.
    perm: Option<&'static str>,
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
    groups::grant_permission(app.pool(), &Actor::System, user, perm)
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
    groups::add_user_to_group(app.pool(), &Actor::System, user, group)
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
            let call = (case.call)(&app, token.as_deref(), target);
            let at = format!("{} as {who:?}", call.field());
            assert!(
                !probe(&app, case.effect, target.label).await,
                "{at}: effect present before the call"
            );
            let before = snapshot(app.pool()).await;
            let resp = call.send().await;
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
            call: |app, who, t| {
                let input = json!({ "username": format!("new_{}", t.label), "password": PASSWORD });
                app.create_user(who, input)
            },
            perm: Some("auth.add_user"),
            effect: "SELECT EXISTS(SELECT 1 FROM users WHERE username = 'new_' || $1 AND NOT is_staff)",
        },
        Case {
            call: |app, who, t| app.update_user(who, &t.user, json!({ "firstName": "Changed" })),
            perm: Some("auth.change_user"),
            effect: "SELECT first_name = 'Changed' FROM users WHERE username = 't_' || $1",
        },
        Case {
            // Another user's password; setting your own is tested below.
            call: |app, who, t| app.set_password(who, &t.user, "a brand new passphrase"),
            perm: Some("auth.change_user"),
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
            call: |app, who, t| {
                app.create_group(who, &format!("made_{}", t.label), &["auth.add_group"])
            },
            perm: Some("auth.add_group"),
            effect: "SELECT EXISTS(SELECT 1 FROM groups g JOIN group_permissions gp ON gp.group_id = g.id \
                     JOIN permissions p ON p.id = gp.permission_id \
                     WHERE g.name = 'made_' || $1 AND p.codename = 'add_group')",
        },
        Case {
            call: |app, who, t| app.set_group_permissions(who, &t.group, &["auth.change_group"]),
            perm: Some("auth.change_group"),
            effect: "SELECT EXISTS(SELECT 1 FROM groups g JOIN group_permissions gp ON gp.group_id = g.id \
                     JOIN permissions p ON p.id = gp.permission_id \
                     WHERE g.name = 'g_' || $1 AND p.codename = 'change_group')",
        },
        Case {
            call: |app, who, t| app.add_to_group(who, &t.user, &t.group),
            perm: Some("auth.change_user"),
            effect: "SELECT EXISTS(SELECT 1 FROM user_groups ug JOIN users u ON u.id = ug.user_id \
                     JOIN groups g ON g.id = ug.group_id WHERE u.username = 't_' || $1 AND g.name = 'g_' || $1)",
        },
        Case {
            call: |app, who, t| app.remove_from_group(who, &t.user, &t.member_group),
            perm: Some("auth.change_user"),
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
            // A permission every permitted caller holds, so only the guard can refuse.
            call: |app, who, t| app.grant(who, &t.user, "auth.change_user"),
            perm: Some("auth.change_user"),
            effect: "SELECT EXISTS(SELECT 1 FROM user_permissions up JOIN users u ON u.id = up.user_id \
                     JOIN permissions p ON p.id = up.permission_id \
                     WHERE u.username = 't_' || $1 AND p.codename = 'change_user')",
        },
        Case {
            call: |app, who, t| app.revoke(who, &t.user, "polls.view_vote"),
            perm: Some("auth.change_user"),
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
            call: |app, who, t| app.create_question(who, &format!("asked_{}", t.label), &["a", "b"]),
            perm: Some("polls.add_question"),
            effect: "SELECT count(*) = 2 FROM choices c JOIN questions q ON q.id = c.question_id \
                     JOIN users u ON u.id = q.created_by WHERE q.text = 'asked_' || $1 AND u.username = 'c_' || $1",
        },
        Case {
            call: |app, who, t| app.vote(who, &t.choice),
            perm: None,
            effect: "SELECT EXISTS(SELECT 1 FROM votes v JOIN questions q ON q.id = v.question_id \
                     JOIN users u ON u.id = v.user_id WHERE q.text = 'q_' || $1 AND u.username = 'c_' || $1)",
        },
    ])
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_escalation_through_direct_grants() {
    let app = TestApp::spawn().await;
    let (me, token) = app
        .staff_with("granter", &["auth.change_user", "auth.view_user"])
        .await;
    let other = app.user("other", false, false).await;

    for (target, perm) in [(&other, "auth.delete_user"), (&me, "auth.add_user")] {
        app.grant(&token, &user_id(target), perm)
            .refused("FORBIDDEN")
            .await;
    }

    // What the granter holds, they may pass on.
    app.grant(&token, &user_id(&other), "auth.view_user")
        .ok()
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

    for call in [
        app.create_group(&token, "Sneaky", &["auth.view_group", "auth.delete_user"]),
        // Their own group would hand the permission straight back to them.
        app.set_group_permissions(
            &token,
            &group_id(mine),
            &["auth.view_group", "auth.delete_user"],
        ),
        app.set_group_permissions(
            &token,
            &group_id(legacy),
            &["auth.delete_user", "admin.view_logentry"],
        ),
    ] {
        call.refused("FORBIDDEN").await;
    }

    // Taking a permission away is never an escalation, even one they lack.
    app.set_group_permissions(&token, &group_id(legacy), &["auth.view_group"])
        .ok()
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
        app.add_to_group(&token, &user_id(target), &group_id(admins))
            .refused("FORBIDDEN")
            .await;
    }

    app.add_to_group(&token, &user_id(&other), &group_id(helpers_group))
        .ok()
        .await;
    assert!(is_member(&app, other.id, helpers_group).await);

    // Holding counts permissions from groups too, read afresh on each request.
    let deleters = group_as_system(&app, "Deleters", &["auth.delete_user"]).await;
    add_to_group_as_system(&app, me.id, deleters).await;
    app.add_to_group(&token, &user_id(&other), &group_id(admins))
        .ok()
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
        let input = json!({ "username": "promoted", "password": PASSWORD, flag: true });
        app.create_user(&token, input).refused("FORBIDDEN").await;
    }
    for (target, input) in [
        (&plain, json!({ "isStaff": true })),
        (&plain, json!({ "isSuperuser": true })),
        (&me, json!({ "isSuperuser": true })),
        (&colleague, json!({ "isStaff": false })),
    ] {
        app.update_user(&token, &user_id(target), input)
            .refused("FORBIDDEN")
            .await;
    }

    // A superuser may set them.
    let input = json!({ "username": "promoted", "password": PASSWORD, "isStaff": true });
    app.create_user(&root, input).ok().await;
    app.update_user(&root, &user_id(&plain), json!({ "isStaff": true }))
        .ok()
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

    for call in [
        app.update_user(&token, &root_id, json!({ "firstName": "Pwned" })),
        app.set_password(&token, &root_id, "a brand new passphrase"),
        app.grant(&token, &root_id, "auth.view_user"),
        app.revoke(&token, &root_id, "polls.view_vote"),
        app.add_to_group(&token, &root_id, &group_id(empty)),
        app.remove_from_group(&token, &root_id, &group_id(member_of)),
    ] {
        call.refused("FORBIDDEN").await;
    }
    // The password really is unchanged.
    app.login("root", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demoting_the_last_active_superuser_is_refused() {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let demote = || app.update_user(&token, &user_id(&root), json!({ "isSuperuser": false }));

    demote().refused("LAST_SUPERUSER").await;

    // An inactive superuser cannot take over, so it does not count.
    app.user("backup", true, true).await;
    deactivate_directly(&app, "backup").await;
    demote().refused("LAST_SUPERUSER").await;

    sqlx::query("UPDATE users SET is_active = true WHERE username = 'backup'")
        .execute(app.pool())
        .await
        .unwrap();
    demote().ok().await;
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
    let me = user_id(&app.user("member", false, false).await);
    let token = app.login("member", PASSWORD).await;
    let changed = app
        .set_password(&token, &me, "a brand new passphrase")
        .current_password(PASSWORD)
        .ok()
        .await;
    assert_eq!(changed, true);
    app.login("member", "a brand new passphrase").await;

    // Once deactivated, not even that.
    deactivate_directly(&app, "member").await;
    app.set_password(&token, &me, "yet another passphrase")
        .current_password("a brand new passphrase")
        .refused("UNAUTHENTICATED")
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
