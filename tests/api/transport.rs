//! HTTP behaviour of the server as the contract fixes it: how `/graphql`
//! accepts and refuses requests (method, content type, size, shape, query
//! limits, response media type), the health checks, and the offline
//! playground with its assets.

use memberdesk::config::Settings;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, user_id};

const GRAPHQL_JSON: &str = "application/graphql-response+json";

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Sends `req`; the status, the content type and the body parsed as JSON.
async fn exchange(req: RequestBuilder) -> (StatusCode, String, Value) {
    let resp = req.send().await.expect("a response");
    let status = resp.status();
    let ct = content_type(&resp);
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
    (status, ct, body)
}

/// A refusal must still be a GraphQL error body with a code, never a bare
/// status or an HTML page.
fn assert_graphql_error(body: &Value) -> String {
    let code = body["errors"][0]["extensions"]["code"].as_str();
    assert!(
        body["errors"][0]["message"].is_string(),
        "no error message: {body:#}"
    );
    code.unwrap_or_else(|| panic!("no error code: {body:#}"))
        .to_owned()
}

/// `POST /graphql` with this JSON body and no other headers.
async fn post_graphql(app: &TestApp, body: &Value) -> (StatusCode, String, Value) {
    exchange(app.post("/graphql").json(body)).await
}

/// `GET /graphql` with these query-string parameters and no other headers.
async fn get_graphql(app: &TestApp, params: &[(&str, &str)]) -> (StatusCode, String, Value) {
    exchange(app.get("/graphql").query(params)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_runs_a_query() {
    let app = TestApp::spawn().await;
    let query = "query Q($name: String!) { __type(name: $name) { name } }";
    let params = [("query", query), ("variables", "{\"name\": \"User\"}")];
    let (status, ct, body) = get_graphql(&app, &params).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(body["data"]["__type"]["name"], "User", "{body:#}");

    // A query string wins over the HTML check: tools that send both get data.
    let req = app
        .get("/graphql")
        .header(ACCEPT, "text/html, application/json");
    let (status, _, body) = exchange(req.query(&[("query", "{ __typename }")])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["__typename"].is_string(), "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_refuses_mutations_without_running_them() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let login =
        format!("mutation {{ login(username: \"rani\", password: \"{PASSWORD}\") {{ token }} }}");
    let two_ops = format!(
        "query A {{ __typename }} {}",
        login.replacen("mutation", "mutation B", 1)
    );
    // A link or an <img> can trigger a GET; it must never change state.
    // `operation_name` is the spelling async-graphql's GET parser reads.
    let attempts: Vec<Vec<(&str, &str)>> = vec![
        vec![("query", "mutation { logout }")],
        vec![("query", login.as_str())],
        vec![("query", two_ops.as_str()), ("operation_name", "B")],
    ];
    for params in attempts {
        let resp = app.get("/graphql").query(&params).send().await.unwrap();
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = resp.status();
        let body: Value = resp.json().await.expect("a JSON body");
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{params:?}: {body:#}"
        );
        assert!(
            allow.is_some_and(|a| a.contains("POST")),
            "405 without Allow"
        );
        assert_graphql_error(&body);
    }
    // The standard `operationName` spelling must not slip a mutation past
    // the check either, whatever status it gets.
    let (_, _, body) =
        get_graphql(&app, &[("query", two_ops.as_str()), ("operationName", "B")]).await;
    assert_graphql_error(&body);
    assert!(body["data"].is_null(), "{body:#}");

    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_entries WHERE action LIKE 'LOGIN%'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_selects_the_operation_named_by_operation_name() {
    let app = TestApp::spawn().await;
    let query = "query A { __typename } query B { __schema { queryType { name } } }";
    let (status, _, body) = get_graphql(&app, &[("query", query), ("operationName", "A")]).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(body["data"]["__typename"].is_string(), "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_are_refused() {
    let app = TestApp::spawn().await;
    let put = app.client.put(app.url("/graphql"));
    let (status, _, body) = exchange(put.json(&json!({ "query": "{ __typename }" }))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_graphql_error(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_without_a_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let body = json!({
        "query": format!("mutation {{ login(username: \"rani\", password: \"{PASSWORD}\") {{ token }} }}")
    })
    .to_string();
    // These are the types a plain HTML form can send cross-site without a
    // preflight, so accepting any of them would be a CSRF hole.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let mut req = app.post("/graphql").body(body.clone());
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        let (status, _, resp) = exchange(req).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_graphql_error(&resp);
    }
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);

    // Parameters and case in a JSON content type are fine.
    let req = app
        .post("/graphql")
        .header(CONTENT_TYPE, "Application/JSON; charset=utf-8");
    let (status, _, body) =
        exchange(req.body(json!({ "query": "{ __typename }" }).to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(body["data"]["__typename"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413() {
    let app = TestApp::spawn_with(Settings {
        max_body_bytes: 4096,
        ..Settings::default()
    })
    .await;
    let small = json!({ "query": "{ __typename }" });
    let (status, _, _) = post_graphql(&app, &small).await;
    assert_eq!(status, StatusCode::OK);

    // Padding in a comment keeps the document valid: only the size is wrong.
    let big = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(8192)) });
    let (status, _, body) = post_graphql(&app, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_graphql_error(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_body_limit_refuses_a_megabyte() {
    let app = TestApp::spawn().await;
    let big = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(1024 * 1024)) });
    let (status, _, body) = post_graphql(&app, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_graphql_error(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_are_refused() {
    let app = TestApp::spawn().await;
    app.user("rani", false, false).await;
    let login = json!({
        "query": "mutation($p: String!) { login(username: \"rani\", password: $p) { token } }",
        "variables": { "p": "not the password at all" }
    });
    // A batch would multiply guesses per request just like aliases.
    let batch = json!([login.clone(), login.clone(), login]);
    let (status, _, body) = post_graphql(&app, &batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_graphql_error(&body);
    assert_eq!(app.audit_count("LOGIN_FAILED").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_with_a_graphql_error() {
    let app = TestApp::spawn().await;
    for raw in [
        "{\"query\": ",
        "not json at all",
        "",
        "{\"query\": 42}",
        "\"{ __typename }\"",
    ] {
        let req = app
            .post("/graphql")
            .header(CONTENT_TYPE, "application/json");
        let (status, ct, body) = exchange(req.body(raw)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw:?}: {body:#}");
        assert!(ct.contains("json"), "{ct}");
        assert_graphql_error(&body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_deeper_than_the_limit_is_refused_with_a_code() {
    let app = TestApp::spawn().await;
    // 22 levels against the default limit of 16; every field exists and
    // every list asks for one item (lists count their size in the
    // complexity, checked first), so only the depth is wrong.
    let mut query = String::from("id");
    for _ in 0..4 {
        query = format!(
            "votes(first: 1) {{ nodes {{ choice {{ question {{ createdBy {{ {query} }} }} }} }} }}"
        );
    }
    let query = format!("{{ me {{ {query} }} }}");
    let (status, _, body) = post_graphql(&app, &json!({ "query": query })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assert_graphql_error(&body), "INVALID_INPUT");
    let message = body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        message.contains("deep") || message.contains("depth"),
        "{message}"
    );
    assert!(body["data"].is_null());

    // Within the limit the same shape is accepted (and fails on auth instead).
    let shallow =
        "{ me { votes(first: 1) { nodes { choice { question { createdBy { id } } } } } } }";
    let resp = app.gql(None, shallow, json!({})).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{resp:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_over_the_complexity_limit_is_refused_with_a_code() {
    let app = TestApp::spawn().await;
    // Shallow and short, but lists count their size: 100 users, each in up
    // to 20 groups of 100 members, is far over the default budget. (Piling
    // up aliases no longer gets this far: the alias and selection bounds
    // refuse it first, see limits.rs.)
    let query =
        "{ users(first: 100) { nodes { groups { members(first: 100) { nodes { id } } } } } }";
    let (status, _, body) = post_graphql(&app, &json!({ "query": query })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assert_graphql_error(&body), "INVALID_INPUT");
    let message = body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(message.contains("complex"), "{message}");
    assert!(body["data"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_response_media_type_is_negotiated() {
    let app = TestApp::spawn().await;
    let post = |query: &str, accept: Option<&str>| {
        let mut req = app.post("/graphql").json(&json!({ "query": query }));
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        exchange(req)
    };

    let (status, ct, body) = post("{ __typename }", Some(GRAPHQL_JSON)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with(GRAPHQL_JSON), "{ct}");
    assert!(body["data"]["__typename"].is_string());

    let (status, ct, _) = post("{ __typename }", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/json"), "{ct}");

    // A document that never ran has no data: under the new media type that
    // is a client error, so clients can tell it from a partial result.
    for broken in ["{ __typename", "{ noSuchField }"] {
        let (status, ct, body) = post(broken, Some(GRAPHQL_JSON)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{broken}: {body:#}");
        assert!(ct.starts_with(GRAPHQL_JSON), "{ct}");
        assert_eq!(assert_graphql_error(&body), "INVALID_INPUT");
        // Under plain JSON the legacy behaviour stays: 200 with errors.
        let (status, _, body) = post(broken, Some("application/json")).await;
        assert_eq!(status, StatusCode::OK, "{broken}");
        assert_graphql_error(&body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executed_request_with_a_field_error_is_200_under_graphql_response_json() {
    let app = TestApp::spawn().await;
    // `me: User!` fails for an anonymous caller and nulls `data`, but the
    // request did run: GraphQL over HTTP says 2xx for that, and the
    // endpoint's own comment limits 400 to requests that never ran.
    let req = app.post("/graphql").header(ACCEPT, GRAPHQL_JSON);
    let (status, _, body) = exchange(req.json(&json!({ "query": "{ me { id } }" }))).await;
    assert_eq!(assert_graphql_error(&body), "UNAUTHENTICATED");
    assert_eq!(status, StatusCode::OK, "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_answer_200() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let resp = app.get(path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_is_served_with_its_assets_offline() {
    let app = TestApp::spawn().await;
    for (path, accept) in [
        ("/", None),
        ("/graphql", Some("text/html,application/xhtml+xml")),
    ] {
        let mut req = app.get(path);
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ct = content_type(&resp);
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        let html = resp.text().await.unwrap();
        assert!(html.to_lowercase().contains("graphiql"), "{path}");
        // The playground must work without internet access: no external scripts or styles.
        for cdn in [
            "unpkg.com",
            "jsdelivr",
            "cdnjs",
            "googleapis",
            "src=\"http",
            "href=\"http",
        ] {
            assert!(!html.contains(cdn), "{path} loads from {cdn}");
        }
        assert!(
            html.contains("/playground/assets/graphiql.min.js"),
            "{path}"
        );
    }

    for (asset, kind) in [
        ("graphiql.min.js", "javascript"),
        ("react.production.min.js", "javascript"),
        ("react-dom.production.min.js", "javascript"),
        ("graphiql.min.css", "text/css"),
    ] {
        let path = format!("/playground/assets/{asset}");
        let resp = app.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        let ct = content_type(&resp);
        assert!(ct.contains(kind), "{asset}: {ct}");
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.len() > 1000, "{asset} is suspiciously small");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_assets_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/playground/assets/nope.js",
        "/playground/assets/..%2F..%2FCargo.toml",
        "/playground/assets/",
        "/no-such-page",
    ] {
        let resp = app.get(path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_parameters_are_400_and_unexecuted_requests_have_no_data() {
    let app = TestApp::spawn().await;
    for body in [
        json!({ "qeury": "{ __typename }" }),
        json!({ "query": 42 }),
        json!({ "query": "{ __typename }", "variables": "x" }),
        json!({ "query": "{ __typename }", "operationName": 1 }),
        json!("{ __typename }"),
    ] {
        let (status, _, _) = post_graphql(&app, &body).await;
        assert_eq!(status, 400, "{body}");
    }
    let req = app.post("/graphql").header(ACCEPT, GRAPHQL_JSON);
    let (status, _, body) = exchange(req.json(&json!({ "query": "{ nope" }))).await;
    assert_eq!(status, 400);
    assert!(
        body.get("data").is_none(),
        "a request that never ran has no data entry: {body}"
    );
    assert!(body["errors"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_operations_errors_and_lifecycle() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    app.gql(None, "{ me { id } }", json!({})).await;
    app.gql(None, "{ nope }", json!({})).await;
    app.deactivate(&root, &user_id(&bob)).ok().await;
    let resp = app.get("/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    for line in [
        "memberdesk_graphql_requests_total{operation=\"me\"} 1",
        "memberdesk_graphql_requests_total{operation=\"none\"} 1",
        "memberdesk_graphql_errors_total{code=\"UNAUTHENTICATED\"} 1",
        "memberdesk_graphql_errors_total{code=\"INVALID_INPUT\"} 1",
        "memberdesk_lifecycle_operations_total{operation=\"deactivateUser\"} 1",
        "memberdesk_graphql_request_duration_seconds_count{operation=\"deactivateUser\"} 1",
        "memberdesk_db_pool_connections{state=\"idle\"}",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
    assert!(!text.contains("nope"), "client words never become labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_record_deletions_archiving_and_erasure_requests_that_went_through() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let made = app
        .ok(
            Some(&root),
            r#"mutation { createQuestion(text: "Lunch?", choices: ["Yes", "No", "Later"]) { id choices { id } } }"#,
            json!({}),
        )
        .await;
    let question = made["createQuestion"]["id"].as_str().unwrap().to_owned();
    let choice = made["createQuestion"]["choices"][2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = app
        .ok(
            Some(&root),
            r#"mutation { createGroup(name: "Temp") { id } }"#,
            json!({}),
        )
        .await["createGroup"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = user_id(&bob);
    for (field, arguments) in [
        ("archiveQuestion", format!("id: \"{question}\"")),
        ("restoreQuestion", format!("id: \"{question}\"")),
        ("deleteChoice", format!("id: \"{choice}\"")),
        ("deleteQuestion", format!("id: \"{question}\"")),
        ("deleteGroup", format!("id: \"{group}\"")),
        ("requestErasure", format!("userId: \"{bob}\"")),
        ("cancelErasure", format!("userId: \"{bob}\"")),
    ] {
        let query = format!("mutation {{ {field}({arguments}) {{ __typename }} }}");
        app.ok(Some(&root), &query, json!({})).await;
    }
    // Refused (the group is gone): not counted.
    let again = format!("mutation {{ deleteGroup(id: \"{group}\") {{ deleted }} }}");
    let refused = app.gql(Some(&root), &again, json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "NOT_FOUND");

    let text = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for field in [
        "archiveQuestion",
        "restoreQuestion",
        "deleteChoice",
        "deleteQuestion",
        "deleteGroup",
        "requestErasure",
        "cancelErasure",
    ] {
        let line = format!("memberdesk_lifecycle_operations_total{{operation=\"{field}\"}} 1\n");
        assert!(text.contains(&line), "missing {line}:\n{text}");
    }
}
