//! End-to-end tests: a real server per test, over HTTP, against real PostgreSQL.

mod accounts_security;
mod archive;
mod audit;
mod auth;
mod bulk_deletion;
mod cli;
mod concurrency;
mod console;
mod deletion;
mod demo;
mod erasure;
mod faults;
mod first_hour;
mod guards;
mod hardening;
mod helpers;
mod hostile;
mod lifecycle;
mod limits;
mod operator_cli;
mod own_password;
mod reads;
mod reasons;
mod records;
mod scim;
mod scope;
mod startup;
mod transport;
mod validation;
mod visibility;
mod webhooks;

use helpers::{PASSWORD, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_me_and_wrong_password_is_refused() {
    let app = TestApp::spawn().await;
    app.user("rani", true, false).await;
    let token = app.login("RANI", PASSWORD).await;
    let me = app
        .ok(
            Some(&token),
            "{ me { username isStaff lastLogin } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["username"], "rani");
    assert!(me["me"]["lastLogin"].is_string());
    let code = app
        .err_code(
            None,
            "mutation { login(username: \"rani\", password: \"wrong password\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "INVALID_CREDENTIALS");
    let unknown = app
        .err_code(
            None,
            "mutation { login(username: \"nobody\", password: \"wrong password\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(unknown, "INVALID_CREDENTIALS");
    assert_eq!(
        app.err_code(None, "{ me { username } }", json!({})).await,
        "UNAUTHENTICATED"
    );
}

#[test]
fn schema_snapshot_matches() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        committed == memberdesk::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -q -- export-schema > schema.graphql`"
    );
}
