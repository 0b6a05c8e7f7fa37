//! Changing your own password needs the current one: a stolen token alone
//! must not become a permanent takeover. Someone else's (within scope) does
//! not. Either way the user's other sessions end.

use crate::helpers::{Call, PASSWORD, TestApp, user_id};

const NEW: &str = "plum tunnel cobalt harvest";

/// `setPassword` of user `id` to `NEW`, sent with `token`.
fn set_new_password<'a>(app: &'a TestApp, token: &str, id: &str) -> Call<'a> {
    app.set_password(token, id, NEW)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_password_needs_the_current_one() {
    let app = TestApp::spawn().await;
    let id = user_id(&app.user("member", false, false).await);
    let token = app.login("member", PASSWORD).await;
    let other_session = app.login("member", PASSWORD).await;

    let refusal = set_new_password(&app, &token, &id)
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(refusal.field, "currentPassword", "{refusal:?}");
    set_new_password(&app, &token, &id)
        .current_password("not my password at all")
        .refused("INVALID_CREDENTIALS")
        .await;
    app.login("member", PASSWORD).await;

    let changed = set_new_password(&app, &token, &id)
        .current_password(PASSWORD)
        .ok()
        .await;
    assert_eq!(changed, true);
    app.login("member", NEW).await;
    assert!(app.me(&token).await.is_ok());
    assert_eq!(app.me(&other_session).await.unwrap_err(), "UNAUTHENTICATED");
}

/// Guessing the current password through `setPassword` is held to the
/// failed-login limit, like guessing it through `login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_current_password_is_rate_limited() {
    let app = TestApp::spawn().await;
    let id = user_id(&app.user("member", false, false).await);
    let token = app.login("member", PASSWORD).await;
    let mut codes = Vec::new();
    for n in 0..8 {
        let guess =
            set_new_password(&app, &token, &id).current_password(&format!("guess number {n}"));
        codes.push(guess.err_code().await);
    }
    assert!(codes.iter().any(|c| c == "RATE_LIMITED"), "{codes:?}");
    // Even the right one is refused while limited, and nothing changed.
    let right = set_new_password(&app, &token, &id).current_password(PASSWORD);
    assert_eq!(right.err_code().await, "RATE_LIMITED");
    assert_eq!(app.audit_count("PASSWORD_CHANGED").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_password_needs_no_current_one() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.staff_with("helpdesk", &["auth.change_user"]).await;
    let member = user_id(&app.user("member", false, false).await);
    let session = app.login("member", PASSWORD).await;
    assert_eq!(set_new_password(&app, &admin, &member).ok().await, true);
    app.login("member", NEW).await;
    assert_eq!(app.me(&session).await.unwrap_err(), "UNAUTHENTICATED");
}
