//! `MEMBERDESK_REQUIRE_REASON`: with it, every operation that removes
//! access or data (each delete, single and bulk, anonymizeUser, both
//! deactivations, archiveQuestion) is refused without a reason, blank
//! counting as none, and changes nothing; a preview (`dryRun`) needs none.
//! Without it, a reason stays optional.

use memberdesk::config::{ReasonPolicy, Settings};
use serde_json::{Value, json};

use crate::helpers::{TestApp, group_id, snapshot, user_id};

/// One operation that takes a reason: its document (with `$id: ID!`,
/// `$r: String` and, if it can preview, `$dry: Boolean`) and its target.
struct Removal {
    field: &'static str,
    document: &'static str,
    previews: bool,
    id: String,
}

impl Removal {
    fn vars(&self, reason: Option<&str>, dry: bool) -> Value {
        match self.previews {
            true => json!({ "id": self.id, "r": reason, "dry": dry }),
            false => json!({ "id": self.id, "r": reason }),
        }
    }
}

/// A team with one target for each operation: users to deactivate (one
/// by one, in bulk), delete (one, in bulk) and anonymize, an empty group,
/// and questions to delete (one, in bulk), archive and take a choice from.
/// Returns the superuser's token and the operations.
async fn scene(app: &TestApp) -> (String, Vec<Removal>) {
    let (_, root) = app.superuser("root").await;
    let mut user = Vec::new();
    for name in ["leaver", "dormant", "spammer", "bot", "erased"] {
        user.push(user_id(&app.user(name, false, false).await));
    }
    let group: i64 = sqlx::query_scalar("INSERT INTO groups (name) VALUES ('Temp') RETURNING id")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let mut question = Vec::new();
    for text in ["Q1", "Q2", "Q3", "Q4"] {
        let created = app
            .ok(
                Some(&root),
                "mutation($t: String!) { createQuestion(text: $t, choices: [\"a\", \"b\", \"c\"]) {
                    id choices { id } } }",
                json!({ "t": text }),
            )
            .await;
        question.push(created["createQuestion"].clone());
    }
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let removal = |field, document, previews, id| Removal {
        field,
        document,
        previews,
        id,
    };
    let removals = vec![
        removal(
            "deactivateUser",
            "mutation($id: ID!, $r: String) { deactivateUser(id: $id, input: { reason: $r }) { sessionsRevoked } }",
            false,
            user[0].clone(),
        ),
        removal(
            "deactivateUsers",
            "mutation($id: ID!, $r: String, $dry: Boolean) {
                deactivateUsers(ids: [$id], input: { reason: $r }, dryRun: $dry) { skipped { code } } }",
            true,
            user[1].clone(),
        ),
        removal(
            "deleteUser",
            "mutation($id: ID!, $r: String, $dry: Boolean) { deleteUser(id: $id, reason: $r, dryRun: $dry) { deleted } }",
            true,
            user[2].clone(),
        ),
        removal(
            "deleteUsers",
            "mutation($id: ID!, $r: String, $dry: Boolean) { deleteUsers(ids: [$id], reason: $r, dryRun: $dry) { deleted } }",
            true,
            user[3].clone(),
        ),
        removal(
            "anonymizeUser",
            "mutation($id: ID!, $r: String) { anonymizeUser(id: $id, reason: $r) { sessionsRevoked } }",
            false,
            user[4].clone(),
        ),
        removal(
            "deleteGroup",
            "mutation($id: ID!, $r: String, $dry: Boolean) { deleteGroup(id: $id, reason: $r, dryRun: $dry) { deleted } }",
            true,
            group_id(group),
        ),
        removal(
            "deleteQuestion",
            "mutation($id: ID!, $r: String, $dry: Boolean) { deleteQuestion(id: $id, reason: $r, dryRun: $dry) { deleted } }",
            true,
            text(&question[0]["id"]),
        ),
        removal(
            "deleteQuestions",
            "mutation($id: ID!, $r: String, $dry: Boolean) { deleteQuestions(ids: [$id], reason: $r, dryRun: $dry) { deleted } }",
            true,
            text(&question[1]["id"]),
        ),
        removal(
            "deleteChoice",
            "mutation($id: ID!, $r: String, $dry: Boolean) { deleteChoice(id: $id, reason: $r, dryRun: $dry) { deleted } }",
            true,
            text(&question[2]["choices"][2]["id"]),
        ),
        removal(
            "archiveQuestion",
            "mutation($id: ID!, $r: String) { archiveQuestion(id: $id, reason: $r) { archivedAt } }",
            false,
            text(&question[3]["id"]),
        ),
    ];
    (root, removals)
}

/// Each of these changed what it was asked to (and nothing was skipped).
fn assert_done(removal: &Removal, data: &Value) {
    let payload = &data[removal.field];
    let done = match removal.field {
        "deactivateUser" | "anonymizeUser" => payload["sessionsRevoked"].is_number(),
        "deactivateUsers" => payload["skipped"] == json!([]),
        "deleteUsers" | "deleteQuestions" => payload["deleted"] == json!([removal.id]),
        "archiveQuestion" => payload["archivedAt"].is_string(),
        _ => payload["deleted"] == json!(true),
    };
    assert!(done, "{}: {data}", removal.field);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reasons_required_no_removal_happens_without_one() {
    let app = TestApp::spawn_with(Settings {
        reason_policy: ReasonPolicy::Required,
        ..Settings::default()
    })
    .await;
    let (root, removals) = scene(&app).await;

    let before = snapshot(app.pool()).await;
    for removal in &removals {
        for missing in [None, Some(""), Some(" \n\t ")] {
            let vars = removal.vars(missing, false);
            let resp = app.gql(Some(&root), removal.document, vars).await;
            let error = &resp["errors"][0];
            assert_eq!(
                (&error["extensions"]["code"], &error["extensions"]["field"]),
                (&json!("INVALID_INPUT"), &json!("reason")),
                "{} with {missing:?}: {resp:#}",
                removal.field
            );
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("MEMBERDESK_REQUIRE_REASON"),
                "{resp:#}"
            );
        }
        // A preview writes nothing, so it needs no reason.
        if removal.previews {
            let preview = removal.vars(None, true);
            app.ok(Some(&root), removal.document, preview).await;
        }
    }
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "refusals and previews change nothing"
    );

    for removal in &removals {
        let vars = removal.vars(Some("tidy-up"), false);
        let data = app.ok(Some(&root), removal.document, vars).await;
        assert_done(removal, &data);
    }
    let explained = "SELECT count(*) FROM audit_entries WHERE reason = 'tidy-up'";
    assert_eq!(app.count(explained).await, removals.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_reason_is_optional() {
    let app = TestApp::spawn().await;
    let (root, removals) = scene(&app).await;
    for removal in &removals {
        let data = app
            .ok(Some(&root), removal.document, removal.vars(None, false))
            .await;
        assert_done(removal, &data);
    }
    let unexplained = "SELECT count(*) FROM audit_entries WHERE reason IS NULL
        AND action NOT IN ('LOGIN', 'USER_CREATED', 'QUESTION_CREATED')";
    assert_eq!(app.count(unexplained).await, removals.len() as i64);
}
