//! Bad input to the admin writes: each is INVALID_INPUT naming the field,
//! and changes nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, snapshot, user_id};

const CREATE: &str = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }";

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
    let cases = [
        (
            CREATE,
            json!({ "i": input(json!({ "username": "" })) }),
            "username",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "username": "x".repeat(200) })) }),
            "username",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "username": "nul\u{0}byte" })) }),
            "username",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "username": "two words" })) }),
            "username",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "username": "TAKEN" })) }),
            "username",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "username": "ｔａｋｅｎ" })) }),
            "username",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "email": "not-an-email" })) }),
            "email",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "email": "a@b.c\u{0}" })) }),
            "email",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "password": "short" })) }),
            "password",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "password": "12345678901" })) }),
            "password",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "password": "password123" })) }),
            "password",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "password": "newbie-newbie", "username": "newbie-newbie" })) }),
            "password",
        ),
        (
            CREATE,
            json!({ "i": input(json!({ "firstName": "x".repeat(1000) })) }),
            "firstName",
        ),
        (
            "mutation($id: ID!) { updateUser(id: $id, input: { email: \"nope\" }) { id } }",
            json!({ "id": user_id(&taken) }),
            "email",
        ),
        (
            "mutation { createGroup(name: \"\") { id } }",
            json!({}),
            "name",
        ),
        (
            "mutation { createGroup(name: \"g\", permissions: [\"auth.fly\"]) { id } }",
            json!({}),
            "permissions",
        ),
        (
            "mutation { createQuestion(text: \"Only one?\", choices: [\"a\"]) { id } }",
            json!({}),
            "choices",
        ),
        (
            "mutation { createQuestion(text: \"\", choices: [\"a\", \"b\"]) { id } }",
            json!({}),
            "text",
        ),
        (
            "mutation { castVote(choiceId: \"???\") { id } }",
            json!({}),
            "choiceId",
        ),
    ];
    let before = snapshot(app.pool()).await;
    for (query, vars, field) in cases {
        let resp = app.gql(Some(&token), query, vars.clone()).await;
        let error = &resp["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "INVALID_INPUT",
            "{vars}: {resp}"
        );
        assert_eq!(error["extensions"]["field"], field, "{vars}: {resp}");
        assert_eq!(
            snapshot(app.pool()).await,
            before,
            "{vars} changed something"
        );
    }

    // A second vote on the same question is refused too.
    let q = app
        .ok(Some(&token), "mutation { createQuestion(text: \"Tea?\", choices: [\"Yes\", \"No\"]) { choices { id } } }", json!({}))
        .await;
    let vote = "mutation($c: ID!) { castVote(choiceId: $c) { id } }";
    app.ok(
        Some(&token),
        vote,
        json!({ "c": q["createQuestion"]["choices"][0]["id"] }),
    )
    .await;
    let before = snapshot(app.pool()).await;
    let again = app
        .err_code(
            Some(&token),
            vote,
            json!({ "c": q["createQuestion"]["choices"][1]["id"] }),
        )
        .await;
    assert_eq!(again, "INVALID_INPUT");
    assert_eq!(snapshot(app.pool()).await, before);
}
