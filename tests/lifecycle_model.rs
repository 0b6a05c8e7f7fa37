//! Model-based test of the member lifecycle: random sequences of deactivate,
//! reactivate, anonymize and delete by random actors, run against the
//! domain layer on a real database and against a small in-memory model of
//! who is active, superuser, anonymized or gone. After every step the
//! database must match the model, keep an active superuser, and hold one
//! audit entry per change; proptest shrinks a failure to a minimal sequence.
//!
//! The guard layer (staff, `auth.change_user`, `auth.delete_user`,
//! superuser-only anonymization) is GraphQL's and tested there; here an
//! operation the guards would refuse is simply not attempted.

#[path = "api/helpers.rs"]
// Shared with tests/api: this binary uses only part of the helpers.
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeSet;

use memberdesk::domain::actor::CurrentUser;
use memberdesk::domain::deletion::{self, DeletePolicy, DeleteUser};
use memberdesk::domain::erasure::Erase;
use memberdesk::domain::lifecycle::{self, DeactivateOptions, Restore};
use memberdesk::domain::{Actor, Mode};
use memberdesk::error::AppError;
use proptest::prelude::*;

use helpers::TestDb;

const USERS: usize = 5;

#[derive(Debug, Clone, Copy)]
enum Op {
    Deactivate,
    Reactivate,
    Anonymize,
    Delete(DeletePolicy),
}

#[derive(Debug, Clone, Copy)]
struct Step {
    op: Op,
    actor: usize,
    target: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    exists: bool,
    active: bool,
    superuser: bool,
    anonymized: bool,
}

/// Users 0 and 1 are superusers, 2 is staff with the lifecycle
/// permissions, 3 and 4 are plain members.
fn initial() -> Vec<Member> {
    (0..USERS)
        .map(|i| Member {
            exists: true,
            active: true,
            superuser: i < 2,
            anonymized: false,
        })
        .collect()
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        3 => Just(Op::Deactivate),
        3 => Just(Op::Reactivate),
        1 => Just(Op::Anonymize),
        1 => Just(Op::Delete(DeletePolicy::Protect)),
        1 => Just(Op::Delete(DeletePolicy::SetNull)),
        1 => Just(Op::Delete(DeletePolicy::Cascade)),
    ];
    (op, 0..USERS, 0..USERS).prop_map(|(op, actor, target)| Step { op, actor, target })
}

/// What the domain must answer, and the model after it. `None`: the guard
/// layer would refuse the call (or the actor could not be logged in).
fn expect(model: &[Member], s: Step) -> Option<(Result<(), &'static str>, Vec<Member>)> {
    let actor = model[s.actor];
    if !actor.exists || !actor.active {
        return None;
    }
    let staff_with_perms = s.actor == 2 || actor.superuser;
    match s.op {
        Op::Anonymize if !actor.superuser => return None,
        _ if !staff_with_perms => return None,
        _ => {}
    }
    let target = model[s.target];
    let mut next = model.to_vec();
    if !target.exists {
        return Some((Err("NOT_FOUND"), next));
    }
    if s.actor == s.target {
        return Some((Err("SELF_ACTION"), next));
    }
    let deleting = matches!(s.op, Op::Delete(_));
    if target.anonymized && !deleting {
        return Some((Err("ANONYMIZED"), next));
    }
    if target.superuser && !actor.superuser {
        return Some((Err("FORBIDDEN"), next));
    }
    let removes_superuser = target.active && target.superuser && !matches!(s.op, Op::Reactivate);
    let other_superusers = model
        .iter()
        .enumerate()
        .filter(|(i, m)| *i != s.target && m.exists && m.active && m.superuser)
        .count();
    if removes_superuser && other_superusers == 0 {
        return Some((Err("LAST_SUPERUSER"), next));
    }
    let t = &mut next[s.target];
    match s.op {
        Op::Deactivate => t.active = false,
        Op::Reactivate => t.active = true,
        Op::Anonymize => {
            t.active = false;
            t.superuser = false;
            t.anonymized = true;
        }
        // No member here has contributions, so PROTECT deletes too.
        Op::Delete(_) => t.exists = false,
    }
    Some((Ok(()), next))
}

fn code(err: &AppError) -> &'static str {
    err.code()
}

/// The staff member's permissions (user 2; superusers hold every one).
const STAFF_PERMISSIONS: [&str; 3] = ["auth.change_user", "auth.delete_user", "auth.view_user"];

/// The actor of a step, as a request would have it: a live session, and
/// the permissions the model gives them. The domain re-reads both inside
/// each operation, so they are written to the database, not just stated:
/// a deactivation strips the staff member's grants, and the model (which
/// leaves permissions to the guard tests) hands them back before they act.
async fn actor(db: &TestDb, id: i64) -> Actor {
    let (username, is_staff, is_superuser): (String, bool, bool) =
        sqlx::query_as("SELECT username, is_staff, is_superuser FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO user_permissions (user_id, permission_id) \
         SELECT $1, id FROM permissions WHERE app_label || '.' || codename = ANY($2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(STAFF_PERMISSIONS.map(String::from).to_vec())
    .execute(&db.pool)
    .await
    .unwrap();
    let session_id: i64 = sqlx::query_scalar(
        "INSERT INTO sessions (token_hash, user_id, expires_at) \
         VALUES (sha256(random()::text::bytea), $1, now() + interval '1 hour') RETURNING id",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let permissions: BTreeSet<String> = STAFF_PERMISSIONS.iter().map(|p| p.to_string()).collect();
    Actor::User(CurrentUser {
        id,
        username,
        session_id,
        is_staff,
        is_superuser,
        permissions,
    })
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let db = TestDb::new().await;
    let mut ids = Vec::new();
    for i in 0..USERS {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, username_key, is_staff, is_superuser) VALUES ($1, $1, $2, $3) RETURNING id",
        )
        .bind(format!("member{i}"))
        .bind(i < 3)
        .bind(i < 2)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let mut model = initial();
    let mut changes = 0i64;
    for s in steps {
        let Some((expected, next)) = expect(&model, s) else {
            continue;
        };
        let (pool, who, target) = (&db.pool, actor(&db, ids[s.actor]).await, ids[s.target]);
        let before_active = model[s.target].active;
        let got = match s.op {
            Op::Deactivate => {
                lifecycle::deactivate_user(pool, &who, target, DeactivateOptions::default())
                    .await
                    .map(|_| ())
            }
            Op::Reactivate => {
                lifecycle::reactivate_user(pool, &who, target, Restore::LoginOnly, None)
                    .await
                    .map(|_| ())
            }
            Op::Anonymize => lifecycle::anonymize_user(pool, &who, target, None)
                .await
                .map(|_| ()),
            Op::Delete(policy) => {
                let request = DeleteUser {
                    user_id: target,
                    policy,
                    mode: Mode::Execute,
                    plan_token: None,
                    reason: None,
                    erase: Erase::KeepSnapshots,
                };
                deletion::delete_user(pool, &who, request).await.map(|_| ())
            }
        };
        prop_assert_eq!(got.as_ref().map_err(code).copied(), expected, "{:?}", s);
        if got.is_ok() {
            // Repeating a deactivation or reactivation changes nothing and is not audited.
            let changed = match s.op {
                Op::Deactivate => before_active,
                Op::Reactivate => !before_active,
                _ => true,
            };
            changes += i64::from(changed);
        }
        model = next;

        for (i, m) in model.iter().enumerate() {
            let row: Option<(bool, bool, bool)> =
                sqlx::query_as("SELECT is_active, is_superuser, anonymized_at IS NOT NULL FROM users WHERE id = $1")
                    .bind(ids[i])
                    .fetch_optional(pool)
                    .await
                    .unwrap();
            let actual = row;
            let wanted = m.exists.then_some((m.active, m.superuser, m.anonymized));
            prop_assert_eq!(actual, wanted, "member{} after {:?}", i, s);
        }
        let superusers: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE is_active AND is_superuser")
                .fetch_one(pool)
                .await
                .unwrap();
        prop_assert!(superusers >= 1, "no active superuser after {:?}", s);
        let audited: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_entries
              WHERE action IN ('USER_DEACTIVATED', 'USER_REACTIVATED', 'USER_ANONYMIZED', 'USER_DELETED')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        prop_assert_eq!(
            audited,
            changes,
            "one audit entry per change, after {:?}",
            s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_the_model(steps in proptest::collection::vec(step(), 1..25)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(steps))?;
    }
}
