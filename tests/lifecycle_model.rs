//! Model-based test of the member lifecycle and of deletions: random
//! sequences of deactivate, reactivate, anonymize and delete (one user, a
//! group, a question, or a bulk selection of users or questions, under every
//! policy), of votes, of the soft delete of questions (archive, restore, and
//! the purge of archived ones) by random actors, run against the domain
//! layer on a real database and against a small in-memory model of who is
//! active, superuser, anonymized or gone, which groups have which members
//! and which questions are archived and have which votes. After every step the database must match the model,
//! keep an active superuser, and hold one audit entry per change (one per
//! record a bulk deletion deletes); a bulk deletion is previewed first and
//! confirmed with the preview's token, which must fit. proptest shrinks a
//! failure to a minimal sequence.
//!
//! The guard layer (staff, the permission each operation needs,
//! superuser-only anonymization) is GraphQL's and tested there; here an
//! operation the guards would refuse is simply not attempted.

#[path = "api/helpers.rs"]
// Shared with tests/api: this binary uses only part of the helpers.
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeSet;

use memberdesk::domain::actor::CurrentUser;
use memberdesk::domain::archive::{self, Purge};
use memberdesk::domain::deletion::{
    self, BulkDelete, BulkDeletion, DeletePolicy, DeleteRequest, DeleteUser, QuestionSelection,
    TargetKind,
};
use memberdesk::domain::erasure::Erase;
use memberdesk::domain::lifecycle::{self, DeactivateOptions, Restore, Selection};
use memberdesk::domain::validation::Reason;
use memberdesk::domain::{Actor, Mode, polls};
use memberdesk::error::AppError;
use proptest::prelude::*;
use sqlx::PgPool;

use helpers::TestDb;

const USERS: usize = 5;
const GROUPS: usize = 2;
const QUESTIONS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Op {
    Deactivate,
    Reactivate,
    Anonymize,
    Delete(DeletePolicy),
    DeleteGroup(DeletePolicy, usize),
    DeleteQuestion(DeletePolicy, usize),
    /// The users whose bit is set.
    DeleteUsers(DeletePolicy, u8),
    /// The questions whose bit is set.
    DeleteQuestions(DeletePolicy, u8),
    /// The actor votes for the question's first choice.
    Vote(usize),
    Archive(usize),
    RestoreQuestion(usize),
    /// `purge-archived --older-than-days 0` (as the system, in batches of 2).
    Purge,
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
    /// In group 0 (group 1 has no members).
    in_group: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    exists: bool,
    archived: bool,
    author: Option<usize>,
    voters: BTreeSet<usize>,
    /// Votes whose voter was deleted under SET_NULL.
    detached: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    members: Vec<Member>,
    groups: [bool; GROUPS],
    questions: Vec<Question>,
}

/// Users 0 and 1 are superusers, 2 is staff with the lifecycle and deletion
/// permissions, 3 and 4 are plain members of group 0. Group 1 carries a
/// permission the staff member lacks. Member 4 asked question 0, member 3
/// voted on it, member 4 voted on question 1; question 2 has no votes.
fn initial() -> Model {
    let members = (0..USERS)
        .map(|i| Member {
            exists: true,
            active: true,
            superuser: i < 2,
            anonymized: false,
            in_group: i >= 3,
        })
        .collect();
    let question = |author: Option<usize>, voters: &[usize]| Question {
        exists: true,
        archived: false,
        author,
        voters: voters.iter().copied().collect(),
        detached: 0,
    };
    Model {
        members,
        groups: [true, true],
        questions: vec![
            question(Some(4), &[3]),
            question(None, &[4]),
            question(None, &[]),
        ],
    }
}

fn policy() -> impl Strategy<Value = DeletePolicy> {
    prop_oneof![
        Just(DeletePolicy::Protect),
        Just(DeletePolicy::SetNull),
        Just(DeletePolicy::Cascade),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        3 => Just(Op::Deactivate),
        3 => Just(Op::Reactivate),
        1 => Just(Op::Anonymize),
        3 => policy().prop_map(Op::Delete),
        1 => (policy(), 0..GROUPS).prop_map(|(p, g)| Op::DeleteGroup(p, g)),
        1 => (policy(), 0..QUESTIONS).prop_map(|(p, q)| Op::DeleteQuestion(p, q)),
        2 => (policy(), 1..32u8).prop_map(|(p, m)| Op::DeleteUsers(p, m)),
        1 => (policy(), 1..8u8).prop_map(|(p, m)| Op::DeleteQuestions(p, m)),
        2 => (0..QUESTIONS).prop_map(Op::Vote),
        2 => (0..QUESTIONS).prop_map(Op::Archive),
        1 => (0..QUESTIONS).prop_map(Op::RestoreQuestion),
        1 => Just(Op::Purge),
    ];
    (op, 0..USERS, 0..USERS).prop_map(|(op, actor, target)| Step { op, actor, target })
}

/// What the domain must answer (the skipped records of a bulk deletion, by
/// index, or a refusal's code), the model after it, and how many audit
/// entries it writes.
type Expected = (Result<Vec<(usize, &'static str)>, &'static str>, Model, i64);

fn refused(model: &Model, code: &'static str) -> Option<Expected> {
    Some((Err(code), model.clone(), 0))
}

fn done(next: Model, audited: i64) -> Option<Expected> {
    Some((Ok(Vec::new()), next, audited))
}

impl Model {
    fn has_contributions(&self, user: usize) -> bool {
        self.questions
            .iter()
            .any(|q| q.exists && (q.author == Some(user) || q.voters.contains(&user)))
    }

    /// Deletes the user under `policy`: votes detached or deleted,
    /// questions detached, memberships gone.
    fn remove_user(&mut self, user: usize, policy: DeletePolicy) {
        self.members[user].exists = false;
        for q in &mut self.questions {
            if q.voters.remove(&user) && policy == DeletePolicy::SetNull {
                q.detached += 1;
            }
            if q.author == Some(user) {
                q.author = None;
            }
        }
    }

    fn votes(&self, question: usize) -> i64 {
        let q = &self.questions[question];
        q.voters.len() as i64 + q.detached
    }

    /// Active superusers other than `leaving`.
    fn other_superusers(&self, leaving: &[usize]) -> usize {
        (0..USERS)
            .filter(|i| !leaving.contains(i))
            .filter(|i| {
                let m = self.members[*i];
                m.exists && m.active && m.superuser
            })
            .count()
    }
}

/// What the domain must answer. `None`: the guard layer would refuse the
/// call (or the actor could not be logged in).
fn expect(model: &Model, s: Step) -> Option<Expected> {
    if let Op::Purge = s.op {
        return Some(expect_purge(model));
    }
    let actor = model.members[s.actor];
    if !actor.exists || !actor.active {
        return None;
    }
    let staff_with_perms = s.actor == 2 || actor.superuser;
    match s.op {
        Op::Vote(q) => return Some(expect_vote(model, s.actor, q)),
        Op::Anonymize if !actor.superuser => return None,
        _ if !staff_with_perms => return None,
        _ => {}
    }
    match s.op {
        Op::Archive(q) => expect_standing(model, q, true),
        Op::RestoreQuestion(q) => expect_standing(model, q, false),
        Op::DeleteGroup(policy, g) => expect_group(model, actor, policy, g),
        Op::DeleteQuestion(policy, q) => expect_questions(model, policy, 1 << q, true),
        Op::DeleteUsers(policy, mask) => expect_users(model, s.actor, policy, mask),
        Op::DeleteQuestions(policy, mask) => expect_questions(model, policy, mask, false),
        _ => expect_user(model, s),
    }
}

/// One user's deactivation, reactivation, anonymization or deletion.
fn expect_user(model: &Model, s: Step) -> Option<Expected> {
    let (actor, target) = (model.members[s.actor], model.members[s.target]);
    if !target.exists {
        return refused(model, "NOT_FOUND");
    }
    if s.actor == s.target {
        return refused(model, "SELF_ACTION");
    }
    let deleting = matches!(s.op, Op::Delete(_));
    if target.anonymized && !deleting {
        return refused(model, "ANONYMIZED");
    }
    if target.superuser && !actor.superuser {
        return refused(model, "FORBIDDEN");
    }
    if matches!(s.op, Op::Delete(DeletePolicy::Protect)) && model.has_contributions(s.target) {
        return refused(model, "DELETE_PROTECTED");
    }
    let removes_superuser = target.active && target.superuser && !matches!(s.op, Op::Reactivate);
    if removes_superuser && model.other_superusers(&[s.target]) == 0 {
        return refused(model, "LAST_SUPERUSER");
    }
    let mut next = model.clone();
    let t = &mut next.members[s.target];
    // Repeating a deactivation or reactivation changes nothing and is not audited.
    let changed = match s.op {
        Op::Deactivate => std::mem::replace(&mut t.active, false),
        Op::Reactivate => !std::mem::replace(&mut t.active, true),
        _ => true,
    };
    match s.op {
        Op::Deactivate => t.in_group = false,
        Op::Anonymize => {
            (t.active, t.superuser, t.anonymized, t.in_group) = (false, false, true, false);
        }
        Op::Delete(policy) => next.remove_user(s.target, policy),
        _ => {}
    }
    done(next, i64::from(changed))
}

fn expect_group(model: &Model, actor: Member, policy: DeletePolicy, g: usize) -> Option<Expected> {
    if !model.groups[g] {
        return refused(model, "NOT_FOUND");
    }
    // Group 1 carries `polls.view_vote`, which only the superusers hold.
    if g == 1 && !actor.superuser {
        return refused(model, "FORBIDDEN");
    }
    let has_members = g == 0 && model.members.iter().any(|m| m.exists && m.in_group);
    if policy == DeletePolicy::Protect && has_members {
        return refused(model, "DELETE_PROTECTED");
    }
    let mut next = model.clone();
    next.groups[g] = false;
    if g == 0 {
        next.members.iter_mut().for_each(|m| m.in_group = false);
    }
    done(next, 1)
}

/// `deleteQuestion` (`single`) or `deleteQuestions` of the questions in `mask`.
fn expect_questions(
    model: &Model,
    policy: DeletePolicy,
    mask: u8,
    single: bool,
) -> Option<Expected> {
    if policy == DeletePolicy::SetNull {
        return refused(model, "INVALID_INPUT");
    }
    let (mut next, mut skipped, mut deleted) = (model.clone(), Vec::new(), 0);
    for q in (0..QUESTIONS).filter(|q| mask & (1 << q) != 0) {
        let code = match model.questions[q].exists {
            false => "NOT_FOUND",
            true if policy == DeletePolicy::Protect && model.votes(q) > 0 => "DELETE_PROTECTED",
            true => {
                next.questions[q].exists = false;
                next.questions[q].archived = false;
                next.questions[q].voters.clear();
                next.questions[q].detached = 0;
                deleted += 1;
                continue;
            }
        };
        if single {
            return refused(model, code);
        }
        skipped.push((q, code));
    }
    Some((Ok(skipped), next, deleted))
}

/// A vote by `voter` (active) for question `q`'s first choice.
fn expect_vote(model: &Model, voter: usize, q: usize) -> Expected {
    let question = &model.questions[q];
    if !question.exists {
        return (Err("NOT_FOUND"), model.clone(), 0);
    }
    if question.archived || question.voters.contains(&voter) {
        return (Err("INVALID_INPUT"), model.clone(), 0);
    }
    let mut next = model.clone();
    next.questions[q].voters.insert(voter);
    (Ok(Vec::new()), next, 0)
}

/// Archiving (`archived`) or restoring question `q`; the same again
/// changes nothing and is not audited.
fn expect_standing(model: &Model, q: usize, archived: bool) -> Option<Expected> {
    if !model.questions[q].exists {
        return refused(model, "NOT_FOUND");
    }
    let mut next = model.clone();
    let changed = std::mem::replace(&mut next.questions[q].archived, archived) != archived;
    done(next, i64::from(changed))
}

/// The purge of every archived question, with its choices and votes; one
/// `QUESTION_DELETED` entry each.
fn expect_purge(model: &Model) -> Expected {
    let mut next = model.clone();
    let mut purged = 0;
    for q in next.questions.iter_mut().filter(|q| q.exists && q.archived) {
        (q.exists, q.archived, q.detached) = (false, false, 0);
        q.voters.clear();
        purged += 1;
    }
    (Ok(Vec::new()), next, purged)
}

/// `deleteUsers` of the users in `mask`, skipping as a single deletion
/// would refuse, and under PROTECT those with contributions.
fn expect_users(model: &Model, actor: usize, policy: DeletePolicy, mask: u8) -> Option<Expected> {
    let mut skipped = Vec::new();
    let mut eligible = Vec::new();
    for u in (0..USERS).filter(|u| mask & (1 << u) != 0) {
        let m = model.members[u];
        match () {
            _ if !m.exists => skipped.push((u, "NOT_FOUND")),
            _ if u == actor => skipped.push((u, "SELF_ACTION")),
            _ if m.superuser && !model.members[actor].superuser => skipped.push((u, "FORBIDDEN")),
            _ => eligible.push(u),
        }
    }
    let leaving: Vec<usize> = eligible
        .iter()
        .copied()
        .filter(|u| model.members[*u].active && model.members[*u].superuser)
        .collect();
    if !leaving.is_empty() && model.other_superusers(&leaving) == 0 {
        eligible.retain(|u| *u != leaving[0]);
        skipped.push((leaving[0], "LAST_SUPERUSER"));
    }
    if policy == DeletePolicy::Protect {
        let (protected, rest): (Vec<usize>, Vec<usize>) = eligible
            .into_iter()
            .partition(|u| model.has_contributions(*u));
        skipped.extend(protected.into_iter().map(|u| (u, "DELETE_PROTECTED")));
        eligible = rest;
    }
    skipped.sort();
    let mut next = model.clone();
    eligible.iter().for_each(|u| next.remove_user(*u, policy));
    Some((Ok(skipped), next, eligible.len() as i64))
}

/// The staff member's permissions (user 2; superusers hold every one).
const STAFF_PERMISSIONS: [&str; 5] = [
    "auth.change_user",
    "auth.delete_user",
    "auth.view_user",
    "auth.delete_group",
    "polls.delete_question",
];

/// The actor of a step, as a request would have it: a live session, and
/// the permissions the model gives them. The domain re-reads both inside
/// each operation, so they are written to the database, not just stated:
/// a deactivation strips the staff member's grants, and the model (which
/// leaves permissions to the guard tests) hands them back before they act.
async fn actor(pool: &PgPool, id: i64) -> Actor {
    let (username, is_staff, is_superuser): (String, bool, bool) =
        sqlx::query_as("SELECT username, is_staff, is_superuser FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO user_permissions (user_id, permission_id) \
         SELECT $1, id FROM permissions WHERE app_label || '.' || codename = ANY($2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(STAFF_PERMISSIONS.map(String::from).to_vec())
    .execute(pool)
    .await
    .unwrap();
    let session_id: i64 = sqlx::query_scalar(
        "INSERT INTO sessions (token_hash, user_id, expires_at) \
         VALUES (sha256(random()::text::bytea), $1, now() + interval '1 hour') RETURNING id",
    )
    .bind(id)
    .fetch_one(pool)
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

/// The database's ids of the model's users, groups, questions and each
/// question's first choice.
struct Ids {
    users: Vec<i64>,
    groups: Vec<i64>,
    questions: Vec<i64>,
    first_choices: Vec<i64>,
}

impl Ids {
    fn index(all: &[i64], id: i64) -> usize {
        all.iter().position(|x| *x == id).expect("a known id")
    }

    fn selected(all: &[i64], mask: u8) -> Vec<i64> {
        (0..all.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| all[i])
            .collect()
    }
}

async fn scalar(pool: &PgPool, sql: &'static str, bind: i64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The model's records in a fresh database.
async fn populate(pool: &PgPool) -> Ids {
    let mut users = Vec::new();
    for i in 0..USERS {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, username_key, is_staff, is_superuser) VALUES ($1, $1, $2, $3) RETURNING id",
        )
        .bind(format!("member{i}"))
        .bind(i < 3)
        .bind(i < 2)
        .fetch_one(pool)
        .await
        .unwrap();
        users.push(id);
    }
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let sql = "INSERT INTO groups (name) VALUES ('group' || $1) RETURNING id";
        groups.push(scalar(pool, sql, g as i64).await);
    }
    let grant = "INSERT INTO group_permissions (group_id, permission_id) \
                 SELECT $1, id FROM permissions WHERE codename = 'view_vote' RETURNING 1::bigint";
    scalar(pool, grant, groups[1]).await;
    for u in [3, 4] {
        let sql = "INSERT INTO user_groups (user_id, group_id) SELECT $1, min(id) FROM groups RETURNING 1::bigint";
        scalar(pool, sql, users[u]).await;
    }
    let (mut questions, mut first_choices) = (Vec::new(), Vec::new());
    for (q, question) in initial().questions.iter().enumerate() {
        let author = question.author.map(|a| users[a]);
        let id: i64 = sqlx::query_scalar(
            "WITH q AS (INSERT INTO questions (text, created_by) VALUES ('q' || $1, $2) RETURNING id),
                  c AS (INSERT INTO choices (question_id, text, position)
                        SELECT q.id, t, n FROM q, unnest(ARRAY['yes', 'no']) WITH ORDINALITY AS x(t, n))
             SELECT id FROM q",
        )
        .bind(q as i64)
        .bind(author)
        .fetch_one(pool)
        .await
        .unwrap();
        questions.push(id);
        let first = "SELECT id FROM choices WHERE question_id = $1 AND position = 1";
        first_choices.push(scalar(pool, first, id).await);
        for voter in &question.voters {
            sqlx::query(
                "INSERT INTO votes (choice_id, question_id, user_id) \
                 SELECT id, question_id, $2 FROM choices WHERE question_id = $1 AND position = 1",
            )
            .bind(id)
            .bind(users[*voter])
            .execute(pool)
            .await
            .unwrap();
        }
    }
    Ids {
        users,
        groups,
        questions,
        first_choices,
    }
}

fn codes(done: &BulkDeletion, all: &[i64]) -> Vec<(usize, &'static str)> {
    done.skipped
        .iter()
        .map(|(id, why)| (Ids::index(all, *id), why.code()))
        .collect()
}

/// A bulk deletion as an admin does it: previewed, then confirmed with the
/// preview's token, which must still fit (nothing moved in between).
async fn previewed_then_confirmed<S: Clone>(
    run: impl AsyncFn(BulkDelete<S>) -> Result<BulkDeletion, AppError>,
    selection: S,
    policy: DeletePolicy,
    all: &[i64],
) -> Result<Vec<(usize, &'static str)>, AppError> {
    let request = |mode, plan_token| BulkDelete {
        selection: selection.clone(),
        policy,
        mode,
        plan_token,
        reason: Reason::none(),
    };
    let preview = run(request(Mode::Preview, None)).await?;
    let token = Some(preview.plan.token.clone());
    let done = run(request(Mode::Execute, token)).await?;
    assert_eq!(done.deleted, preview.deleted, "the preview is what is done");
    assert_eq!(done.plan.token, preview.plan.token);
    Ok(codes(&done, all))
}

/// Runs one step against the domain layer.
async fn perform(
    pool: &PgPool,
    ids: &Ids,
    s: Step,
) -> Result<Vec<(usize, &'static str)>, AppError> {
    if let Op::Purge = s.op {
        return purge(pool).await;
    }
    let (who, target) = (actor(pool, ids.users[s.actor]).await, ids.users[s.target]);
    let single = |id, policy| DeleteRequest {
        id,
        policy,
        mode: Mode::Execute,
        plan_token: None,
        reason: Reason::none(),
    };
    let none = |r: Result<_, AppError>| r.map(|_| Vec::new());
    match s.op {
        Op::Deactivate => none(
            lifecycle::deactivate_user(pool, &who, target, DeactivateOptions::default())
                .await
                .map(drop),
        ),
        Op::Reactivate => none(
            lifecycle::reactivate_user(pool, &who, target, Restore::LoginOnly, None)
                .await
                .map(drop),
        ),
        Op::Anonymize => none(
            lifecycle::anonymize_user(pool, &who, target, Reason::none())
                .await
                .map(drop),
        ),
        Op::Delete(policy) => {
            let request = DeleteUser {
                user_id: target,
                policy,
                mode: Mode::Execute,
                plan_token: None,
                reason: Reason::none(),
                erase: Erase::KeepSnapshots,
            };
            none(deletion::delete_user(pool, &who, request).await.map(drop))
        }
        Op::DeleteGroup(policy, g) => {
            let request = single(ids.groups[g], policy);
            none(deletion::delete_group(pool, &who, request).await.map(drop))
        }
        Op::DeleteQuestion(policy, q) => {
            let request = single(ids.questions[q], policy);
            none(
                deletion::delete_one(pool, &who, TargetKind::Question, request)
                    .await
                    .map(drop),
            )
        }
        Op::DeleteUsers(policy, mask) => {
            let selection = UserIds(Ids::selected(&ids.users, mask));
            let run = async |r: BulkDelete<UserIds>| {
                let request = BulkDelete {
                    selection: Selection::Ids(r.selection.0),
                    policy: r.policy,
                    mode: r.mode,
                    plan_token: r.plan_token,
                    reason: r.reason,
                };
                deletion::delete_users(pool, &who, request).await
            };
            previewed_then_confirmed(run, selection, policy, &ids.users).await
        }
        Op::DeleteQuestions(policy, mask) => {
            let selection = Ids::selected(&ids.questions, mask);
            let run = async |r: BulkDelete<Vec<i64>>| {
                let request = BulkDelete {
                    selection: QuestionSelection::Ids(r.selection),
                    policy: r.policy,
                    mode: r.mode,
                    plan_token: r.plan_token,
                    reason: r.reason,
                };
                deletion::delete_questions(pool, &who, request).await
            };
            previewed_then_confirmed(run, selection, policy, &ids.questions).await
        }
        Op::Vote(q) => {
            let Actor::User(voter) = &who else {
                unreachable!("a step's actor is a user")
            };
            let vote = polls::cast_vote(pool, voter, ids.first_choices[q]).await;
            none(vote.map(drop))
        }
        Op::Archive(q) => {
            let archived = archive::archive_question(pool, &who, ids.questions[q], Reason::none());
            none(archived.await.map(drop))
        }
        Op::RestoreQuestion(q) => none(
            archive::restore_question(pool, &who, ids.questions[q])
                .await
                .map(drop),
        ),
        Op::Purge => unreachable!("run by the system, before an actor is made"),
    }
}

/// `purge-archived --older-than-days 0 --batch-size 2`, as cron runs it.
async fn purge(pool: &PgPool) -> Result<Vec<(usize, &'static str)>, AppError> {
    let purge = Purge {
        older_than_days: 0,
        batch_size: 2,
        mode: Mode::Execute,
    };
    let run = archive::purge_archived(pool, &Actor::System, purge, |_| {}).await;
    run.map(|_| Vec::new())
}

/// User ids, cloneable (a `Selection` is not).
#[derive(Clone)]
struct UserIds(Vec<i64>);

/// The database must hold what the model says, after `s`.
async fn check(pool: &PgPool, ids: &Ids, model: &Model, s: Step) -> Result<(), TestCaseError> {
    for (i, m) in model.members.iter().enumerate() {
        let actual: Option<(bool, bool, bool)> = sqlx::query_as(
            "SELECT is_active, is_superuser, anonymized_at IS NOT NULL FROM users WHERE id = $1",
        )
        .bind(ids.users[i])
        .fetch_optional(pool)
        .await
        .unwrap();
        let wanted = m.exists.then_some((m.active, m.superuser, m.anonymized));
        prop_assert_eq!(actual, wanted, "member{} after {:?}", i, s);
    }
    for g in 0..GROUPS {
        let exists = scalar(
            pool,
            "SELECT count(*) FROM groups WHERE id = $1",
            ids.groups[g],
        )
        .await;
        let members = scalar(
            pool,
            "SELECT count(*) FROM user_groups WHERE group_id = $1",
            ids.groups[g],
        )
        .await;
        let wanted = match g {
            0 => model
                .members
                .iter()
                .filter(|m| m.exists && m.in_group)
                .count() as i64,
            _ => 0,
        };
        prop_assert_eq!(
            (exists, members),
            (i64::from(model.groups[g]), wanted),
            "group{} after {:?}",
            g,
            s
        );
    }
    for (q, question) in model.questions.iter().enumerate() {
        let id = ids.questions[q];
        let archived: Option<bool> =
            sqlx::query_scalar("SELECT archived_at IS NOT NULL FROM questions WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .unwrap();
        let voters: Vec<i64> = sqlx::query_scalar(
            "SELECT user_id FROM votes WHERE question_id = $1 AND user_id IS NOT NULL ORDER BY user_id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        let detached = scalar(
            pool,
            "SELECT count(*) FROM votes WHERE question_id = $1 AND user_id IS NULL",
            id,
        )
        .await;
        let wanted: Vec<i64> = question.voters.iter().map(|v| ids.users[*v]).collect();
        let actual = (archived, voters, detached);
        let standing = question.exists.then_some(question.archived);
        prop_assert_eq!(
            actual,
            (standing, wanted, question.detached),
            "q{} after {:?}",
            q,
            s
        );
    }
    let superusers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE is_active AND is_superuser")
            .fetch_one(pool)
            .await
            .unwrap();
    prop_assert!(superusers >= 1, "no active superuser after {:?}", s);
    Ok(())
}

async fn audited(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_entries
          WHERE action IN ('USER_DEACTIVATED', 'USER_REACTIVATED', 'USER_ANONYMIZED', 'USER_DELETED',
                           'GROUP_DELETED', 'QUESTION_DELETED', 'QUESTION_ARCHIVED', 'QUESTION_RESTORED')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let db = TestDb::new().await;
    let ids = populate(&db.pool).await;
    let mut model = initial();
    let mut changes = 0i64;
    for s in steps {
        let Some((expected, next, audit_entries)) = expect(&model, s) else {
            continue;
        };
        let got = perform(&db.pool, &ids, s).await;
        prop_assert_eq!(
            got.as_ref().map_err(AppError::code).cloned(),
            expected,
            "{:?}",
            s
        );
        changes += audit_entries;
        model = next;
        check(&db.pool, &ids, &model, s).await?;
        prop_assert_eq!(
            audited(&db.pool).await,
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
    fn lifecycle_and_deletions_match_the_model(steps in proptest::collection::vec(step(), 1..25)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(steps))?;
    }
}
