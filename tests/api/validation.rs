//! Bad input to the admin writes: each is INVALID_INPUT naming the field,
//! and changes nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, ids, user_id};

/// A valid `CreateUserInput` with `overrides` applied.
fn input(overrides: Value) -> Value {
    let mut base = json!({ "username": "newbie", "email": "newbie@example.org", "password": "a long enough passphrase" });
    for (k, v) in overrides.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let taken = app.user("taken", false, false).await;
    let create = |overrides: Value| app.create_user(&token, input(overrides));
    let cases = [
        (create(json!({ "username": "" })), "username"),
        (create(json!({ "username": "x".repeat(200) })), "username"),
        (create(json!({ "username": "nul\u{0}byte" })), "username"),
        (create(json!({ "username": "two words" })), "username"),
        (create(json!({ "username": "TAKEN" })), "username"),
        (create(json!({ "username": "ｔａｋｅｎ" })), "username"),
        (create(json!({ "email": "not-an-email" })), "email"),
        (create(json!({ "email": "a@b.c\u{0}" })), "email"),
        (create(json!({ "password": "short" })), "password"),
        (create(json!({ "password": "12345678901" })), "password"),
        (create(json!({ "password": "password123" })), "password"),
        (
            create(json!({ "password": "newbie-newbie", "username": "newbie-newbie" })),
            "password",
        ),
        (
            create(json!({ "firstName": "x".repeat(1000) })),
            "firstName",
        ),
        (
            app.update_user(&token, &user_id(&taken), json!({ "email": "nope" })),
            "email",
        ),
        (app.create_group(&token, "", &[]), "name"),
        (app.create_group(&token, "g", &["auth.fly"]), "permissions"),
        (app.create_question(&token, "Only one?", &["a"]), "choices"),
        (app.create_question(&token, "", &["a", "b"]), "text"),
        (app.vote(&token, "???"), "choiceId"),
    ];
    for (call, field) in cases {
        let what = call.describe();
        let refusal = call.refused("INVALID_INPUT").await;
        assert_eq!(refusal.field, field, "{what}: {refusal:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_vote_on_the_same_question_is_refused() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let q = app
        .create_question(&token, "Tea?", &["Yes", "No"])
        .ok()
        .await;
    let choices = ids(&q["choices"]);
    app.vote(&token, &choices[0]).ok().await;
    app.vote(&token, &choices[1]).refused("INVALID_INPUT").await;
}
