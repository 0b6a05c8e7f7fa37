//! What one request may cost, and that it is refused before it runs when it
//! costs more: fragment blow-ups and cycles, fragments and aliases, lists
//! counted by their size, password hashes, mutations per request; and that
//! `/metrics` keeps a number of series the schema fixes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use memberdesk::config::Settings;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, snapshot, user_id};

const GRAPHQL_JSON: &str = "application/graphql-response+json";

/// POSTs `query` accepting `accept`; returns the status, the body and how long it took.
async fn post(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    accept: &str,
) -> (StatusCode, Value, Duration) {
    let mut req = app
        .post("/graphql")
        .header(ACCEPT, accept)
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let started = Instant::now();
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.json().await.expect("JSON body");
    (status, body, started.elapsed())
}

/// A refusal before execution, as GraphQL over HTTP has it: 400 under its
/// media type, one `INVALID_INPUT` error about the `query`, no `data` at all.
/// Returns the message.
async fn assert_refused(app: &TestApp, token: Option<&str>, query: &str) -> String {
    let (status, body, _) = post(app, token, query, GRAPHQL_JSON).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:#}");
    assert!(body.get("data").is_none(), "never executed: {body:#}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "INVALID_INPUT", "{body:#}");
    assert_eq!(error["extensions"]["field"], "query", "{body:#}");
    error["message"].as_str().unwrap().to_owned()
}

/// `query { __typename ...F0 }` where each fragment spreads the next twice:
/// about a kilobyte that expands to 2^n selections.
fn doubling_fragments(n: usize) -> String {
    let mut query = String::from("query { __typename ...F0 }");
    for i in 0..n {
        let next = i + 1;
        query.push_str(&format!(
            " fragment F{i} on QueryRoot {{ ...F{next} ...F{next} }}"
        ));
    }
    query.push_str(&format!(" fragment F{n} on QueryRoot {{ __typename }}"));
    query
}

async fn healthz_latency(app: &TestApp) -> Duration {
    let started = Instant::now();
    let resp = app.get("/healthz").send().await.expect("healthz answers");
    assert_eq!(resp.status(), 200);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_blow_up_is_refused_in_milliseconds_while_healthz_stays_prompt() {
    let app = TestApp::spawn().await;
    let query = doubling_fragments(31);
    assert!(query.len() < 1500, "{} bytes", query.len());
    // Two at once: enough to occupy every worker of this runtime if the
    // document were expanded, with /healthz asked in the meantime.
    let bombs = futures_util::future::join(
        post(&app, None, &query, GRAPHQL_JSON),
        post(&app, None, &query, GRAPHQL_JSON),
    );
    let health = async {
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            slowest = slowest.max(healthz_latency(&app).await);
        }
        slowest
    };
    let work = futures_util::future::join(bombs, health);
    let (((s1, b1, t1), (s2, b2, t2)), health) =
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("the server answered within 20 s");
    for (status, body) in [(s1, &b1), (s2, &b2)] {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
        assert!(body.get("data").is_none(), "{body:#}");
    }
    assert!(
        health < Duration::from_millis(500),
        "healthz took {health:?}"
    );
    // Timed alone too, once the connections are warm; the best of three
    // keeps a busy test machine from deciding the result.
    let mut best = t1.min(t2);
    for _ in 0..3 {
        let (status, _, took) = post(&app, None, &query, GRAPHQL_JSON).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        best = best.min(took);
    }
    assert!(best < Duration::from_millis(100), "refused in {best:?}");
    // Plain JSON clients get the same error with 200, like every document
    // that never ran.
    let (status, body, _) = post(&app, None, &query, "application/json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("field selections"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_cycles_are_refused_and_the_server_stays_up() {
    let app = TestApp::spawn().await;
    for query in [
        "{ ...A } fragment A on QueryRoot { __typename ...A }",
        "{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { ... on QueryRoot { ...A } }",
    ] {
        let message = assert_refused(&app, None, query).await;
        assert!(message.contains("spreads itself"), "{message}");
    }
    healthz_latency(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_fragments_or_aliases_are_refused_by_default() {
    let app = TestApp::spawn().await;
    let fragments = |n: usize| {
        let spreads: String = (0..n).map(|i| format!(" ...F{i}")).collect();
        let defs: String = (0..n)
            .map(|i| format!(" fragment F{i} on QueryRoot {{ __typename }}"))
            .collect();
        format!("{{{spreads} }}{defs}")
    };
    app.ok(None, &fragments(50), json!({})).await;
    let message = assert_refused(&app, None, &fragments(51)).await;
    assert!(message.contains("51 fragments"), "{message}");

    let aliases = |n: usize| {
        let fields: String = (0..n).map(|i| format!(" a{i}: __typename")).collect();
        format!("{{{fields} }}")
    };
    app.ok(None, &aliases(100), json!({})).await;
    let message = assert_refused(&app, None, &aliases(101)).await;
    assert!(message.contains("101 aliases"), "{message}");
    // Aliases count once per expansion: a fragment of 60 spread twice is 120.
    let fields: String = (0..60).map(|i| format!(" a{i}: __typename")).collect();
    let spread_twice = format!("{{ ...A ... {{ ...A }} }} fragment A on QueryRoot {{{fields} }}");
    let message = assert_refused(&app, None, &spread_twice).await;
    assert!(message.contains("120 aliases"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typename_costs_complexity_like_any_field() {
    let settings = Settings {
        max_query_complexity: 3,
        ..Settings::default()
    };
    let app = TestApp::spawn_with(settings).await;
    app.ok(
        None,
        "{ __typename a: __typename b: __typename }",
        json!({}),
    )
    .await;
    let message = assert_refused(
        &app,
        None,
        "{ __typename a: __typename b: __typename c: __typename }",
    )
    .await;
    assert!(message.contains("complex"), "{message}");
}

/// A user who may read everything, so refusals are the limits' and not the guards'.
async fn reader(app: &TestApp) -> String {
    let (_, token) = app.superuser("root").await;
    app.ok(
        Some(&token),
        "mutation($c: [String!]!) { createQuestion(text: \"Lunch?\", choices: $c) { id } }",
        json!({ "c": (0..20).map(|i| format!("choice {i}")).collect::<Vec<_>>() }),
    )
    .await;
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_count_their_size_so_cyclic_amplification_is_refused() {
    let app = TestApp::spawn().await;
    let token = reader(&app).await;
    let before = snapshot(app.pool()).await;
    // Under 150 bytes each; before lists counted their size, the first built a
    // 20^4-row answer per question.
    for query in [
        "{ questions { choices { question { choices { question { choices { question { choices { text } } } } } } } } }",
        "{ groups { members(first: 100) { nodes { groups { members(first: 100) { nodes { username } } } } } } }",
        "{ users(first: 100) { nodes { votes(first: 100) { nodes { choice { question { choices { text } } } } } } } }",
        "{ permissions { key } users(first: 100) { nodes { groups { permissions { key } members { nodes { id } } } } } }",
    ] {
        assert!(query.len() < 150, "{query}");
        let message = assert_refused(&app, Some(&token), query).await;
        assert!(message.contains("complex"), "{message}");
    }
    assert_eq!(snapshot(app.pool()).await, before);

    // The same shapes, one level of lists each, go through.
    let data = app
        .ok(
            Some(&token),
            "{ questions { choices { text question { text } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["questions"][0]["choices"].as_array().unwrap().len(),
        20
    );
}

/// GraphiQL 3's introspection query (graphql-js `getIntrospectionQuery` with
/// its defaults), as the playground sends it.
const INTROSPECTION: &str = "query IntrospectionQuery {
  __schema { queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue } interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }";

/// `statements.rs`'s page at its largest and the benchmark's users page.
const STATEMENTS_PAGE: &str = "query($n: Int!) { users(first: $n) { totalCount edges { node {
    username groups { name permissions { key } } userPermissions { key }
    allPermissions voteCount
} } } }";
const BENCH_PAGE: &str = "query { users(first: 50) { edges { node { username groups { name } allPermissions voteCount } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_tests_and_benchmark_queries_pass_the_default_limits() {
    let app = TestApp::spawn().await;
    let token = reader(&app).await;
    let t = Some(token.as_str());
    let schema = app.ok(None, INTROSPECTION, json!({})).await;
    assert!(schema["__schema"]["types"].as_array().unwrap().len() > 20);
    app.ok(t, STATEMENTS_PAGE, json!({ "n": 100 })).await;
    app.ok(t, BENCH_PAGE, json!({})).await;
    // The playground's default document and the README's reads.
    app.ok(
        t,
        "{ users(first: 10) { totalCount edges { node { id username isActive isStaff groups { name } } } } }",
        json!({}),
    )
    .await;
    app.ok(t, "{ user(username: \"root\") { id } }", json!({}))
        .await;
    // A page size given by an omitted variable counts as the default.
    app.ok(
        t,
        "query($n: Int) { users(first: $n) { nodes { id } } }",
        json!({}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bounds_hold_for_the_data() {
    let app = TestApp::spawn().await;
    let permissions = app.count("SELECT count(*) FROM permissions").await;
    assert!(
        permissions as usize <= memberdesk::graphql::cost::PERMISSIONS,
        "the permission catalog ({permissions}) outgrew cost::PERMISSIONS"
    );
    let token = reader(&app).await;
    let code = app
        .err_code(
            Some(&token),
            "mutation($c: [String!]!) { createQuestion(text: \"Too many?\", choices: $c) { id } }",
            json!({ "c": (0..=memberdesk::graphql::cost::CHOICES).map(|i| format!("c{i}")).collect::<Vec<_>>() }),
        )
        .await;
    assert_eq!(code, "INVALID_INPUT");
}

/// `n` aliased copies of `field`, in one mutation.
fn aliased(n: usize, field: &str) -> String {
    let fields: String = (0..n).map(|i| format!(" a{i}: {field}")).collect();
    format!("mutation {{{fields} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_one_password_hash_per_request() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let rani = app.user("rani", false, false).await;
    let set = format!(
        "setPassword(userId: \"{}\", password: \"another good passphrase 7\")",
        user_id(&rani)
    );
    let login = format!("login(username: \"rani\", password: \"{PASSWORD}\") {{ token }}");
    let create = "createUser(input: { username: \"sam\", email: \"sam@example.org\", password: \"yet another passphrase 9\" }) { id }";
    let before = snapshot(app.pool()).await;
    let failures = "SELECT count(*) FROM login_failures";
    let failures_before = app.count(failures).await;
    for query in [
        aliased(20, &set),
        aliased(2, &login),
        format!("mutation {{ {login} {create} }}"),
        format!(
            "mutation {{ ...P ... on MutationRoot {{ ...P }} }} fragment P on MutationRoot {{ {set} }}"
        ),
    ] {
        let message = assert_refused(&app, Some(&token), &query).await;
        assert!(message.contains("hashes a password"), "{message}");
    }
    assert_eq!(snapshot(app.pool()).await, before, "nothing changed");
    assert_eq!(app.count(failures).await, failures_before);
    assert_eq!(app.audit_count("LOGIN_FAILED").await, 0);
    // One per request still works.
    app.ok(Some(&token), &format!("mutation {{ {set} }}"), json!({}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_ten_mutations_per_request() {
    let app = TestApp::spawn().await;
    let (_, token) = app.superuser("root").await;
    let bob = app.user("bob", false, false).await;
    let deactivate = format!(
        "deactivateUser(id: \"{}\", input: {{ reason: \"left\" }}) {{ sessionsRevoked }}",
        user_id(&bob)
    );
    let before = snapshot(app.pool()).await;
    let message = assert_refused(&app, Some(&token), &aliased(11, &deactivate)).await;
    assert!(message.contains("11 mutations"), "{message}");
    // Through fragments too: 6 + 5.
    let six: String = (0..6).map(|i| format!(" a{i}: {deactivate}")).collect();
    let five: String = (6..11).map(|i| format!(" a{i}: {deactivate}")).collect();
    let split = format!("mutation {{ ...Six {five} }} fragment Six on MutationRoot {{{six} }}");
    assert_refused(&app, Some(&token), &split).await;
    assert_eq!(snapshot(app.pool()).await, before, "nothing changed");
    // Ten run (the first deactivates, the others find nothing to do).
    let data = app
        .ok(Some(&token), &aliased(10, &deactivate), json!({}))
        .await;
    assert_eq!(data.as_object().unwrap().len(), 10);
}

/// Every label the schema allows: its root fields, introspection's, and the
/// two that are no field (`multiple`, `none`).
async fn allowed_labels(app: &TestApp) -> HashSet<String> {
    let roots = app
        .ok(
            None,
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut allowed: HashSet<String> = ["none", "multiple", "__typename", "__schema", "__type"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for root in ["queryType", "mutationType"] {
        for field in roots["__schema"][root]["fields"].as_array().unwrap() {
            allowed.insert(field["name"].as_str().unwrap().to_owned());
        }
    }
    allowed
}

/// The `operation` labels of `memberdesk_graphql_requests_total` in `/metrics`.
async fn request_labels(app: &TestApp) -> HashSet<String> {
    let text = app.metrics().await;
    text.lines()
        .filter_map(|l| l.strip_prefix("memberdesk_graphql_requests_total{operation=\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_series_stay_within_the_schema_root_fields() {
    let app = TestApp::spawn().await;
    let allowed = allowed_labels(&app).await;
    // Pairs and triples of real root fields, anonymous (they run and fail on
    // their guards), then invalid and refused documents.
    let reads = [
        "me { id }",
        "groups { id }",
        "permissions { key }",
        "questions { id }",
        "users { totalCount }",
        "__typename",
    ];
    for (i, a) in reads.iter().enumerate() {
        for (j, b) in reads.iter().enumerate().skip(i + 1) {
            app.gql(None, &format!("{{ {a} {b} }}"), json!({})).await;
            for c in reads.iter().skip(j + 1) {
                app.gql(None, &format!("{{ {a} {b} {c} }}"), json!({}))
                    .await;
            }
        }
    }
    for i in 0..20 {
        app.gql(None, &format!("{{ made_up_{i} }}"), json!({}))
            .await;
        app.gql(None, &doubling_fragments(20 + i), json!({})).await;
    }
    let labels = request_labels(&app).await;
    assert!(
        labels.contains("multiple") && labels.contains("none"),
        "{labels:?}"
    );
    for label in &labels {
        assert!(
            allowed.contains(label),
            "label {label:?} is not a root field"
        );
    }
}

/// The first error's code of `query` run anonymously on a server whose
/// complexity budget is `budget`: `INVALID_INPUT` when the budget refuses
/// it, the guard's code when it gets past the budget.
async fn code_under_budget(budget: usize, query: &str, variables: Value) -> String {
    let settings = Settings {
        max_query_complexity: budget,
        ..Settings::default()
    };
    let app = TestApp::spawn_with(settings).await;
    app.err_code(None, query, variables).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_and_statements_pages_cost_what_the_readme_says() {
    let n100 = json!({ "n": 100 });
    for (query, variables, cost) in [
        (BENCH_PAGE, json!({}), 2_101),
        (STATEMENTS_PAGE, n100, 40_001),
    ] {
        let within = code_under_budget(cost, query, variables.clone()).await;
        assert_eq!(within, "UNAUTHENTICATED", "{query} within {cost}");
        let over = code_under_budget(cost - 1, query, variables).await;
        assert_eq!(over, "INVALID_INPUT", "{query} over {}", cost - 1);
    }
}
