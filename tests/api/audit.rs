//! The audit log: filters, pages, entries that outlive their actor and
//! target, and no way to change or remove an entry.

use serde_json::{Value, json};

use crate::helpers::{TestApp, user_id};

const LOG: &str = "query($f: AuditFilter, $n: Int, $a: String) { auditLog(filter: $f, first: $n, after: $a) {
    totalCount edges { cursor node { action actorUsername targetRepr targetUser { username } reason } }
    pageInfo { hasNextPage endCursor } } }";

async fn entries(app: &TestApp, token: &str, filter: Value) -> Vec<Value> {
    let data = app
        .ok(Some(token), LOG, json!({ "f": filter, "n": 100 }))
        .await;
    let edges = data["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(data["auditLog"]["totalCount"], json!(edges.len()));
    edges.iter().map(|e| e["node"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_filters_pages_and_outlives_its_subjects() {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let bob_id = json!(user_id(&bob));
    let start = chrono::Utc::now();
    app.ok(
        Some(&token),
        "mutation($id: ID!) { deactivateUser(id: $id, input: { reason: \"left\" }) { sessionsRevoked } }",
        json!({ "id": bob_id }),
    )
    .await;
    app.ok(
        Some(&token),
        "mutation($id: ID!) { reactivateUser(id: $id) { user { id } } }",
        json!({ "id": bob_id }),
    )
    .await;

    let deactivations = entries(&app, &token, json!({ "action": "USER_DEACTIVATED" })).await;
    assert_eq!(deactivations.len(), 1);
    assert_eq!(deactivations[0]["actorUsername"], "root");
    assert_eq!(deactivations[0]["targetRepr"], "bob");
    assert_eq!(deactivations[0]["reason"], "left");
    let about_bob = entries(&app, &token, json!({ "targetUserId": bob_id })).await;
    let actions: Vec<&str> = about_bob
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        ["USER_REACTIVATED", "USER_DEACTIVATED", "USER_CREATED"]
    );
    let by_root = entries(&app, &token, json!({ "actorId": user_id(&root) })).await;
    assert!(by_root.iter().all(|e| e["actorUsername"] == "root"));
    assert_eq!(
        entries(
            &app,
            &token,
            json!({ "since": start, "targetUserId": bob_id })
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        entries(
            &app,
            &token,
            json!({ "until": start, "targetUserId": bob_id })
        )
        .await
        .len(),
        1
    );

    // Pages of 2 walk the whole log once.
    let all = entries(&app, &token, json!({})).await;
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = app
            .ok(Some(&token), LOG, json!({ "n": 2, "a": after }))
            .await;
        let page = &data["auditLog"];
        walked.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] == json!(false) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(walked, all);
    assert_eq!(
        app.err_code(Some(&token), LOG, json!({ "n": 101 })).await,
        "INVALID_INPUT"
    );

    // The target is deleted: its entries stay, with the snapshot of its name.
    let deleted = app
        .ok(
            Some(&token),
            "mutation($id: ID!) { deleteUser(id: $id, policy: SET_NULL) { deleted } }",
            json!({ "id": bob_id }),
        )
        .await;
    assert_eq!(deleted["deleteUser"]["deleted"], true);
    let after_delete = entries(&app, &token, json!({ "action": "USER_DEACTIVATED" })).await;
    assert_eq!(after_delete[0]["targetRepr"], "bob");
    assert_eq!(after_delete[0]["targetUser"], Value::Null);
    assert_eq!(
        entries(&app, &token, json!({ "action": "USER_DELETED" }))
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_can_edit_or_remove_an_entry() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let fields = app
        .ok(
            Some(&token),
            "{ __type(name: \"MutationRoot\") { fields { name } } }",
            json!({}),
        )
        .await;
    let names = fields["__type"]["fields"].to_string().to_lowercase();
    assert!(
        !names.contains("audit"),
        "no mutation touches the audit log: {names}"
    );
    // Not even with direct SQL: PostgreSQL refuses.
    for sql in [
        "UPDATE audit_entries SET action = 'LOGIN'",
        "UPDATE audit_entries SET reason = 'rewritten'",
        "DELETE FROM audit_entries",
    ] {
        let refused = sqlx::query(sql).execute(app.pool()).await;
        assert!(refused.is_err(), "{sql} was allowed");
    }
    assert!(app.count("SELECT count(*) FROM audit_entries").await > 0);
}
