//! deleteUser and deletionPlan: the registry against PostgreSQL's catalog,
//! every policy on a user with contributions, plan tokens, the guards and
//! the last-superuser rule under concurrent requests.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::{Call, PASSWORD, TestApp, TestDb, ids, snapshot, user_id};
use memberdesk::domain::deletion::registry::{EDGES, Edge};
use memberdesk::domain::deletion::{DeletePolicy, Effect};
use memberdesk::store::deletion::Link;
use memberdesk::store::users::UserRow;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

const TALLIES: &str = "{ questions { id text createdBy { username } choices { id voteCount } } }";

/// `[{relation, count}]` as a map, to compare regardless of order.
fn counts(list: &Value) -> BTreeMap<String, i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a list of relation counts: {list}"))
        .iter()
        .map(|rc| {
            (
                rc["relation"].as_str().unwrap().to_owned(),
                rc["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `deleteUser` of `id` under `policy`, with the reason the audit checks expect.
fn delete<'a>(app: &'a TestApp, token: &str, id: &str, policy: &str) -> Call<'a> {
    app.delete_user(token, id).policy(policy).reason("test")
}

/// A victim with contributions and every kind of reference, among others.
struct Scene {
    app: TestApp,
    root_token: String,
    victim: UserRow,
    victim_token: String,
    alice: UserRow,
    /// Choice ids per question: three by root, the last one by the victim.
    choices: Vec<Vec<String>>,
}

async fn scene() -> Scene {
    let app = TestApp::spawn().await;
    let (_, root_token) = app.superuser("root").await;
    let victim = app.user("victim", true, false).await;
    let alice = app.user("alice", false, false).await;
    app.user("bob", false, false).await;
    // Audit entries naming the victim as target, by root.
    app.grant(&root_token, &user_id(&victim), "polls.add_question")
        .ok()
        .await;
    let group = app
        .create_group(&root_token, "Voters", &["polls.view_vote"])
        .ok()
        .await;
    app.add_to_group(
        &root_token,
        &user_id(&victim),
        group["id"].as_str().unwrap(),
    )
    .ok()
    .await;
    let victim_token = app.login("victim", PASSWORD).await;
    let alice_token = app.login("alice", PASSWORD).await;
    let bob_token = app.login("bob", PASSWORD).await;
    let ask = |token: &str, text: &str| {
        let call = app.create_question(token, text, &["a", "b", "c"]);
        async move { ids(&call.ok().await["choices"]) }
    };
    let mut choices = Vec::new();
    for text in ["Q1", "Q2", "Q3"] {
        choices.push(ask(&root_token, text).await);
    }
    // The victim acts (QUESTION_CREATED names them as actor).
    choices.push(ask(&victim_token, "Victim's question").await);
    for (token, picks) in [
        (&victim_token, [(0, 0), (1, 1), (2, 2)]),
        (&alice_token, [(0, 0), (1, 0), (2, 0)]),
        (&bob_token, [(0, 1), (1, 1), (3, 0)]),
    ] {
        for (q, c) in picks {
            app.vote(token, &choices[q][c]).ok().await;
        }
    }
    Scene {
        app,
        root_token,
        victim,
        victim_token,
        alice,
        choices,
    }
}

impl Scene {
    fn victim_id(&self) -> String {
        user_id(&self.victim)
    }

    /// Root deletes the victim under `policy`.
    fn delete(&self, policy: &str) -> Call<'_> {
        delete(&self.app, &self.root_token, &self.victim_id(), policy)
    }

    /// Root previews the victim's deletion under `policy`.
    fn plan(&self, policy: &str) -> Call<'_> {
        self.app
            .deletion_plan(&self.root_token, &self.victim_id())
            .policy(policy)
    }

    /// The victim's plan token under `policy`.
    async fn plan_token(&self, policy: &str) -> String {
        self.app
            .plan_token(&self.root_token, &self.victim_id(), policy)
            .await
    }

    /// choice id -> voteCount, through the API.
    async fn tallies(&self) -> BTreeMap<String, i64> {
        let data = self
            .app
            .ok(Some(&self.root_token), TALLIES, json!({}))
            .await;
        let mut out = BTreeMap::new();
        for q in data["questions"].as_array().unwrap() {
            for c in q["choices"].as_array().unwrap() {
                out.insert(
                    c["id"].as_str().unwrap().to_owned(),
                    c["voteCount"].as_i64().unwrap(),
                );
            }
        }
        out
    }

    /// question text -> createdBy username (None once detached).
    async fn creators(&self) -> BTreeMap<String, Option<String>> {
        let data = self
            .app
            .ok(Some(&self.root_token), TALLIES, json!({}))
            .await;
        data["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["text"].as_str().unwrap().to_owned(),
                    q["createdBy"]["username"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    async fn scalar(&self, sql: &str, id: i64) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .bind(id)
            .fetch_one(self.app.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Per relation of the registry: rows referencing the victim now.
    async fn references(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for r in user_relations() {
            let sql = format!("SELECT count(*) FROM {} WHERE {} = $1", r.table, r.column);
            out.insert(r.name.to_owned(), self.scalar(&sql, self.victim.id).await);
        }
        out
    }

    /// Votes of other users (id, choice, user), which no deletion may touch.
    async fn others_votes(&self) -> Value {
        sqlx::query_scalar(
            "SELECT coalesce(json_agg(json_build_array(id, choice_id, user_id) ORDER BY id), '[]')
               FROM votes WHERE user_id IS NOT NULL AND user_id <> $1",
        )
        .bind(self.victim.id)
        .fetch_one(self.app.pool())
        .await
        .unwrap()
    }

    /// Audit entries naming the victim as actor or target.
    async fn entries_about_victim(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM audit_entries WHERE actor_id = $1 OR target_user_id = $1",
            self.victim.id,
        )
        .await
    }
}

/// The registry's references to users: every relation a user's plan lists.
fn user_relations() -> impl Iterator<Item = &'static Edge> {
    EDGES.iter().filter(|e| e.parent == "users")
}

/// Where the registry and PostgreSQL's catalog disagree: foreign keys the
/// registry lacks, registry entries with no foreign key, and keys that
/// PostgreSQL itself would cascade, null or that refer to another column
/// than `id` (every key must be `ON DELETE RESTRICT` so that the registry
/// alone decides).
async fn registry_gaps(pool: &sqlx::PgPool) -> Vec<String> {
    let mut conn = pool.acquire().await.unwrap();
    let keys = memberdesk::store::deletion::foreign_keys(&mut conn)
        .await
        .unwrap();
    let composite = memberdesk::store::deletion::composite_foreign_keys(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.len() >= 15,
        "the catalog query found too little: {keys:?}"
    );
    let catalog: BTreeSet<(String, String, String)> = keys
        .iter()
        .map(|k| (k.table.clone(), k.column.clone(), k.references.clone()))
        .collect();
    let registry: BTreeSet<(String, String, String)> = EDGES
        .iter()
        .filter(|e| e.link == Link::Key)
        .map(|e| (e.table.to_owned(), e.column.to_owned(), e.parent.to_owned()))
        .collect();
    let mut gaps: Vec<String> = catalog
        .difference(&registry)
        .map(|(t, c, r)| format!("{t}.{c} references {r} but has no entry in EDGES"))
        .collect();
    gaps.extend(
        registry
            .difference(&catalog)
            .map(|(t, c, r)| format!("EDGES names {t}.{c} -> {r}, which is no foreign key")),
    );
    for k in keys
        .iter()
        .filter(|k| !matches!(k.on_delete.as_str(), "r" | "a"))
    {
        gaps.push(format!(
            "{}.{} is not ON DELETE RESTRICT",
            k.table, k.column
        ));
    }
    for k in keys.iter().filter(|k| k.referenced_column != "id") {
        gaps.push(format!(
            "{}.{} refers to {}.{}",
            k.table, k.column, k.references, k.referenced_column
        ));
    }
    gaps.extend(
        composite
            .into_iter()
            .map(|c| format!("{c} spans several columns")),
    );
    gaps
}

/// What PostgreSQL says references any table must be exactly what the
/// registry covers, and a new foreign key without an entry is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_covers_every_foreign_key_of_every_table() {
    let db = TestDb::new().await;
    let gaps = registry_gaps(&db.pool).await;
    assert!(
        gaps.is_empty(),
        "the deletion registry (EDGES in src/domain/deletion/registry.rs) and the schema \
         disagree; give every foreign key an entry with its effect under each policy:\n{}",
        gaps.join("\n")
    );
    let names: BTreeSet<_> = user_relations().map(|r| r.name).collect();
    assert_eq!(
        names.len(),
        user_relations().count(),
        "relation names are unique"
    );
    // A table added with a key to users, or a cascading key, is caught.
    sqlx::raw_sql(
        "CREATE TABLE notes (id BIGINT PRIMARY KEY, author_id BIGINT REFERENCES users (id));
         CREATE TABLE tags (id BIGINT PRIMARY KEY,
                            question_id BIGINT REFERENCES questions (id) ON DELETE CASCADE);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let gaps = registry_gaps(&db.pool).await;
    assert!(
        gaps.iter()
            .any(|g| g.starts_with("notes.author_id references users")),
        "{gaps:?}"
    );
    assert!(
        gaps.iter()
            .any(|g| g == "tags.question_id is not ON DELETE RESTRICT"),
        "{gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protect_refuses_with_the_contributions_and_changes_nothing() {
    let s = scene().await;
    let before = snapshot(s.app.pool()).await;
    let resp = s.delete("PROTECT").send().await;
    let err = &resp["errors"][0];
    assert_eq!(err["extensions"]["code"], "DELETE_PROTECTED", "{resp:#}");
    assert_eq!(
        counts(&err["extensions"]["protected"]),
        BTreeMap::from([("votes".into(), 3), ("questions".into(), 1)]),
        "{resp:#}"
    );
    // PROTECT is the default.
    s.app
        .delete_user(&s.root_token, &s.victim_id())
        .refused("DELETE_PROTECTED")
        .await;
    assert_eq!(snapshot(s.app.pool()).await, before, "nothing changed");
    // A user without contributions is deleted under PROTECT.
    let carol = s.app.user("carol", false, false).await;
    let done = delete(&s.app, &s.root_token, &user_id(&carol), "PROTECT")
        .ok()
        .await;
    assert_eq!(done["deleted"], true);
    assert_eq!(
        s.scalar("SELECT count(*) FROM users WHERE id = $1", carol.id)
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_deletion_plan_count_and_change_nothing() {
    let s = scene().await;
    let refs = s.references().await;
    assert_eq!(refs["votes"], 3);
    assert_eq!(refs["questions"], 1);
    assert!(refs["sessions"] >= 1);
    assert_eq!(refs["groupMemberships"], 1);
    assert_eq!(refs["userPermissions"], 1);
    assert!(refs["auditEntries"] >= 1, "the victim acted: {refs:?}");
    assert!(refs["auditEntriesAsTarget"] >= 2, "{refs:?}");
    let before = snapshot(s.app.pool()).await;
    for (policy, effect_of) in [
        ("PROTECT", DeletePolicy::Protect),
        ("SET_NULL", DeletePolicy::SetNull),
        ("CASCADE", DeletePolicy::Cascade),
    ] {
        let dry = s.delete(policy).dry_run(true).ok().await;
        assert_eq!(dry["deleted"], false, "{policy}");
        let plan = &dry["plan"];
        assert_eq!(
            &s.plan(policy).ok().await,
            plan,
            "{policy}: deletionPlan and dryRun show the same plan"
        );
        assert_eq!(plan["policy"], policy);
        assert_eq!(plan["user"]["username"], "victim");
        let [protected, deleted, detached] = expected_plan(&refs, effect_of);
        assert_eq!(counts(&plan["protected"]), protected, "{policy}");
        assert_eq!(counts(&plan["deleted"]), deleted, "{policy}");
        assert_eq!(counts(&plan["detached"]), detached, "{policy}");
        assert_eq!(plan["allowed"], policy != "PROTECT", "{policy}");
        assert!(!plan["token"].as_str().unwrap().is_empty());
        // The contract's relations, by name.
        if policy == "SET_NULL" {
            assert_eq!(deleted["sessions"], refs["sessions"]);
            assert_eq!(detached["votes"], 3);
            assert_eq!(detached["questions"], 1);
            assert_eq!(deleted["groupMemberships"], 1);
            assert_eq!(deleted["userPermissions"], 1);
            assert!(detached.contains_key("auditEntries"));
        }
        if policy == "CASCADE" {
            assert_eq!(deleted["votes"], 3);
            assert_eq!(detached["questions"], 1);
        }
        assert_eq!(
            snapshot(s.app.pool()).await,
            before,
            "{policy}: nothing changed"
        );
    }
}

/// The (protected, deleted, detached) counts the registry predicts under
/// `policy` for these references.
fn expected_plan(refs: &BTreeMap<String, i64>, policy: DeletePolicy) -> [BTreeMap<String, i64>; 3] {
    let (mut protected, mut deleted, mut detached) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for r in user_relations() {
        let n = refs[r.name];
        match r.effect(policy) {
            Effect::Protect if n > 0 => {
                protected.insert(r.name.to_owned(), n);
            }
            Effect::Protect => {}
            Effect::Invalid => panic!("{}: no user relation refuses a policy", r.name),
            Effect::Delete => {
                deleted.insert(r.name.to_owned(), n);
            }
            Effect::Detach => {
                detached.insert(r.name.to_owned(), n);
            }
        }
    }
    [protected, deleted, detached]
}

/// Measures the effect of a real deletion on every relation and checks it
/// against the plan the deletion returned.
async fn delete_and_check_plan(s: &Scene, policy: &str) -> Value {
    let refs = s.references().await;
    let max_audit = s
        .scalar(
            "SELECT coalesce(max(id), 0) FROM audit_entries WHERE $1 = $1",
            0,
        )
        .await;
    let mut totals = BTreeMap::new();
    let mut nulls = BTreeMap::new();
    for r in user_relations() {
        let total = format!("SELECT count(*) FROM {} WHERE $1 = $1", r.table);
        totals.insert(r.name, s.scalar(&total, 0).await);
        if matches!(r.set_null, Effect::Detach) || matches!(r.cascade, Effect::Detach) {
            let null = format!(
                "SELECT count(*) FROM {} WHERE {} IS NULL AND id <= $1",
                r.table, r.column
            );
            nulls.insert(r.name, s.scalar(&null, i64::MAX).await);
        }
    }
    let done = s.delete(policy).ok().await;
    assert_eq!(done["deleted"], true);
    let plan = done["plan"].clone();
    assert_eq!(counts(&plan["protected"]), BTreeMap::new());
    let deleted = counts(&plan["deleted"]);
    let detached = counts(&plan["detached"]);
    assert_eq!(
        s.references().await.values().sum::<i64>(),
        0,
        "nothing references the deleted user"
    );
    for r in user_relations() {
        let total = format!("SELECT count(*) FROM {} WHERE $1 = $1", r.table);
        let after = s.scalar(&total, 0).await;
        match (deleted.get(r.name), detached.get(r.name)) {
            (Some(&n), None) => {
                assert_eq!(n, refs[r.name], "{policy}: {} planned", r.name);
                // The audit log only grows; other tables lose exactly the planned rows.
                assert_eq!(
                    totals[r.name] - after,
                    n,
                    "{policy}: {} rows deleted as planned",
                    r.name
                );
            }
            (None, Some(&n)) => {
                assert_eq!(n, refs[r.name], "{policy}: {} planned", r.name);
                let grown = if r.table == "audit_entries" { 1 } else { 0 };
                assert_eq!(
                    after,
                    totals[r.name] + grown,
                    "{policy}: {} rows kept (plus the USER_DELETED entry)",
                    r.name
                );
                // Among the rows that existed before, exactly the planned ones were detached.
                let bound = if r.table == "audit_entries" {
                    max_audit
                } else {
                    i64::MAX
                };
                let null = format!(
                    "SELECT count(*) FROM {} WHERE {} IS NULL AND id <= $1",
                    r.table, r.column
                );
                assert_eq!(
                    s.scalar(&null, bound).await - nulls[r.name],
                    n,
                    "{policy}: {} rows detached as planned",
                    r.name
                );
            }
            other => panic!("{policy}: {} is in neither list: {other:?}", r.name),
        }
    }
    assert_eq!(
        s.scalar("SELECT count(*) FROM users WHERE id = $1", s.victim.id)
            .await,
        0,
        "the user row is gone"
    );
    plan
}

/// An audit entry as `check_audit_kept` reads it: actor id, actor username,
/// target user id, target representation, action.
type AuditRow = (Option<i64>, Option<String>, Option<i64>, String, String);

/// The audit trail after the deletion: kept, detached, with the snapshot.
async fn check_audit_kept(s: &Scene, entries_before: i64) {
    let about: Vec<AuditRow> = sqlx::query_as(
        "SELECT actor_id, actor_username, target_user_id, target_repr, action FROM audit_entries
          WHERE actor_username = 'victim' OR target_repr = 'victim' ORDER BY id",
    )
    .fetch_all(s.app.pool())
    .await
    .unwrap();
    assert!(
        about.len() as i64 > entries_before,
        "every entry about the victim kept, plus USER_DELETED: {about:?}"
    );
    for (actor_id, actor_username, target_user_id, target_repr, action) in &about {
        if actor_username.as_deref() == Some("victim") {
            assert_eq!(*actor_id, None, "{action}: actor detached");
        }
        if target_repr == "victim" {
            assert_eq!(*target_user_id, None, "{action}: target detached");
        }
    }
    let deleted: Vec<_> = about.iter().filter(|e| e.4 == "USER_DELETED").collect();
    assert_eq!(deleted.len(), 1, "{about:?}");
    assert_eq!(deleted[0].1.as_deref(), Some("root"));
    // And through the API.
    let entries = s
        .app
        .audit_entries(&s.root_token, json!({ "action": "USER_DELETED" }))
        .await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let node = &entries[0];
    assert_eq!(node["actorUsername"], "root");
    assert_eq!(node["actor"]["username"], "root");
    assert_eq!(node["targetUser"], Value::Null);
    assert_eq!(node["targetRepr"], "victim");
    assert_eq!(node["reason"], "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_null_keeps_contributions_detached() {
    let s = scene().await;
    let tallies = s.tallies().await;
    let others = s.others_votes().await;
    let victim_votes: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM votes WHERE user_id = $1 ORDER BY id")
            .bind(s.victim.id)
            .fetch_all(s.app.pool())
            .await
            .unwrap();
    assert_eq!(victim_votes.len(), 3);
    // The victim's voterName is their username while they exist.
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            "query($u: ID!) { votes(userId: $u, first: 10) { edges { node { voterName user { username } } } } }",
            json!({ "u": s.victim_id() }),
        )
        .await;
    for e in data["votes"]["edges"].as_array().unwrap() {
        assert_eq!(e["node"]["voterName"], "victim");
    }
    let entries_before = s.entries_about_victim().await;

    delete_and_check_plan(&s, "SET_NULL").await;

    assert_eq!(s.tallies().await, tallies, "tallies unchanged");
    assert_eq!(s.others_votes().await, others, "other votes untouched");
    let kept: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT id, user_id FROM votes WHERE id = ANY($1) ORDER BY id")
            .bind(&victim_votes)
            .fetch_all(s.app.pool())
            .await
            .unwrap();
    assert_eq!(
        kept,
        victim_votes
            .iter()
            .map(|&id| (id, None))
            .collect::<Vec<_>>(),
        "the victim's votes stay, detached"
    );
    let creators = s.creators().await;
    assert_eq!(creators["Victim's question"], None, "createdBy is null");
    assert_eq!(creators["Q1"].as_deref(), Some("root"));
    for table in ["sessions", "user_groups", "user_permissions"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE user_id = $1");
        assert_eq!(s.scalar(&sql, s.victim.id).await, 0, "{table}");
    }
    // The victim's token no longer works.
    assert_eq!(
        s.app.me(&s.victim_token).await.unwrap_err(),
        "UNAUTHENTICATED"
    );
    check_audit_kept(&s, entries_before).await;
    // Other users are intact.
    assert_eq!(
        s.scalar("SELECT count(*) FROM votes WHERE user_id = $1", s.alice.id)
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_deletes_votes_and_detaches_questions() {
    let s = scene().await;
    let mut tallies = s.tallies().await;
    let others = s.others_votes().await;
    // The victim voted choices[0][0], [1][1], [2][2].
    for (q, c) in [(0, 0), (1, 1), (2, 2)] {
        *tallies.get_mut(&s.choices[q][c]).unwrap() -= 1;
    }
    let questions_before = s.app.count("SELECT count(*) FROM questions").await;
    let entries_before = s.entries_about_victim().await;

    let plan = delete_and_check_plan(&s, "CASCADE").await;
    assert_eq!(counts(&plan["deleted"])["votes"], 3);
    assert_eq!(counts(&plan["detached"])["questions"], 1);

    assert_eq!(
        s.tallies().await,
        tallies,
        "tallies drop by exactly the victim's votes"
    );
    assert_eq!(s.others_votes().await, others, "other votes untouched");
    assert_eq!(
        s.app.count("SELECT count(*) FROM votes").await,
        6,
        "alice's and bob's votes remain"
    );
    assert_eq!(
        s.app.count("SELECT count(*) FROM questions").await,
        questions_before,
        "questions are never deleted"
    );
    let creators = s.creators().await;
    assert_eq!(creators["Victim's question"], None);
    // Bob's vote on the victim's question survives.
    assert_eq!(s.tallies().await[&s.choices[3][0]], 1);
    check_audit_kept(&s, entries_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_token_refuses_a_changed_plan() {
    let s = scene().await;
    let old = s.plan_token("SET_NULL").await;
    assert_eq!(s.plan_token("SET_NULL").await, old, "the token is stable");
    assert_ne!(
        s.plan_token("CASCADE").await,
        old,
        "the token covers the policy"
    );
    // A token for another policy does not fit: a wrong argument, not a
    // change of the data (tests/api/first_hour.rs has the messages).
    let cascade = s.plan_token("CASCADE").await;
    s.delete("SET_NULL")
        .plan_token(&cascade)
        .refused("INVALID_INPUT")
        .await;

    // The victim votes once more: the plan no longer matches.
    s.app.vote(&s.victim_token, &s.choices[3][1]).ok().await;
    s.delete("SET_NULL")
        .plan_token(&old)
        .refused("PLAN_CHANGED")
        .await;
    // A dry run with the stale token says so too.
    s.delete("SET_NULL")
        .dry_run(true)
        .plan_token(&old)
        .refused("PLAN_CHANGED")
        .await;

    let new = s.plan_token("SET_NULL").await;
    assert_ne!(new, old);
    let done = s.delete("SET_NULL").plan_token(&new).ok().await;
    assert_eq!(done["deleted"], true);
    assert_eq!(done["plan"]["token"], new.as_str());
    assert_eq!(counts(&done["plan"]["detached"])["votes"], 4);
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM votes WHERE user_id IS NULL")
            .await,
        4
    );
}

/// Two superusers, staff with and without `auth.delete_user`, a plain
/// member and a plain target.
struct Staff {
    app: TestApp,
    a: UserRow,
    a_token: String,
    b: UserRow,
    deleter: UserRow,
    deleter_token: String,
    changer_token: String,
    plain_token: String,
    target: UserRow,
}

async fn staff() -> Staff {
    let app = TestApp::spawn().await;
    let (a, a_token) = app.superuser("super-a").await;
    let (b, _) = app.superuser("super-b").await;
    let (_, changer_token) = app.staff_with("changer", &["auth.change_user"]).await;
    let (deleter, deleter_token) = app
        .staff_with("deleter", &["auth.delete_user", "auth.view_user"])
        .await;
    app.user("plain", false, false).await;
    let plain_token = app.login("plain", PASSWORD).await;
    let target = app.user("target", false, false).await;
    Staff {
        app,
        a,
        a_token,
        b,
        deleter,
        deleter_token,
        changer_token,
        plain_token,
        target,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_plan_are_refused_to_whoever_may_not_and_change_nothing() {
    let st = staff().await;
    let app = &st.app;
    let refusals: Vec<(&str, Option<&str>, &UserRow, &str)> = vec![
        ("anonymous", None, &st.target, "UNAUTHENTICATED"),
        ("non-staff", Some(&st.plain_token), &st.target, "FORBIDDEN"),
        (
            "no auth.delete_user",
            Some(&st.changer_token),
            &st.target,
            "FORBIDDEN",
        ),
        (
            "staff on a superuser",
            Some(&st.deleter_token),
            &st.a,
            "FORBIDDEN",
        ),
        (
            "self, staff",
            Some(&st.deleter_token),
            &st.deleter,
            "SELF_ACTION",
        ),
        ("self, superuser", Some(&st.a_token), &st.a, "SELF_ACTION"),
    ];
    let before = snapshot(app.pool()).await;
    for (case, token, who, code) in refusals {
        for policy in ["PROTECT", "SET_NULL", "CASCADE"] {
            for dry in [false, true] {
                let call = app.delete_user(token, &user_id(who)).policy(policy);
                assert_eq!(
                    call.dry_run(dry).reason("test").err_code().await,
                    code,
                    "{case}: deleteUser {policy} dryRun={dry}"
                );
            }
            let call = app.deletion_plan(token, &user_id(who)).policy(policy);
            assert_eq!(call.err_code().await, code, "{case}: deletionPlan {policy}");
        }
    }
    // An id that names nothing.
    let nobody = memberdesk::ids::encode(memberdesk::ids::Kind::User, 987_654);
    assert_eq!(
        delete(app, &st.a_token, &nobody, "SET_NULL")
            .err_code()
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "no refusal changed anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_superuser_can_neither_delete_themselves_nor_be_deleted_by_staff() {
    let st = staff().await;
    let app = &st.app;
    // A superuser deletes another; then the last one cannot delete themselves.
    let done = delete(app, &st.a_token, &user_id(&st.b), "SET_NULL")
        .ok()
        .await;
    assert_eq!(done["deleted"], true);
    delete(app, &st.a_token, &user_id(&st.a), "SET_NULL")
        .refused("SELF_ACTION")
        .await;
    // Staff with auth.delete_user still cannot touch the last superuser.
    delete(app, &st.deleter_token, &user_id(&st.a), "SET_NULL")
        .refused("FORBIDDEN")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_superuser_is_deleted_and_staff_delete_plain_users() {
    let st = staff().await;
    let app = &st.app;
    delete(app, &st.a_token, &user_id(&st.b), "SET_NULL")
        .ok()
        .await;
    // An inactive superuser is no active superuser: deleting it leaves `a`.
    let c = app.user("super-c", true, true).await;
    app.execute("UPDATE users SET is_active = false WHERE id = $1", c.id)
        .await;
    delete(app, &st.a_token, &user_id(&c), "SET_NULL")
        .ok()
        .await;
    // Staff with the permission deletes a plain user.
    let done = delete(app, &st.deleter_token, &user_id(&st.target), "PROTECT")
        .ok()
        .await;
    assert_eq!(done["deleted"], true);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE is_active AND is_superuser")
            .await,
        1
    );
}

/// Two superusers remove each other at the same moment, round after round
/// (odd rounds delete under SET_NULL, even rounds deactivate): never both
/// succeed and an active superuser always remains. With `strict`, the loser
/// must also be refused with the contract's code (`LAST_SUPERUSER`, or
/// `UNAUTHENTICATED` when its own session went first).
async fn superuser_race(strict: bool) {
    let app = TestApp::spawn().await;
    let started = std::time::Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..20 {
        // Only this round's pair is an active superuser.
        sqlx::query("UPDATE users SET is_active = false WHERE is_superuser")
            .execute(app.pool())
            .await
            .unwrap();
        let (a, a_token) = app.superuser(&format!("a{round}")).await;
        let (b, b_token) = app.superuser(&format!("b{round}")).await;
        let deleting = round % 2 == 1;
        let remove = |token: &str, whom: &UserRow| match deleting {
            true => delete(&app, token, &user_id(whom), "SET_NULL"),
            false => app.deactivate(token, &user_id(whom)),
        };
        let (ra, rb) = tokio::join!(remove(&a_token, &b).send(), remove(&b_token, &a).send());
        let what = if deleting { "delete" } else { "deactivate" };
        let outcome = |r: &Value| match r.get("errors") {
            None => "ok".to_owned(),
            Some(e) => e[0]["extensions"]["code"]
                .as_str()
                .unwrap_or("no code")
                .to_owned(),
        };
        let (oa, ob) = (outcome(&ra), outcome(&rb));
        *outcomes.entry(format!("{what}: {oa}/{ob}")).or_default() += 1;
        let active = app
            .count("SELECT count(*) FROM users WHERE is_active AND is_superuser")
            .await;
        assert!(
            active >= 1,
            "round {round} ({what}): no active superuser left: {ra:#} {rb:#}"
        );
        let successes = [&oa, &ob].iter().filter(|o| o.as_str() == "ok").count();
        assert!(
            successes <= 1,
            "round {round} ({what}): both succeeded: {ra:#} {rb:#}"
        );
        if strict {
            assert_eq!(
                successes, 1,
                "round {round} ({what}): one of them wins: {ra:#} {rb:#}"
            );
            let refused = if oa == "ok" { &ob } else { &oa };
            assert!(
                refused == "LAST_SUPERUSER" || refused == "UNAUTHENTICATED",
                "round {round} ({what}): the loser gets LAST_SUPERUSER or UNAUTHENTICATED: {ra:#} {rb:#}"
            );
        }
    }
    eprintln!("race outcomes: {outcomes:?} in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removal_never_leaves_no_superuser() {
    superuser_race(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removal_refuses_the_loser_with_last_superuser() {
    superuser_race(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymized_user_can_be_deleted() {
    let s = scene().await;
    let done = s
        .app
        .anonymize(&s.root_token, &s.victim_id())
        .reason("erasure")
        .ok()
        .await;
    let pseudonym = done["user"]["username"].as_str().unwrap().to_owned();
    assert!(pseudonym.starts_with("deleted-user-"), "{pseudonym}");
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            "query($u: ID!) { votes(userId: $u, first: 10) { totalCount edges { node { voterName } } } }",
            json!({ "u": s.victim_id() }),
        )
        .await;
    assert_eq!(data["votes"]["totalCount"], 3);
    for e in data["votes"]["edges"].as_array().unwrap() {
        assert_eq!(e["node"]["voterName"], "Deleted user");
    }
    let tallies = s.tallies().await;
    // PROTECT still protects the contributions.
    s.delete("PROTECT").refused("DELETE_PROTECTED").await;
    let done = s.delete("SET_NULL").ok().await;
    assert_eq!(done["deleted"], true);
    assert_eq!(done["plan"]["user"]["username"], pseudonym.as_str());
    assert_eq!(
        s.scalar("SELECT count(*) FROM users WHERE id = $1", s.victim.id)
            .await,
        0
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM votes WHERE user_id IS NULL")
            .await,
        3
    );
    assert_eq!(s.tallies().await, tallies);
    // The USER_DELETED entry names the pseudonym, not the erased username.
    let repr: String =
        sqlx::query_scalar("SELECT target_repr FROM audit_entries WHERE action = 'USER_DELETED'")
            .fetch_one(s.app.pool())
            .await
            .unwrap();
    assert_eq!(repr, pseudonym);
}
