//! Changing your own password needs the current one: a stolen token alone
//! must not become a permanent takeover. Someone else's (within scope) does
//! not. Either way the user's other sessions end.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, snapshot, user_id};

const SET_OWN: &str = "mutation($id: ID!, $p: String!, $c: String) { setPassword(userId: $id, password: $p, currentPassword: $c) }";
const NEW: &str = "plum tunnel cobalt harvest";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_password_needs_the_current_one() {
    let app = TestApp::spawn().await;
    let me = app.user("member", false, false).await;
    let token = app.login("member", PASSWORD).await;
    let other_session = app.login("member", PASSWORD).await;
    let id = user_id(&me);

    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(Some(&token), SET_OWN, json!({ "id": id, "p": NEW }))
        .await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{resp:#}"
    );
    assert_eq!(
        resp["errors"][0]["extensions"]["field"], "currentPassword",
        "{resp:#}"
    );
    assert_eq!(snapshot(app.pool()).await, before);

    let wrong = json!({ "id": id, "p": NEW, "c": "not my password at all" });
    assert_eq!(
        app.err_code(Some(&token), SET_OWN, wrong).await,
        "INVALID_CREDENTIALS"
    );
    assert_eq!(snapshot(app.pool()).await, before);
    app.login("member", PASSWORD).await;

    let right = json!({ "id": id, "p": NEW, "c": PASSWORD });
    assert_eq!(
        app.ok(Some(&token), SET_OWN, right).await["setPassword"],
        true
    );
    app.login("member", NEW).await;
    assert!(
        app.gql(Some(&token), "{ me { id } }", json!({}))
            .await
            .get("errors")
            .is_none()
    );
    assert_eq!(
        app.err_code(Some(&other_session), "{ me { id } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}

/// Guessing the current password through `setPassword` is held to the
/// failed-login limit, like guessing it through `login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_current_password_is_rate_limited() {
    let app = TestApp::spawn().await;
    let me = app.user("member", false, false).await;
    let token = app.login("member", PASSWORD).await;
    let mut codes = Vec::new();
    for n in 0..8 {
        let guess = json!({ "id": user_id(&me), "p": NEW, "c": format!("guess number {n}") });
        codes.push(app.err_code(Some(&token), SET_OWN, guess).await);
    }
    assert!(codes.iter().any(|c| c == "RATE_LIMITED"), "{codes:?}");
    // Even the right one is refused while limited, and nothing changed.
    let right = json!({ "id": user_id(&me), "p": NEW, "c": PASSWORD });
    assert_eq!(
        app.err_code(Some(&token), SET_OWN, right).await,
        "RATE_LIMITED"
    );
    let hash_unchanged: bool = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM audit_entries WHERE action = 'PASSWORD_CHANGED')",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(hash_unchanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_password_needs_no_current_one() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.staff_with("helpdesk", &["auth.change_user"]).await;
    let member = app.user("member", false, false).await;
    let session = app.login("member", PASSWORD).await;
    let data = app
        .ok(
            Some(&admin),
            SET_OWN,
            json!({ "id": user_id(&member), "p": NEW }),
        )
        .await;
    assert_eq!(data["setPassword"], true);
    app.login("member", NEW).await;
    assert_eq!(
        app.err_code(Some(&session), "{ me { id } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}
