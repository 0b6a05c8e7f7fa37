//! SCIM 2.0 provisioning at `/scim/v2`: tokens, CRUD, filters, PATCH in
//! the dialects of Okta and Entra ID, and the guarantees a deprovisioning
//! must keep (the same deactivation, scope rule, one audit entry).

use std::process::Output;
use std::time::Duration;

use memberdesk::config::{LoginLimit, ScimDelete, Settings, TrustedProxies};
use memberdesk::domain::groups::{self, Access, Change};
use memberdesk::domain::{Actor, provisioning};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::memberdesk_within;
use crate::helpers::{PASSWORD, TestApp, snapshot};

/// Everything a provisioning client needs to manage users and groups.
const PROVISIONER: &[&str] = &[
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.view_group",
    "auth.add_group",
    "auth.change_group",
    "auth.delete_group",
];

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM client of `app` with a bearer token.
struct Scim<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Scim<'a> {
    async fn new(app: &'a TestApp, name: &str, permissions: &[&str]) -> Scim<'a> {
        let keys: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        let issued = provisioning::create_token(app.pool(), name, &keys)
            .await
            .expect("create token");
        Scim {
            app,
            token: issued.secret,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = self.app.url(&format!("/scim/v2{path}"));
        let mut req = self
            .app
            .client
            .request(method, url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, operations: Value) -> (StatusCode, Value) {
        let body = json!({ "schemas": [PATCH_OP], "Operations": operations });
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// The userNames a list request returns, in order.
    async fn usernames(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/Users?{query}")).await;
        assert_eq!(status, 200, "{body:#}");
        body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn new_user(username: &str, given: &str, email: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": username,
        "name": { "givenName": given, "familyName": "Example" },
        "emails": [{ "value": email, "type": "work", "primary": true }],
        "active": true,
    })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_token_cli_prints_once_lists_and_revokes() {
    let app = TestApp::spawn().await;
    let args = [
        "scim-token",
        "create",
        "--name",
        "okta",
        "--permissions",
        "auth.view_user,auth.change_user",
    ];
    let out = memberdesk_cli(&app, &args);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 43, "only the token is on stdout");
    let stored: i64 = app.count("SELECT count(*) FROM scim_tokens WHERE permissions = '{auth.change_user,auth.view_user}'").await;
    assert_eq!(stored, 1);
    let again = memberdesk_cli(&app, &args);
    assert!(!again.status.success(), "a name is taken once");
    let unknown = [
        "scim-token",
        "create",
        "--name",
        "x",
        "--permissions",
        "auth.fly",
    ];
    let refused = memberdesk_cli(&app, &unknown);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown permission 'auth.fly'"));

    let spc = |token: Option<String>| {
        let mut req = app.get("/scim/v2/ServiceProviderConfig");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(spc(Some(token.clone())).await.unwrap().status(), 200);
    let anonymous = spc(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["content-type"], "application/scim+json");
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(spc(Some("not-a-token".into())).await.unwrap().status(), 401);

    let list = memberdesk_cli(&app, &["scim-token", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("okta\tactive\t"), "{listed}");
    assert!(!listed.contains(&token), "a token is never shown again");
    let revoked = memberdesk_cli(&app, &["scim-token", "revoke", "okta"]);
    assert!(revoked.status.success());
    assert_eq!(spc(Some(token)).await.unwrap().status(), 401);
    let list = memberdesk_cli(&app, &["scim-token", "list"]);
    assert!(
        String::from_utf8(list.stdout)
            .unwrap()
            .contains("okta\trevoked\t")
    );
    let missing = memberdesk_cli(&app, &["scim-token", "revoke", "nobody"]);
    assert!(!missing.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_read_filtered_paged_and_replaced() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app, "okta", PROVISIONER).await;
    let (status, ann) = scim
        .post("/Users", new_user("ann", "Ann", "ann@example.org"))
        .await;
    assert_eq!(status, 201, "{ann:#}");
    assert_eq!(
        ann["meta"]["location"],
        app.url(&format!("/scim/v2/Users/{}", ann["id"].as_str().unwrap()))
    );
    assert!(ann["meta"]["version"].as_str().unwrap().starts_with("W/\""));
    let (status, dup) = scim
        .post("/Users", new_user("ANN", "Ann", "a2@example.org"))
        .await;
    assert_eq!(
        (status.as_u16(), dup["scimType"].as_str()),
        (409, Some("uniqueness"))
    );
    scim.post("/Users", new_user("bob", "Bob", "bob@corp.example"))
        .await;
    scim.post("/Users", new_user("bobby", "Robert", "bobby@example.org"))
        .await;
    let entry: (String,) = sqlx::query_as(
        "SELECT actor_username FROM audit_entries WHERE action = 'USER_CREATED' LIMIT 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(entry.0, "scim:okta");

    let f = |filter: &str| format!("filter={}", encode(filter));
    assert_eq!(scim.usernames(&f("userName eq \"ANN\"")).await, ["ann"]);
    assert_eq!(
        scim.usernames(&f("userName sw \"bob\"")).await,
        ["bob", "bobby"]
    );
    assert_eq!(
        scim.usernames(&f("emails.value co \"corp\"")).await,
        ["bob"]
    );
    assert_eq!(
        scim.usernames(&f("emails[value ew \"example.org\"]")).await,
        ["ann", "bobby"]
    );
    assert_eq!(
        scim.usernames(&f(
            "userName eq \"ann\" or displayName eq \"Robert Example\""
        ))
        .await,
        ["ann", "bobby"]
    );
    assert_eq!(
        scim.usernames(&f("userName sw \"b\" and not (emails.value co \"corp\")"))
            .await,
        ["bobby"]
    );
    assert_eq!(
        scim.usernames(&f("active eq true and name.givenName pr"))
            .await
            .len(),
        3
    );
    assert!(scim.usernames(&f("active eq false")).await.is_empty());
    let (status, page) = scim.get("/Users?startIndex=2&count=1").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["totalResults"].as_i64(),
            page["startIndex"].as_i64(),
            page["itemsPerPage"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(page["Resources"][0]["userName"], "bob");
    let (_, some) = scim.get("/Users?attributes=userName&count=1").await;
    let shown: Vec<&String> = some["Resources"][0].as_object().unwrap().keys().collect();
    assert_eq!(shown, ["id", "schemas", "userName"]);
    let (_, without) = scim
        .get("/Users?excludedAttributes=emails,meta&count=1")
        .await;
    assert!(
        without["Resources"][0].get("emails").is_none()
            && without["Resources"][0].get("meta").is_none()
    );
    for bad in ["userName eq", "nickName eq \"x\"", "active eq \"yes\""] {
        let (status, body) = scim.get(&format!("/Users?{}", f(bad))).await;
        assert_eq!(
            (status.as_u16(), body["scimType"].as_str()),
            (400, Some("invalidFilter")),
            "{bad}"
        );
    }

    let id = ann["id"].as_str().unwrap();
    let mut replaced = new_user("ann", "Anna", "anna@example.org");
    replaced["name"]["familyName"] = json!("Lee");
    let stale = ann["meta"]["version"].as_str().unwrap().to_owned();
    let (status, now) = scim.put(&format!("/Users/{id}"), replaced.clone()).await;
    assert_eq!(status, 200, "{now:#}");
    assert_eq!(
        (
            now["name"]["givenName"].as_str(),
            now["emails"][0]["value"].as_str()
        ),
        (Some("Anna"), Some("anna@example.org"))
    );
    assert_ne!(now["meta"]["version"], stale);
    let before = snapshot(app.pool()).await;
    let url = app.url(&format!("/scim/v2/Users/{id}"));
    let resp = app
        .client
        .put(&url)
        .bearer_auth(&scim.token)
        .header("if-match", stale)
        .header("content-type", "application/scim+json")
        .body(new_user("ann", "X", "x@example.org").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412, "a stale version changes nothing");
    let resp = app
        .client
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&scim.token)
        .header("content-type", "text/plain")
        .body(new_user("zed", "Z", "z@example.org").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let mut huge = new_user("zed", "Z", "z@example.org");
    huge["name"]["familyName"] = json!("x".repeat(300 * 1024));
    let (status, _) = scim.post("/Users", huge).await;
    assert_eq!(status, 413, "the body limit holds here too");
    let (status, _) = scim.get("/Users/999999").await;
    assert_eq!(status, 404);
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_deprovisioning_revokes_the_live_session_at_once_with_one_audit_entry() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app, "entra", PROVISIONER).await;
    let rani = app.user("rani", false, false).await;
    let editors = groups::create_group(
        app.pool(),
        &Actor::System,
        "Editors",
        &["polls.add_question".into()],
    )
    .await
    .unwrap();
    // The service holds no polls permission: a user holding one is out of its scope.
    groups::change_access(
        app.pool(),
        &Actor::System,
        rani.id,
        Access::Permission("auth.view_user"),
        Change::Give,
    )
    .await
    .unwrap();
    let session = app.login("rani", PASSWORD).await;
    assert_eq!(app.me(&session).await.as_deref(), Ok("rani"));
    let before = app.audit_count("USER_DEACTIVATED").await;

    let path = format!("/Users/{}", rani.id);
    // Entra's profile update: typed value paths, capitalised ops.
    let (status, body) = scim
        .patch(
            &path,
            json!([
                { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "rani@new.example" },
                { "op": "Replace", "path": "name.givenName", "value": "Rani" },
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["emails"], json!([{ "value": "rani@new.example" }]));
    assert_eq!(body["name"]["givenName"], "Rani");
    let (status, body) = scim
        .patch(
            &path,
            json!([{ "op": "Replace", "path": "active", "value": "False" }]),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["active"], false);
    assert_eq!(
        app.me(&session).await,
        Err("UNAUTHENTICATED".into()),
        "the live session ends at once"
    );
    assert_eq!(app.audit_count("USER_DEACTIVATED").await, before + 1);
    let (actor, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT actor_username, reason FROM audit_entries WHERE action = 'USER_DEACTIVATED' ORDER BY id DESC LIMIT 1",
    ).fetch_one(app.pool()).await.unwrap();
    assert_eq!(actor, "scim:entra");
    assert_eq!(reason.as_deref(), Some("deprovisioned by scim:entra"));
    assert_eq!(
        app.count("SELECT count(*) FROM user_permissions").await,
        0,
        "access stripped"
    );
    // Entra sends it again: nothing changes, nothing more is audited.
    let (status, _) = scim
        .patch(
            &path,
            json!([{ "op": "Replace", "value": { "active": "False" } }]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.audit_count("USER_DEACTIVATED").await, before + 1);
    // Okta-style reactivation gives back what was taken, remembered.
    let (status, body) = scim
        .patch(
            &path,
            json!([{ "op": "replace", "value": { "active": true } }]),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["active"].as_bool()),
        (200, Some(true))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM user_permissions").await,
        1,
        "access restored"
    );
    assert_eq!(app.audit_count("USER_REACTIVATED").await, 1);
    // A user in the editors group holds what the service does not: out of scope.
    groups::change_access(
        app.pool(),
        &Actor::System,
        rani.id,
        Access::Group(editors.id),
        Change::Give,
    )
    .await
    .unwrap();
    let before = snapshot(app.pool()).await;
    let (status, _) = scim
        .patch(
            &path,
            json!([{ "op": "replace", "path": "active", "value": false }]),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(snapshot(app.pool()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_never_acts_on_superusers_nor_beyond_its_token() {
    let app = TestApp::spawn().await;
    let (root, root_session) = app.superuser("root").await;
    let reader = Scim::new(&app, "reader", &["auth.view_user"]).await;
    let scim = Scim::new(&app, "okta", PROVISIONER).await;
    let before = snapshot(app.pool()).await;
    let path = format!("/Users/{}", root.id);
    let (status, _) = scim
        .patch(
            &path,
            json!([{ "op": "replace", "path": "active", "value": false }]),
        )
        .await;
    assert_eq!(status, 403, "never on a superuser");
    let (status, _) = scim.delete(&path).await;
    assert_eq!(status, 403);
    let (status, _) = scim
        .put(
            &path,
            json!({ "userName": "root", "name": { "givenName": "Pwned" } }),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = reader
        .post("/Users", new_user("eve", "Eve", "eve@example.org"))
        .await;
    assert_eq!(status, 403, "{body:#}");
    let (status, _) = reader.get("/Groups").await;
    assert_eq!(status, 403, "groups need auth.view_group");
    assert_eq!(snapshot(app.pool()).await, before);
    assert_eq!(app.me(&root_session).await.as_deref(), Ok("root"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_memberships_follow_the_no_escalation_rule() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app, "okta", PROVISIONER).await;
    let ann = app.user("ann", false, false).await;
    let bob = app.user("bob", false, false).await;
    let (status, group) = scim
        .post(
            "/Groups",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Staff",
                "members": [{ "value": ann.id.to_string() }],
            }),
        )
        .await;
    assert_eq!(status, 201, "{group:#}");
    assert_eq!(group["members"][0]["value"], ann.id.to_string());
    let path = format!("/Groups/{}", group["id"].as_str().unwrap());
    let (status, body) = scim
        .patch(
            &path,
            json!([
                { "op": "add", "path": "members", "value": [{ "value": bob.id.to_string() }] },
                { "op": "remove", "path": format!("members[value eq \"{}\"]", ann.id) },
                { "op": "replace", "path": "displayName", "value": "Team" },
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["displayName"], "Team");
    assert_eq!(body["members"].as_array().unwrap().len(), 1);
    assert_eq!(body["members"][0]["value"], bob.id.to_string());
    assert_eq!(app.audit_count("USER_ADDED_TO_GROUP").await, 2);
    assert_eq!(app.audit_count("USER_REMOVED_FROM_GROUP").await, 1);
    assert_eq!(app.audit_count("GROUP_UPDATED").await, 1);
    let filter = encode(&format!("members.value eq \"{}\"", bob.id));
    let (_, found) = scim.get(&format!("/Groups?filter={filter}")).await;
    assert_eq!(found["totalResults"], 1);
    let (_, user) = scim.get(&format!("/Users/{}", bob.id)).await;
    assert_eq!(user["groups"][0]["display"], "Team");

    // A group carrying a permission the service lacks: joining it is escalation.
    let admins = groups::create_group(
        app.pool(),
        &Actor::System,
        "Admins",
        &["auth.delete_user".into()],
    )
    .await
    .unwrap();
    let before = snapshot(app.pool()).await;
    let (status, _) = scim
        .patch(
            &format!("/Groups/{}", admins.id),
            json!([
                { "op": "add", "path": "members", "value": [{ "value": ann.id.to_string() }] },
            ]),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(snapshot(app.pool()).await, before);

    let (status, _) = scim.delete(&path).await;
    assert_eq!(status, 204);
    let (status, _) = scim.get(&path).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_deactivates_by_default_and_anonymizes_when_configured() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app, "okta", PROVISIONER).await;
    let ann = app.user("ann", false, false).await;
    let session = app.login("ann", PASSWORD).await;
    let (status, _) = scim.delete(&format!("/Users/{}", ann.id)).await;
    assert_eq!(status, 204);
    assert_eq!(app.me(&session).await, Err("UNAUTHENTICATED".into()));
    let (status, body) = scim.get(&format!("/Users/{}", ann.id)).await;
    assert_eq!(
        (status.as_u16(), body["active"].as_bool()),
        (200, Some(false)),
        "kept, deactivated"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        1,
        "never a hard delete"
    );

    let settings = Settings {
        scim_delete: ScimDelete::Anonymize,
        ..Settings::default()
    };
    let app = TestApp::spawn_with(settings).await;
    let bob = app.user("bob", false, false).await;
    let without = Scim::new(&app, "okta", PROVISIONER).await;
    let (status, _) = without.delete(&format!("/Users/{}", bob.id)).await;
    assert_eq!(status, 403, "anonymizing needs auth.delete_user");
    let mut erasing = PROVISIONER.to_vec();
    erasing.push("auth.delete_user");
    let scim = Scim::new(&app, "hr", &erasing).await;
    let (status, _) = scim
        .patch(
            &format!("/Users/{}", bob.id),
            json!([{ "op": "add", "path": "externalId", "value": "00u1bob" }]),
        )
        .await;
    assert_eq!(status, 200);
    let filter = encode("externalId eq \"00u1bob\"");
    assert_eq!(scim.usernames(&format!("filter={filter}")).await, ["bob"]);
    let (status, _) = scim.delete(&format!("/Users/{}", bob.id)).await;
    assert_eq!(status, 204);
    let (status, _) = scim.get(&format!("/Users/{}", bob.id)).await;
    assert_eq!(status, 404, "an erased person is gone from the directory");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE anonymized_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(app.audit_count("USER_ANONYMIZED").await, 1);
    let kept = "SELECT count(*) FROM users WHERE scim_external_id IS NOT NULL";
    assert_eq!(
        app.count(kept).await,
        0,
        "the provider's id goes with the person"
    );
}

/// `memberdesk ARGS` against the test app's database, within 30 s.
fn memberdesk_cli(app: &TestApp, args: &[&str]) -> Output {
    let env = [("DATABASE_URL", app.db.url.as_str())];
    memberdesk_within(args, &env, Duration::from_secs(30)).0
}

/// The audit entries about SCIM tokens: action, actor, target, details.
async fn token_entries(app: &TestApp) -> Vec<(String, String, String, Value)> {
    sqlx::query_as(
        "SELECT action, actor_username, target_repr, details FROM audit_entries
          WHERE action LIKE 'SCIM_TOKEN_%' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_token_create_and_revoke_are_audited_as_the_operator() {
    let app = TestApp::spawn().await;
    let create = [
        "scim-token",
        "create",
        "--name",
        "entra",
        "--permissions",
        "auth.view_user,auth.change_user",
    ];
    let out = memberdesk_cli(&app, &create);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let entries = token_entries(&app).await;
    assert_eq!(
        entries,
        [(
            "SCIM_TOKEN_CREATED".to_owned(),
            "system".to_owned(),
            "SCIM token entra".to_owned(),
            json!({ "name": "entra", "permissions": ["auth.change_user", "auth.view_user"] })
        )]
    );
    let everything: String =
        sqlx::query_scalar("SELECT string_agg(to_jsonb(a)::text, ' ') FROM audit_entries a")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(!everything.contains(&token), "the token is never audited");

    // Refused or idle commands write nothing.
    let before = snapshot(app.pool()).await;
    let again = memberdesk_cli(&app, &create);
    assert!(!again.status.success(), "a name is taken once");
    let missing = memberdesk_cli(&app, &["scim-token", "revoke", "nobody"]);
    assert!(!missing.status.success());
    assert_eq!(snapshot(app.pool()).await, before);
    assert_eq!(token_entries(&app).await.len(), 1);

    let revoked = memberdesk_cli(&app, &["scim-token", "revoke", "entra"]);
    assert!(revoked.status.success(), "{revoked:?}");
    let twice = memberdesk_cli(&app, &["scim-token", "revoke", "entra"]);
    assert!(twice.status.success(), "revoking again is no error");
    let entries = token_entries(&app).await;
    assert_eq!(entries.len(), 2, "one entry per change: {entries:?}");
    assert_eq!(
        entries[1],
        (
            "SCIM_TOKEN_REVOKED".to_owned(),
            "system".to_owned(),
            "SCIM token entra".to_owned(),
            json!({ "name": "entra" })
        )
    );
}

/// A SCIM request from `address` (believed: the test server trusts
/// 127.0.0.1 as its proxy) with `token`.
async fn scim_from(
    app: &TestApp,
    address: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = match body {
        Some(body) => app
            .client
            .post(app.url("/scim/v2/Users"))
            .header("content-type", "application/scim+json")
            .body(body.to_string()),
        None => app.get("/scim/v2/ServiceProviderConfig"),
    };
    let resp = req
        .bearer_auth(token)
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_scim_bearers_are_rate_limited_per_address_and_refusals_change_nothing() {
    let app = TestApp::spawn_with(Settings {
        trusted_proxies: TrustedProxies::parse("MEMBERDESK_TRUSTED_PROXIES", "127.0.0.1").unwrap(),
        login_limit: LoginLimit {
            per_address: 3,
            ..Settings::default().login_limit
        },
        ..Settings::default()
    })
    .await;
    let scim = Scim::new(&app, "okta", PROVISIONER).await;
    let (guesser, idp) = ("203.0.113.7", "198.51.100.2");
    // A good token costs nothing against the limit.
    for _ in 0..5 {
        assert_eq!(scim_from(&app, guesser, &scim.token, None).await.0, 200);
    }
    for _ in 0..3 {
        let (status, body) = scim_from(&app, guesser, "a-wrong-token", None).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, body) = scim_from(&app, guesser, "a-wrong-token", None).await;
    assert_eq!(status, 429);
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], "429");
    assert!(!body.to_string().contains("a-wrong-token"), "{body}");

    // Over the limit, even a good token is refused from that address (no
    // guess is checked any more) and the refused request changes nothing,
    // not even the counter.
    let counters =
        "SELECT coalesce(json_agg(t ORDER BY scope, key), '[]')::text FROM login_failures t";
    let before = (
        snapshot(app.pool()).await,
        sqlx::query_scalar::<_, String>(counters)
            .fetch_one(app.pool())
            .await
            .unwrap(),
    );
    let person = new_user("refused.person", "Refused", "refused@example.org");
    let (status, _) = scim_from(&app, guesser, &scim.token, Some(person.clone())).await;
    assert_eq!(status, 429);
    assert_eq!(scim_from(&app, guesser, "another-guess", None).await.0, 429);
    let after = (
        snapshot(app.pool()).await,
        sqlx::query_scalar::<_, String>(counters)
            .fetch_one(app.pool())
            .await
            .unwrap(),
    );
    assert_eq!(after, before);

    // Another address is not held back, and neither are logins from the
    // limited one (a budget of its own).
    let (status, created) = scim_from(&app, idp, &scim.token, Some(person)).await;
    assert_eq!(status, 201, "{created}");
    app.user("member", false, false).await;
    let answer = app.login_from(guesser, "member", PASSWORD).await;
    assert!(answer["data"]["login"]["token"].is_string(), "{answer}");
}
