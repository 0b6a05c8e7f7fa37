//! The audit log: filters, pages, entries that outlive their actor and
//! target, and no way to change or remove an entry.

use serde_json::{Value, json};

use crate::helpers::{AUDIT_ENTRY, TestApp, user_id};

/// Root deactivates bob for a reason, then reactivates him.
struct History {
    app: TestApp,
    root: String,
    token: String,
    bob: String,
    /// Just before the deactivation.
    start: chrono::DateTime<chrono::Utc>,
}

async fn history() -> History {
    let app = TestApp::spawn().await;
    let (root, token) = app.superuser("root").await;
    let bob = user_id(&app.user("bob", false, false).await);
    let start = chrono::Utc::now();
    app.deactivate(&token, &bob)
        .input(json!({ "reason": "left" }))
        .ok()
        .await;
    app.reactivate(&token, &bob).ok().await;
    History {
        app,
        root: user_id(&root),
        token,
        bob,
        start,
    }
}

impl History {
    async fn entries(&self, filter: Value) -> Vec<Value> {
        self.app.audit_entries(&self.token, filter).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_filters_by_action_target_actor_and_time() {
    let h = history().await;
    let deactivations = h.entries(json!({ "action": "USER_DEACTIVATED" })).await;
    assert_eq!(deactivations.len(), 1);
    assert_eq!(deactivations[0]["actorUsername"], "root");
    assert_eq!(deactivations[0]["targetRepr"], "bob");
    assert_eq!(deactivations[0]["reason"], "left");
    let about_bob = h.entries(json!({ "targetUserId": h.bob })).await;
    let actions: Vec<&str> = about_bob
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        ["USER_REACTIVATED", "USER_DEACTIVATED", "USER_CREATED"]
    );
    let by_root = h.entries(json!({ "actorId": h.root })).await;
    assert!(by_root.iter().all(|e| e["actorUsername"] == "root"));
    let since = h.entries(json!({ "since": h.start, "targetUserId": h.bob }));
    assert_eq!(since.await.len(), 2);
    let until = h.entries(json!({ "until": h.start, "targetUserId": h.bob }));
    assert_eq!(until.await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_two_walk_the_whole_log_once() {
    let h = history().await;
    let all = h.entries(json!({})).await;
    let page_of_two =
        format!("edges {{ node {{ {AUDIT_ENTRY} }} }} pageInfo {{ hasNextPage endCursor }}");
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = h
            .app
            .audit_log(&h.token, json!({}))
            .arg("first", "Int", 2)
            .arg("after", "String", after)
            .select(&page_of_two)
            .ok()
            .await;
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
    let too_many = h
        .app
        .audit_log(&h.token, json!({}))
        .arg("first", "Int", 101);
    assert_eq!(too_many.err_code().await, "INVALID_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_outlive_their_deleted_target() {
    let h = history().await;
    let deleted = h
        .app
        .delete_user(&h.token, &h.bob)
        .policy("SET_NULL")
        .ok()
        .await;
    assert_eq!(deleted["deleted"], true);
    // Its entries stay, with the snapshot of its name.
    let after_delete = h.entries(json!({ "action": "USER_DEACTIVATED" })).await;
    assert_eq!(after_delete[0]["targetRepr"], "bob");
    assert_eq!(after_delete[0]["targetUser"], Value::Null);
    let deletions = h.entries(json!({ "action": "USER_DELETED" })).await;
    assert_eq!(deletions.len(), 1);
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
