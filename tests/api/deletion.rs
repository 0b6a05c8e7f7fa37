//! deleteUser and deletionPlan: the registry against PostgreSQL's catalog,
//! every policy on a user with contributions, plan tokens, the guards and
//! the last-superuser rule under concurrent requests.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::{PASSWORD, TestApp, TestDb, snapshot, user_id};
use memberdesk::domain::deletion::Effect;
use memberdesk::domain::deletion::registry::{EDGES, Edge};
use memberdesk::store::deletion::Link;
use memberdesk::store::users::UserRow;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

const DELETE: &str = "mutation($id: ID!, $p: DeletePolicy!, $dry: Boolean!, $t: String) {
    deleteUser(id: $id, policy: $p, dryRun: $dry, planToken: $t, reason: \"test\") {
        deleted
        plan { user { username } policy allowed token
               protected { relation count } deleted { relation count } detached { relation count } }
    } }";

const PLAN: &str = "query($id: ID!, $p: DeletePolicy!) {
    deletionPlan(userId: $id, policy: $p) {
        user { username } policy allowed token
        protected { relation count } deleted { relation count } detached { relation count }
    } }";

const TALLIES: &str = "{ questions { id text createdBy { username } choices { id voteCount } } }";

fn vars(id: &str, policy: &str, dry: bool, token: Option<&str>) -> Value {
    json!({ "id": id, "p": policy, "dry": dry, "t": token })
}

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

async fn create_question(app: &TestApp, token: &str, text: &str) -> Vec<String> {
    let data = app
        .ok(
            Some(token),
            "mutation($t: String!) { createQuestion(text: $t, choices: [\"a\", \"b\", \"c\"]) { id choices { id } } }",
            json!({ "t": text }),
        )
        .await;
    data["createQuestion"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn vote(app: &TestApp, token: &str, choice: &str) {
    app.ok(
        Some(token),
        "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
        json!({ "c": choice }),
    )
    .await;
}

async fn scene() -> Scene {
    let app = TestApp::spawn().await;
    let (_, root_token) = app.superuser("root").await;
    let victim = app.user("victim", true, false).await;
    let alice = app.user("alice", false, false).await;
    app.user("bob", false, false).await;
    // Audit entries naming the victim as target, by root.
    app.ok(
        Some(&root_token),
        "mutation($u: ID!) { grantPermission(userId: $u, permission: \"polls.add_question\") { id } }",
        json!({ "u": user_id(&victim) }),
    )
    .await;
    let group = app
        .ok(
            Some(&root_token),
            "mutation { createGroup(name: \"Voters\", permissions: [\"polls.view_vote\"]) { id } }",
            json!({}),
        )
        .await["createGroup"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        Some(&root_token),
        "mutation($u: ID!, $g: ID!) { addUserToGroup(userId: $u, groupId: $g) { id } }",
        json!({ "u": user_id(&victim), "g": group }),
    )
    .await;
    let victim_token = app.login("victim", PASSWORD).await;
    let alice_token = app.login("alice", PASSWORD).await;
    let bob_token = app.login("bob", PASSWORD).await;
    let mut choices = Vec::new();
    for text in ["Q1", "Q2", "Q3"] {
        choices.push(create_question(&app, &root_token, text).await);
    }
    // The victim acts (QUESTION_CREATED names them as actor).
    choices.push(create_question(&app, &victim_token, "Victim's question").await);
    for (q, c) in [(0, 0), (1, 1), (2, 2)] {
        vote(&app, &victim_token, &choices[q][c]).await;
    }
    for (q, c) in [(0, 0), (1, 0), (2, 0)] {
        vote(&app, &alice_token, &choices[q][c]).await;
    }
    for (q, c) in [(0, 1), (1, 1), (3, 0)] {
        vote(&app, &bob_token, &choices[q][c]).await;
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
    let resp = s
        .app
        .gql(
            Some(&s.root_token),
            DELETE,
            vars(&s.victim_id(), "PROTECT", false, None),
        )
        .await;
    let err = &resp["errors"][0];
    assert_eq!(err["extensions"]["code"], "DELETE_PROTECTED", "{resp:#}");
    assert_eq!(
        counts(&err["extensions"]["protected"]),
        BTreeMap::from([("votes".into(), 3), ("questions".into(), 1)]),
        "{resp:#}"
    );
    // PROTECT is the default.
    let code = s
        .app
        .err_code(
            Some(&s.root_token),
            "mutation($id: ID!) { deleteUser(id: $id) { deleted } }",
            json!({ "id": s.victim_id() }),
        )
        .await;
    assert_eq!(code, "DELETE_PROTECTED");
    assert_eq!(snapshot(s.app.pool()).await, before, "nothing changed");
    // A user without contributions is deleted under PROTECT.
    let carol = s.app.user("carol", false, false).await;
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            DELETE,
            vars(&user_id(&carol), "PROTECT", false, None),
        )
        .await;
    assert_eq!(data["deleteUser"]["deleted"], true);
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
        (
            "PROTECT",
            memberdesk::domain::deletion::DeletePolicy::Protect,
        ),
        (
            "SET_NULL",
            memberdesk::domain::deletion::DeletePolicy::SetNull,
        ),
        (
            "CASCADE",
            memberdesk::domain::deletion::DeletePolicy::Cascade,
        ),
    ] {
        let dry = s
            .app
            .ok(
                Some(&s.root_token),
                DELETE,
                vars(&s.victim_id(), policy, true, None),
            )
            .await;
        assert_eq!(dry["deleteUser"]["deleted"], false, "{policy}");
        let plan = &dry["deleteUser"]["plan"];
        let query = s
            .app
            .ok(
                Some(&s.root_token),
                PLAN,
                json!({ "id": s.victim_id(), "p": policy }),
            )
            .await;
        assert_eq!(
            &query["deletionPlan"], plan,
            "{policy}: deletionPlan and dryRun show the same plan"
        );
        assert_eq!(plan["policy"], policy);
        assert_eq!(plan["user"]["username"], "victim");
        let (mut protected, mut deleted, mut detached) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for r in user_relations() {
            let n = refs[r.name];
            match r.effect(effect_of) {
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
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            DELETE,
            vars(&s.victim_id(), policy, false, None),
        )
        .await;
    assert_eq!(data["deleteUser"]["deleted"], true);
    let plan = data["deleteUser"]["plan"].clone();
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
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            "{ auditLog(filter: {action: USER_DELETED}, first: 10) { edges { node {
                action actorUsername actor { username } targetUser { id } targetRepr reason } } } }",
            json!({}),
        )
        .await;
    let edges = data["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{data:#}");
    let node = &edges[0]["node"];
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
    let entries_before = s
        .scalar(
            "SELECT count(*) FROM audit_entries WHERE actor_id = $1 OR target_user_id = $1",
            s.victim.id,
        )
        .await;

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
        s.app
            .err_code(Some(&s.victim_token), "{ me { username } }", json!({}))
            .await,
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
    let entries_before = s
        .scalar(
            "SELECT count(*) FROM audit_entries WHERE actor_id = $1 OR target_user_id = $1",
            s.victim.id,
        )
        .await;

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
    let plan = |policy: &'static str| {
        let s = &s;
        async move {
            s.app
                .ok(
                    Some(&s.root_token),
                    PLAN,
                    json!({ "id": s.victim_id(), "p": policy }),
                )
                .await["deletionPlan"]["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let old = plan("SET_NULL").await;
    assert_eq!(plan("SET_NULL").await, old, "the token is stable");
    assert_ne!(plan("CASCADE").await, old, "the token covers the policy");
    // A token for another policy does not fit: a wrong argument, not a
    // change of the data (tests/api/first_hour.rs has the messages).
    let before = snapshot(s.app.pool()).await;
    let cascade = plan("CASCADE").await;
    assert_eq!(
        s.app
            .err_code(
                Some(&s.root_token),
                DELETE,
                vars(&s.victim_id(), "SET_NULL", false, Some(&cascade)),
            )
            .await,
        "INVALID_INPUT"
    );
    assert_eq!(snapshot(s.app.pool()).await, before);

    // The victim votes once more: the plan no longer matches.
    vote(&s.app, &s.victim_token, &s.choices[3][1]).await;
    let before = snapshot(s.app.pool()).await;
    assert_eq!(
        s.app
            .err_code(
                Some(&s.root_token),
                DELETE,
                vars(&s.victim_id(), "SET_NULL", false, Some(&old)),
            )
            .await,
        "PLAN_CHANGED"
    );
    // A dry run with the stale token says so too.
    assert_eq!(
        s.app
            .err_code(
                Some(&s.root_token),
                DELETE,
                vars(&s.victim_id(), "SET_NULL", true, Some(&old)),
            )
            .await,
        "PLAN_CHANGED"
    );
    assert_eq!(snapshot(s.app.pool()).await, before, "nothing changed");

    let new = plan("SET_NULL").await;
    assert_ne!(new, old);
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            DELETE,
            vars(&s.victim_id(), "SET_NULL", false, Some(&new)),
        )
        .await;
    assert_eq!(data["deleteUser"]["deleted"], true);
    assert_eq!(data["deleteUser"]["plan"]["token"], new.as_str());
    assert_eq!(counts(&data["deleteUser"]["plan"]["detached"])["votes"], 4);
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM votes WHERE user_id IS NULL")
            .await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_and_rules_refuse_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (a, a_token) = app.superuser("super-a").await;
    let (b, _) = app.superuser("super-b").await;
    let (changer, changer_token) = app.staff_with("changer", &["auth.change_user"]).await;
    let (deleter, deleter_token) = app
        .staff_with("deleter", &["auth.delete_user", "auth.view_user"])
        .await;
    app.user("plain", false, false).await;
    let plain_token = app.login("plain", PASSWORD).await;
    let target = app.user("target", false, false).await;

    let refusals: Vec<(&str, Option<&str>, &UserRow, &str)> = vec![
        ("anonymous", None, &target, "UNAUTHENTICATED"),
        ("non-staff", Some(&plain_token), &target, "FORBIDDEN"),
        (
            "no auth.delete_user",
            Some(&changer_token),
            &target,
            "FORBIDDEN",
        ),
        (
            "staff on a superuser",
            Some(&deleter_token),
            &a,
            "FORBIDDEN",
        ),
        ("self, staff", Some(&deleter_token), &deleter, "SELF_ACTION"),
        ("self, superuser", Some(&a_token), &a, "SELF_ACTION"),
    ];
    let before = snapshot(app.pool()).await;
    for (case, token, who, code) in &refusals {
        for policy in ["PROTECT", "SET_NULL", "CASCADE"] {
            for dry in [false, true] {
                assert_eq!(
                    &app.err_code(*token, DELETE, vars(&user_id(who), policy, dry, None))
                        .await,
                    code,
                    "{case}: deleteUser {policy} dryRun={dry}"
                );
            }
            assert_eq!(
                &app.err_code(*token, PLAN, json!({ "id": user_id(who), "p": policy }))
                    .await,
                code,
                "{case}: deletionPlan {policy}"
            );
        }
    }
    // An id that names nothing.
    let nobody = memberdesk::ids::encode(memberdesk::ids::Kind::User, 987_654);
    assert_eq!(
        app.err_code(
            Some(&a_token),
            DELETE,
            vars(&nobody, "SET_NULL", false, None)
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "no refusal changed anything"
    );

    // A superuser deletes another; then the last one cannot delete themselves.
    let data = app
        .ok(
            Some(&a_token),
            DELETE,
            vars(&user_id(&b), "SET_NULL", false, None),
        )
        .await;
    assert_eq!(data["deleteUser"]["deleted"], true);
    let before = snapshot(app.pool()).await;
    assert_eq!(
        app.err_code(
            Some(&a_token),
            DELETE,
            vars(&user_id(&a), "SET_NULL", false, None)
        )
        .await,
        "SELF_ACTION"
    );
    // Staff with auth.delete_user still cannot touch the last superuser.
    assert_eq!(
        app.err_code(
            Some(&deleter_token),
            DELETE,
            vars(&user_id(&a), "SET_NULL", false, None)
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(snapshot(app.pool()).await, before);

    // An inactive superuser is no active superuser: deleting it leaves `a`.
    let c = app.user("super-c", true, true).await;
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1")
        .bind(c.id)
        .execute(app.pool())
        .await
        .unwrap();
    app.ok(
        Some(&a_token),
        DELETE,
        vars(&user_id(&c), "SET_NULL", false, None),
    )
    .await;
    // Staff with the permission deletes a plain user.
    let data = app
        .ok(
            Some(&deleter_token),
            DELETE,
            vars(&user_id(&target), "PROTECT", false, None),
        )
        .await;
    assert_eq!(data["deleteUser"]["deleted"], true);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE is_active AND is_superuser")
            .await,
        1
    );
    let _ = changer;
}

/// Two superusers remove each other at the same moment, round after round
/// (odd rounds delete under SET_NULL, even rounds deactivate): never both
/// succeed and an active superuser always remains. With `strict`, the loser
/// must also be refused with the contract's code (`LAST_SUPERUSER`, or
/// `UNAUTHENTICATED` when its own session went first).
async fn superuser_race(strict: bool) {
    const DEACTIVATE: &str = "mutation($id: ID!) { deactivateUser(id: $id) { user { isActive } } }";
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
        let (ra, rb) = if deleting {
            tokio::join!(
                app.gql(
                    Some(&a_token),
                    DELETE,
                    vars(&user_id(&b), "SET_NULL", false, None)
                ),
                app.gql(
                    Some(&b_token),
                    DELETE,
                    vars(&user_id(&a), "SET_NULL", false, None)
                ),
            )
        } else {
            tokio::join!(
                app.gql(Some(&a_token), DEACTIVATE, json!({ "id": user_id(&b) })),
                app.gql(Some(&b_token), DEACTIVATE, json!({ "id": user_id(&a) })),
            )
        };
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
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            "mutation($id: ID!) { anonymizeUser(id: $id, reason: \"erasure\") { user { username } } }",
            json!({ "id": s.victim_id() }),
        )
        .await;
    let pseudonym = data["anonymizeUser"]["user"]["username"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let before = snapshot(s.app.pool()).await;
    assert_eq!(
        s.app
            .err_code(
                Some(&s.root_token),
                DELETE,
                vars(&s.victim_id(), "PROTECT", false, None)
            )
            .await,
        "DELETE_PROTECTED"
    );
    assert_eq!(snapshot(s.app.pool()).await, before);
    let data = s
        .app
        .ok(
            Some(&s.root_token),
            DELETE,
            vars(&s.victim_id(), "SET_NULL", false, None),
        )
        .await;
    assert_eq!(data["deleteUser"]["deleted"], true);
    assert_eq!(
        data["deleteUser"]["plan"]["user"]["username"],
        pseudonym.as_str()
    );
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
