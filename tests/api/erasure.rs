//! Erasure (GDPR Art. 17) tried as an auditor would: after `anonymizeUser`,
//! a due `run-erasures` or `deleteUser(erase: true)`, nothing of the person
//! is in any API answer or anywhere in a `pg_dump` of the database; typed
//! unknown usernames are kept nowhere; pseudonyms cannot be taken; the audit
//! log refuses every other change; the grace period, its cancellation and
//! two concurrent runs; receipts; the export against the catalog.

use std::collections::BTreeSet;
use std::process::Command;

use crate::cli::memberdesk;
use crate::helpers::{PASSWORD, TestApp, TestDb, snapshot, user_id};
use memberdesk::config::{LoginLimit, Settings, TrustedProxies};
use memberdesk::store::users::UserRow;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The address the person logs in from (behind the trusted proxy 127.0.0.1).
const ADDRESS: &str = "203.0.113.77";
const USERNAME: &str = "quill-ardent";
const EMAIL: &str = "quill.ardent@mail.example";
const FIRST: &str = "Wilhelmina";
const LAST: &str = "Strzelecka";
/// A phrase only reasons written about the person hold.
const STORY: &str = "Zanzibar incident";

const ANONYMIZE: &str = "mutation($id: ID!, $r: String) { anonymizeUser(id: $id, reason: $r) {
    user { username email firstName lastName anonymizedAt erasureDueAt } sessionsRevoked receipt } }";
const REQUEST: &str = "mutation($id: ID!) { requestErasure(userId: $id, reason: \"asked on the phone\") { username isActive erasureDueAt anonymizedAt } }";
const CANCEL: &str =
    "mutation($id: ID!) { cancelErasure(userId: $id) { username isActive erasureDueAt } }";
const AUDIT: &str = "query($f: AuditFilter) { auditLog(filter: $f, first: 100) { edges { node {
    action at actorUsername targetRepr reason details redactedAt
    actor { username email firstName lastName } targetUser { username email firstName lastName } } } } }";

/// Everything that identified the person, as a test greps for it.
fn traces() -> [&'static str; 6] {
    [USERNAME, EMAIL, FIRST, LAST, STORY, ADDRESS]
}

fn assert_no_trace(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for trace in traces() {
        assert!(
            !lower.contains(&trace.to_lowercase()),
            "{what} still holds {trace:?}: {text}"
        );
    }
}

fn behind_proxy() -> Settings {
    Settings {
        trusted_proxies: TrustedProxies::parse("MEMBERDESK_TRUSTED_PROXIES", "127.0.0.1").unwrap(),
        ..Settings::default()
    }
}

/// `pg_dump --data-only` of the test's own database: every row of every table.
fn dump(db: &TestDb) -> String {
    let out = Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "--dbname", &db.url])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("COPY public.audit_entries"), "{text}");
    text
}

/// The whole audit table, to prove a statement changed nothing in it.
async fn audit_table(app: &TestApp) -> Value {
    sqlx::query_scalar("SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM audit_entries t")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// A GraphQL error's code and `field`.
fn code_and_field(resp: &Value) -> (String, String) {
    let ext = &resp["errors"][0]["extensions"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (text(&ext["code"]), text(&ext["field"]))
}

/// `value` with object keys sorted and no whitespace, as the export's digest
/// is defined (written independently of memberdesk's own function).
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> Value {
    app.client
        .post(format!("{}/graphql", app.addr))
        .header("x-forwarded-for", address)
        .json(&json!({
            "query": "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }",
            "variables": { "u": username, "p": password }
        }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON response")
}

/// The person, with a history that names them everywhere it can: created,
/// edited, logged in from their address (and failed once), deactivated and
/// reactivated with reasons about them, a vote, and, as staff, an action of
/// their own on someone else, with a reason of theirs.
struct Story {
    app: TestApp,
    root: String,
    person: UserRow,
    question: String,
}

async fn story() -> Story {
    let app = TestApp::spawn_with(behind_proxy()).await;
    let (_, root) = app.superuser("root").await;
    let created = app
        .ok(
            Some(&root),
            "mutation($u: String!, $e: String!, $f: String!, $l: String!, $p: String!) {
                createUser(input: { username: $u, email: $e, firstName: $f, lastName: $l, password: $p, isStaff: true }) { id } }",
            json!({ "u": USERNAME, "e": "quill@old.example", "f": FIRST, "l": LAST, "p": PASSWORD }),
        )
        .await;
    let person_id = created["createUser"]["id"].clone();
    let person: UserRow = memberdesk::store::users::find_by_username_key(
        app.pool(),
        &memberdesk::domain::validation::username_key(USERNAME),
    )
    .await
    .unwrap()
    .unwrap();
    for perm in ["auth.change_user", "auth.view_user"] {
        let grant = "mutation($id: ID!, $p: String!) { grantPermission(userId: $id, permission: $p) { id } }";
        app.ok(Some(&root), grant, json!({ "id": person_id, "p": perm }))
            .await;
    }
    let q = app
        .ok(
            Some(&root),
            "mutation { createQuestion(text: \"Lunch?\", choices: [\"Yes\", \"No\"]) { id choices { id } } }",
            json!({}),
        )
        .await;
    let question = q["createQuestion"]["id"].as_str().unwrap().to_owned();
    let choice = q["createQuestion"]["choices"][0]["id"].clone();
    let failed = login_from(&app, ADDRESS, USERNAME, "not the password at all").await;
    assert_eq!(code_and_field(&failed).0, "INVALID_CREDENTIALS");
    let token = login_from(&app, ADDRESS, USERNAME, PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        Some(&token),
        "mutation($c: ID!) { castVote(choiceId: $c) { id } }",
        json!({ "c": choice }),
    )
    .await;
    let other = app.user("other-member", false, false).await;
    let own_reason = "cleaning up after the merger";
    app.ok(
        Some(&token),
        "mutation($id: ID!, $r: String) { deactivateUser(id: $id, input: { reason: $r }) { staffRevoked } }",
        json!({ "id": user_id(&other), "r": own_reason }),
    )
    .await;
    let about = format!("{FIRST} {LAST} ({EMAIL}) left after the {STORY}");
    app.ok(
        Some(&root),
        "mutation($id: ID!, $r: String) { deactivateUser(id: $id, input: { reason: $r }) { staffRevoked } }",
        json!({ "id": person_id, "r": about }),
    )
    .await;
    app.ok(
        Some(&root),
        "mutation($id: ID!, $r: String) { reactivateUser(id: $id, restoreAccess: true, reason: $r) { user { isActive } } }",
        json!({ "id": person_id, "r": format!("{USERNAME} is back") }),
    )
    .await;
    app.ok(
        Some(&root),
        "mutation($id: ID!, $e: String!) { updateUser(id: $id, input: { email: $e }) { id } }",
        json!({ "id": person_id, "e": EMAIL }),
    )
    .await;
    // Two live sessions when the erasure comes.
    login_from(&app, ADDRESS, USERNAME, PASSWORD).await;
    login_from(&app, ADDRESS, USERNAME, PASSWORD).await;
    Story {
        app,
        root,
        person,
        question,
    }
}

impl Story {
    fn id(&self) -> String {
        user_id(&self.person)
    }

    /// Every API answer that could show the person, as one text.
    async fn answers(&self) -> String {
        let app = &self.app;
        let root = Some(self.root.as_str());
        let id = json!({ "id": self.id() });
        let mut all = Vec::new();
        all.push(app.ok(root, AUDIT, json!({})).await);
        all.push(
            app.ok(root, AUDIT, json!({ "f": { "targetUserId": self.id() } }))
                .await,
        );
        all.push(
            app.ok(
                root,
                "query($id: ID!) { exportUserData(userId: $id) }",
                id.clone(),
            )
            .await,
        );
        all.push(
            app.ok(
                root,
                "query($id: ID!) { user(id: $id) { username email firstName lastName deactivationReason
                    votes(first: 10) { edges { node { voterName } } } } }",
                id.clone(),
            )
            .await,
        );
        all.push(
            app.ok(
                root,
                "query($id: ID!) { votes(userId: $id, first: 10) { edges { node { voterName user { username } } } } }",
                id,
            )
            .await,
        );
        all.push(
            app.ok(
                root,
                "query($q: ID!) { question(id: $q) { createdBy { username } choices { voteCount } } }",
                json!({ "q": self.question }),
            )
            .await,
        );
        all.push(
            app.ok(
                root,
                "{ users(first: 100) { edges { node { username email firstName lastName } } } }",
                json!({}),
            )
            .await,
        );
        Value::Array(all).to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_anonymization_no_answer_and_no_table_holds_the_person() {
    let s = story().await;
    let app = &s.app;
    // Before: the person is everywhere, which is what makes the rest a test.
    let before = s.answers().await;
    for trace in traces() {
        assert!(before.contains(trace), "the story should show {trace}");
    }
    let dumped = dump(&app.db);
    for trace in traces() {
        assert!(dumped.contains(trace), "the dump should hold {trace}");
    }

    let done = app
        .ok(
            Some(&s.root),
            ANONYMIZE,
            json!({ "id": s.id(), "r": "erasure request under GDPR Art. 17" }),
        )
        .await;
    let user = &done["anonymizeUser"]["user"];
    let pseudonym = format!("deleted-user-{}", s.person.id);
    assert_eq!(user["username"], json!(pseudonym));
    assert_eq!(done["anonymizeUser"]["sessionsRevoked"], 2);

    assert_no_trace("an API answer", &s.answers().await);
    assert_no_trace("the database", &dump(&app.db));

    // The history stays, with the pseudonym: every entry about the person,
    // its action and time, marked as redacted.
    let log = app
        .ok(
            Some(&s.root),
            AUDIT,
            json!({ "f": { "targetUserId": s.id() } }),
        )
        .await;
    let entries = log["auditLog"]["edges"].as_array().unwrap();
    let actions: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    for action in [
        "USER_CREATED",
        "PERMISSION_GRANTED",
        "LOGIN",
        "LOGIN_FAILED",
        "USER_DEACTIVATED",
        "USER_REACTIVATED",
        "USER_UPDATED",
        "USER_ANONYMIZED",
    ] {
        assert!(actions.contains(action), "{action} kept: {actions:?}");
    }
    for entry in entries.iter().map(|e| &e["node"]) {
        assert_eq!(entry["targetRepr"], json!(pseudonym), "{entry}");
        if entry["action"] != "USER_ANONYMIZED" && entry["action"] != "USER_DATA_EXPORTED" {
            assert_eq!(entry["reason"], Value::Null, "{entry}");
            assert_eq!(entry["details"]["redacted"], true, "{entry}");
            assert!(entry["redactedAt"].is_string(), "{entry}");
        }
    }
    let as_actor = app
        .ok(
            Some(&s.root),
            AUDIT,
            json!({ "f": { "actorId": s.id(), "action": "USER_DEACTIVATED" } }),
        )
        .await;
    let own = &as_actor["auditLog"]["edges"][0]["node"];
    assert_eq!(own["actorUsername"], json!(pseudonym));
    assert_eq!(
        own["targetRepr"], "other-member",
        "the other party's snapshot stays"
    );
    assert_eq!(own["reason"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_due_run_erasures_no_answer_and_no_table_holds_the_person() {
    let s = story().await;
    let app = &s.app;
    app.ok(Some(&s.root), REQUEST, json!({ "id": s.id() })).await;
    sqlx::query("UPDATE users SET erasure_due_at = now() - interval '1 minute' WHERE id = $1")
        .bind(s.person.id)
        .execute(app.pool())
        .await
        .unwrap();
    let out = memberdesk(&app.db.url, &["run-erasures"], None);
    assert!(out.status.success(), "{}", crate::cli::text(&out));
    assert_no_trace("run-erasures' output", &crate::cli::text(&out));
    assert_no_trace("an API answer", &s.answers().await);
    assert_no_trace("the database", &dump(&app.db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_names_the_audited_export_and_holds_no_personal_data() {
    let s = story().await;
    let app = &s.app;
    let export = app
        .ok(
            Some(&s.root),
            "query($id: ID!) { exportUserData(userId: $id) }",
            json!({ "id": s.id() }),
        )
        .await["exportUserData"]
        .clone();
    assert_eq!(export["profile"]["email"], EMAIL);
    let digest = sha256_hex(&canonical(&export));
    let (action, sha): (String, String) = sqlx::query_as(
        "SELECT action, details->>'sha256' FROM audit_entries WHERE action = 'USER_DATA_EXPORTED'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        (action.as_str(), sha.as_str()),
        ("USER_DATA_EXPORTED", digest.as_str())
    );

    // The reason is kept, so it may not name the person.
    let before = snapshot(app.pool()).await;
    for reason in [
        format!("{FIRST} asked us"),
        format!("erasure for {USERNAME}"),
        format!("mail from {EMAIL}"),
    ] {
        let resp = app
            .gql(
                Some(&s.root),
                ANONYMIZE,
                json!({ "id": s.id(), "r": reason }),
            )
            .await;
        assert_eq!(
            code_and_field(&resp),
            ("INVALID_INPUT".into(), "reason".into()),
            "{resp}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);

    let done = app
        .ok(
            Some(&s.root),
            ANONYMIZE,
            json!({ "id": s.id(), "r": "erasure request" }),
        )
        .await;
    let receipt = &done["anonymizeUser"]["receipt"];
    assert_no_trace("the receipt", &receipt.to_string());
    assert_eq!(receipt["userId"], json!(s.id()));
    assert_eq!(
        receipt["pseudonym"],
        json!(format!("deleted-user-{}", s.person.id))
    );
    assert_eq!(receipt["erasedBy"], "root");
    assert_eq!(receipt["via"], "anonymizeUser");
    assert_eq!(receipt["export"]["sha256"], json!(digest));
    assert!(receipt["export"]["exportedAt"].is_string());
    assert_eq!(receipt["sessionsRevoked"], 2);
    assert_eq!(receipt["removed"]["userPermissions"], 2);
    assert!(
        receipt["auditEntriesRedacted"].as_i64().unwrap() >= 10,
        "{receipt}"
    );
    let fields: Vec<&str> = receipt["fieldsErased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for field in ["username", "email", "firstName", "lastName", "password"] {
        assert!(fields.contains(&field), "{fields:?}");
    }
    // Recorded as the erasure's own entry.
    let recorded: Value =
        sqlx::query_scalar("SELECT details FROM audit_entries WHERE action = 'USER_ANONYMIZED'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(&recorded, receipt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sql_cannot_rewrite_delete_or_truncate_the_audit_log() {
    let s = story().await;
    let app = &s.app;
    let before = audit_table(app).await;
    for sql in [
        "UPDATE audit_entries SET action = 'LOGIN'",
        "UPDATE audit_entries SET reason = 'rewritten'",
        "UPDATE audit_entries SET reason = NULL",
        "UPDATE audit_entries SET details = '{}'",
        "UPDATE audit_entries SET details = details - 'clientAddress'",
        "UPDATE audit_entries SET actor_username = 'mallory'",
        "UPDATE audit_entries SET target_repr = 'someone else'",
        "UPDATE audit_entries SET target_repr_fold = 'x'",
        "UPDATE audit_entries SET at = at - interval '1 day'",
        "UPDATE audit_entries SET redacted_at = now()",
        "UPDATE audit_entries SET target_user_ref = NULL",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "TRUNCATE users, audit_entries CASCADE",
    ] {
        let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(app.pool())
            .await;
        assert!(refused.is_err(), "{sql} was allowed");
    }
    assert_eq!(audit_table(app).await, before);

    // The erasure setting does not open the log for someone not erased.
    let mut tx = app.pool().begin().await.unwrap();
    sqlx::query("SELECT set_config('memberdesk.erasure', $1::bigint::text, true)")
        .bind(s.person.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE audit_entries SET reason = NULL WHERE target_user_ref = $1")
        .bind(s.person.id)
        .execute(&mut *tx)
        .await;
    assert!(refused.is_err(), "redacted a person who was not erased");
    drop(tx);
    assert_eq!(audit_table(app).await, before);

    // Once erased, an update of their redacted entries writes the redaction
    // again, whatever it asks for: nothing can be written into them. Entries
    // about others stay closed.
    app.ok(Some(&s.root), ANONYMIZE, json!({ "id": s.id() }))
        .await;
    let erased = audit_table(app).await;
    let mut tx = app.pool().begin().await.unwrap();
    sqlx::query("SELECT set_config('memberdesk.erasure', $1::bigint::text, true)")
        .bind(s.person.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let asked = sqlx::query(
        "UPDATE audit_entries SET reason = 'forged', action = 'LOGIN', actor_username = 'mallory',
                details = '{\"clientAddress\": \"198.51.100.1\"}', redacted_at = NULL
          WHERE target_user_ref = $1 AND redacted_at IS NOT NULL",
    )
    .bind(s.person.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert!(asked.rows_affected() >= 5, "{}", asked.rows_affected());
    tx.commit().await.unwrap();
    assert_eq!(audit_table(app).await, erased);
    let mut tx = app.pool().begin().await.unwrap();
    sqlx::query("SELECT set_config('memberdesk.erasure', $1::bigint::text, true)")
        .bind(s.person.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let others = sqlx::query("UPDATE audit_entries SET reason = 'x' WHERE target_repr = 'root'")
        .execute(&mut *tx)
        .await;
    assert!(
        others.is_err(),
        "the erasure setting opened someone else's entries"
    );
    drop(tx);
    assert_eq!(audit_table(app).await, erased);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_unknown_usernames_are_kept_nowhere_but_still_counted() {
    let settings = Settings {
        login_limit: LoginLimit {
            per_username_and_address: 2,
            ..Settings::default().login_limit
        },
        ..behind_proxy()
    };
    let app = TestApp::spawn_with(settings).await;
    let (_, root) = app.superuser("root").await;
    let typed = "Hunter2-Typed-In-The-Wrong-Box";
    for _ in 0..2 {
        let resp = login_from(&app, "198.51.100.9", typed, "whatever it was").await;
        assert_eq!(code_and_field(&resp).0, "INVALID_CREDENTIALS", "{resp}");
    }
    // Counted under its digest all the same.
    let resp = login_from(&app, "198.51.100.9", typed, "whatever it was").await;
    assert_eq!(code_and_field(&resp).0, "RATE_LIMITED", "{resp}");

    let log = app
        .ok(
            Some(&root),
            AUDIT,
            json!({ "f": { "action": "LOGIN_FAILED" } }),
        )
        .await;
    let entries = log["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let digests: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["node"]["details"]["usernameDigest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 1, "two attempts on one name correlate");
    let digest = *digests.iter().next().unwrap();
    assert_eq!(
        entries[0]["node"]["targetRepr"],
        json!(format!("unknown username {}", &digest[..12]))
    );
    for text in [log.to_string(), dump(&app.db)] {
        assert!(!text.to_lowercase().contains("hunter2"), "{text}");
    }
    let counters: Vec<String> = sqlx::query_scalar("SELECT key FROM login_failures")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert!(!counters.is_empty());
    for key in counters {
        assert_eq!(key.len(), 64, "a digest, not {key}");
        assert!(!key.contains("198.51.100.9"));
    }
}

/// The digest is HMAC-SHA256: RFC 4231's test case 2 under its key "Jefe".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_digest_is_hmac_sha256_under_the_databases_key() {
    let db = TestDb::new().await;
    let other = TestDb::new().await;
    let digest = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT name_digest('what do ya want for nothing?')")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_ne!(
        digest(&db).await,
        digest(&other).await,
        "a key per database"
    );
    let mut key = b"Jefe".to_vec();
    key.resize(64, 0);
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    sqlx::query("UPDATE name_digest_key SET inner_pad = $1, outer_pad = $2")
        .bind(pad(0x36))
        .bind(pad(0x5c))
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        digest(&db).await,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_pseudonyms_are_refused_on_create_and_rename() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let member = app.user("member", false, false).await;
    let before = snapshot(app.pool()).await;
    for name in [
        "deleted-user-5",
        "Deleted-User-x",
        "ＤＥＬＥＴＥＤ-USER-7",
        "de1eted-user-1",
        "deleted-user-",
    ] {
        let create = app
            .gql(
                Some(&root),
                "mutation($u: String!) { createUser(input: { username: $u, password: \"plum tunnel cobalt harvest\" }) { id } }",
                json!({ "u": name }),
            )
            .await;
        assert_eq!(
            code_and_field(&create),
            ("INVALID_INPUT".into(), "username".into()),
            "createUser {name}: {create}"
        );
        let rename = app
            .gql(
                Some(&root),
                "mutation($id: ID!, $u: String!) { updateUser(id: $id, input: { username: $u }) { id } }",
                json!({ "id": user_id(&member), "u": name }),
            )
            .await;
        assert_eq!(
            code_and_field(&rename),
            ("INVALID_INPUT".into(), "username".into()),
            "updateUser {name}: {rename}"
        );
    }
    assert_eq!(snapshot(app.pool()).await, before);
    // Nor can SQL give a live account a pseudonym's key.
    let taken = sqlx::query(
        "INSERT INTO users (username, username_key) VALUES ('deleted-user-99', 'deleted-user-99')",
    )
    .execute(app.pool())
    .await;
    assert!(taken.is_err(), "a live row took a pseudonym key");
    assert_eq!(snapshot(app.pool()).await, before);
}

/// A database migrated up to `version`, as an older memberdesk left it
/// (dropped with the returned value, as any test database).
async fn database_at(version: i64) -> TestDb {
    let name = format!(
        "memberdesk_test_{}_v{version}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let admin_url = crate::helpers::admin_url();
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let pool = memberdesk::db::connect(&url, false).await.unwrap();
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(migrations))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    migrator
        .run_direct(Some(version), &mut *conn, false)
        .await
        .unwrap();
    drop(conn);
    TestDb { name, url, pool }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymization_never_fails_on_a_name_an_older_version_let_someone_take() {
    let db = database_at(5).await;
    let hash = memberdesk::auth::password::hash_password(PASSWORD.into())
        .await
        .unwrap();
    // User 2's pseudonym, taken by user 3 before such names were refused.
    for (name, superuser) in [("root", true), ("bob", false), ("deleted-user-2", false)] {
        sqlx::query(
            "INSERT INTO users (username, username_key, password_hash, is_staff, is_superuser)
             VALUES ($1, $1, $2, $3, $3)",
        )
        .bind(name)
        .bind(&hash)
        .bind(superuser)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    memberdesk::db::migrate(&db.pool, &db.url).await.unwrap();
    let server = memberdesk::http::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", server.addr);
    tokio::spawn(server.serve(db.pool.clone(), Settings::default(), std::future::pending()));
    let app = TestApp {
        addr,
        db,
        client: reqwest::Client::new(),
    };
    // The older account keeps its name and its login.
    app.login("deleted-user-2", PASSWORD).await;
    let root = app.login("root", PASSWORD).await;
    let bob = memberdesk::ids::encode(memberdesk::ids::Kind::User, 2);
    let done = app.ok(Some(&root), ANONYMIZE, json!({ "id": bob })).await;
    assert_eq!(done["anonymizeUser"]["user"]["username"], "deleted-user-2");
    let names: Vec<(String, bool)> = sqlx::query_as(
        "SELECT username, anonymized_at IS NOT NULL FROM users WHERE username = 'deleted-user-2' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        names,
        [
            ("deleted-user-2".into(), true),
            ("deleted-user-2".into(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_erasure_deactivates_now_and_run_erasures_anonymizes_it_when_due() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let member = app.user("member", false, false).await;
    let token = app.login("member", PASSWORD).await;
    let id = json!({ "id": user_id(&member) });
    let asked = chrono::Utc::now();
    let done = app.ok(Some(&root), REQUEST, id.clone()).await["requestErasure"].clone();
    assert_eq!(done["isActive"], false);
    assert_eq!(done["anonymizedAt"], Value::Null);
    let due: chrono::DateTime<chrono::Utc> =
        done["erasureDueAt"].as_str().unwrap().parse().unwrap();
    let grace = due - asked;
    assert!(
        grace >= chrono::Duration::days(7) - chrono::Duration::minutes(1)
            && grace <= chrono::Duration::days(7) + chrono::Duration::minutes(1),
        "{grace}"
    );
    assert_eq!(
        app.err_code(Some(&token), "{ me { id } }", json!({})).await,
        "UNAUTHENTICATED",
        "sessions end at once"
    );

    // Not due yet: a run finds nothing; asking again changes nothing; a
    // reactivation must wait for a cancellation.
    let before = snapshot(app.pool()).await;
    for args in [&["run-erasures"][..], &["run-erasures", "--dry-run"]] {
        let out = memberdesk(&app.db.url, args, None);
        assert!(out.status.success(), "{}", crate::cli::text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("no erasure is due"),
            "{}",
            crate::cli::text(&out)
        );
    }
    let again = app.ok(Some(&root), REQUEST, id.clone()).await;
    assert_eq!(
        again["requestErasure"]["erasureDueAt"],
        done["erasureDueAt"]
    );
    let reactivate = app
        .gql(
            Some(&root),
            "mutation($id: ID!) { reactivateUser(id: $id) { user { isActive } } }",
            id.clone(),
        )
        .await;
    assert_eq!(
        code_and_field(&reactivate),
        ("INVALID_INPUT".into(), "id".into())
    );
    assert_eq!(snapshot(app.pool()).await, before);

    // Due (as if seven days had passed): too late to cancel; a dry run lists
    // it by id and changes nothing; the run erases it as `system`.
    sqlx::query("UPDATE users SET erasure_due_at = now() - interval '1 minute' WHERE id = $1")
        .bind(member.id)
        .execute(app.pool())
        .await
        .unwrap();
    let before = snapshot(app.pool()).await;
    let cancel = app.gql(Some(&root), CANCEL, id.clone()).await;
    assert_eq!(
        code_and_field(&cancel),
        ("INVALID_INPUT".into(), "userId".into())
    );
    let dry = memberdesk(&app.db.url, &["run-erasures", "--dry-run"], None);
    let listed = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        listed.starts_with(&format!(
            "dry run: 1 erasure(s) due would be carried out: user {} (due ",
            member.id
        )),
        "{listed}"
    );
    assert!(!listed.contains("member"), "ids, not names: {listed}");
    assert_eq!(snapshot(app.pool()).await, before);

    let out = memberdesk(&app.db.url, &["run-erasures"], None);
    assert!(out.status.success(), "{}", crate::cli::text(&out));
    let n = member.id;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "erased user {n} as deleted-user-{n}: 3 audit entries redacted, 0 session(s) revoked\n\
             erased 1 user(s) whose requested erasure was due\n"
        )
    );
    let user = app
        .ok(
            Some(&root),
            "query($id: ID!) { user(id: $id) { username anonymizedAt erasureDueAt } }",
            id,
        )
        .await;
    assert_eq!(user["user"]["username"], json!(format!("deleted-user-{n}")));
    assert_eq!(user["user"]["erasureDueAt"], Value::Null);
    let (actor, actor_id, receipt): (String, Option<i64>, Value) = sqlx::query_as(
        "SELECT actor_username, actor_id, details FROM audit_entries WHERE action = 'USER_ANONYMIZED'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((actor.as_str(), actor_id), ("system", None));
    assert_eq!(
        (receipt["via"].clone(), receipt["erasedBy"].clone()),
        (json!("requestErasure"), json!("system"))
    );
    let request_reason: Option<String> = sqlx::query_scalar(
        "SELECT reason FROM audit_entries WHERE action = 'ERASURE_REQUESTED' LIMIT 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        request_reason, None,
        "the request's reason went with the rest"
    );
    let out = memberdesk(&app.db.url, &["run-erasures"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no erasure is due\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_may_ask_for_their_own_erasure_and_no_grace_period_erases_at_once() {
    let app = TestApp::spawn_with(Settings {
        erasure_grace: chrono::Duration::zero(),
        ..Settings::default()
    })
    .await;
    let (_, root) = app.superuser("root").await;
    let (_, manager) = app
        .staff_with("manager", &["auth.change_user", "auth.view_user"])
        .await;
    let member = app.user("member", false, false).await;
    let other = app.user("other", false, false).await;
    let token = app.login("member", PASSWORD).await;

    // Only for yourself, or by a superuser.
    let before = snapshot(app.pool()).await;
    for (caller, code) in [
        (Some(manager.as_str()), "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ] {
        let resp = app
            .gql(caller, REQUEST, json!({ "id": user_id(&other) }))
            .await;
        assert_eq!(code_and_field(&resp).0, code, "{resp}");
    }
    assert_eq!(snapshot(app.pool()).await, before);

    let done = app
        .ok(Some(&token), REQUEST, json!({ "id": user_id(&member) }))
        .await;
    let n = member.id;
    assert_eq!(
        done["requestErasure"]["username"],
        json!(format!("deleted-user-{n}"))
    );
    assert!(done["requestErasure"]["anonymizedAt"].is_string());
    assert_eq!(done["requestErasure"]["erasureDueAt"], Value::Null);
    assert_eq!(
        app.err_code(Some(&token), "{ me { id } }", json!({})).await,
        "UNAUTHENTICATED"
    );
    let actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor_username FROM audit_entries
          WHERE action IN ('ERASURE_REQUESTED', 'USER_ANONYMIZED') ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    let pseudonym = format!("deleted-user-{n}");
    assert_eq!(
        actors,
        [
            ("ERASURE_REQUESTED".into(), pseudonym),
            ("USER_ANONYMIZED".into(), "system".into())
        ]
    );
    let resp = app
        .gql(Some(&root), REQUEST, json!({ "id": user_id(&member) }))
        .await;
    assert_eq!(code_and_field(&resp).0, "ANONYMIZED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_erasure_leaves_the_user_deactivated_until_reactivated() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let member = app.user("member", false, false).await;
    let group: i64 =
        sqlx::query_scalar("INSERT INTO groups (name) VALUES ('Editors') RETURNING id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    sqlx::query("INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2)")
        .bind(member.id)
        .bind(group)
        .execute(app.pool())
        .await
        .unwrap();
    let id = json!({ "id": user_id(&member) });
    app.ok(Some(&root), REQUEST, id.clone()).await;
    let done = app.ok(Some(&root), CANCEL, id.clone()).await;
    assert_eq!(
        done["cancelErasure"],
        json!({ "username": "member", "isActive": false, "erasureDueAt": null })
    );
    let cancelled: i64 = app
        .count("SELECT count(*) FROM audit_entries WHERE action = 'ERASURE_CANCELLED'")
        .await;
    assert_eq!(cancelled, 1);

    // Nothing pending any more: a second cancel is refused and changes nothing.
    let before = snapshot(app.pool()).await;
    let again = app.gql(Some(&root), CANCEL, id.clone()).await;
    assert_eq!(
        code_and_field(&again),
        ("INVALID_INPUT".into(), "userId".into())
    );
    assert_eq!(snapshot(app.pool()).await, before);

    let back = app
        .ok(
            Some(&root),
            "mutation($id: ID!) { reactivateUser(id: $id, restoreAccess: true) { user { isActive } restoredGroups { name } } }",
            id,
        )
        .await;
    assert_eq!(
        back["reactivateUser"],
        json!({ "user": { "isActive": true }, "restoredGroups": [{ "name": "Editors" }] })
    );
    app.login("member", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_erase_each_due_request_exactly_once() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let user = app.user(&format!("leaver{n}"), false, false).await;
        app.ok(Some(&root), REQUEST, json!({ "id": user_id(&user) }))
            .await;
        ids.push(user.id);
    }
    sqlx::query("UPDATE users SET erasure_due_at = now() - interval '1 minute' WHERE erasure_due_at IS NOT NULL")
        .execute(app.pool())
        .await
        .unwrap();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let url = app.db.url.clone();
            std::thread::spawn(move || memberdesk(&url, &["run-erasures"], None))
        })
        .collect();
    let mut erased = Vec::new();
    for run in runs {
        let out = run.join().unwrap();
        assert!(out.status.success(), "{}", crate::cli::text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        erased.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("erased user "))
                .map(|l| l.split(' ').next().unwrap().parse::<i64>().unwrap()),
        );
    }
    erased.sort_unstable();
    assert_eq!(erased, ids, "each request reported once over both runs");
    let per_user: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT target_user_ref, count(*) FROM audit_entries WHERE action = 'USER_ANONYMIZED'
          GROUP BY target_user_ref ORDER BY 1",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(per_user, ids.iter().map(|id| (*id, 1)).collect::<Vec<_>>());
    let left = app
        .count("SELECT count(*) FROM users WHERE erasure_due_at IS NOT NULL OR (username LIKE 'leaver%')")
        .await;
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_with_erase_redacts_the_audit_trail_and_returns_a_receipt() {
    let s = story().await;
    let app = &s.app;
    let delete = "mutation($id: ID!, $e: Boolean!, $r: String) {
        deleteUser(id: $id, policy: SET_NULL, reason: $r, erase: $e) { deleted receipt plan { user { username email } } } }";
    // The reason is kept, so it may not name the person either.
    let before = snapshot(app.pool()).await;
    let resp = app
        .gql(
            Some(&s.root),
            delete,
            json!({ "id": s.id(), "e": true, "r": format!("{LAST} asked") }),
        )
        .await;
    assert_eq!(
        code_and_field(&resp),
        ("INVALID_INPUT".into(), "reason".into())
    );
    assert_eq!(snapshot(app.pool()).await, before);

    let done = app
        .ok(
            Some(&s.root),
            delete,
            json!({ "id": s.id(), "e": true, "r": "spam" }),
        )
        .await;
    let pseudonym = format!("deleted-user-{}", s.person.id);
    let payload = &done["deleteUser"];
    assert_eq!(payload["deleted"], true);
    assert_eq!(
        payload["plan"]["user"],
        json!({ "username": pseudonym, "email": "" })
    );
    assert_eq!(payload["receipt"]["via"], "deleteUser");
    assert_eq!(payload["receipt"]["userId"], json!(s.id()));
    assert_no_trace("the deletion's answer", &done.to_string());

    // The old id still finds every entry, now without the person.
    let log = app
        .ok(
            Some(&s.root),
            AUDIT,
            json!({ "f": { "targetUserId": s.id() } }),
        )
        .await;
    let entries = log["auditLog"]["edges"].as_array().unwrap();
    assert!(entries.len() >= 8, "{log}");
    for entry in entries.iter().map(|e| &e["node"]) {
        assert_eq!(entry["targetRepr"], json!(pseudonym), "{entry}");
    }
    assert!(
        entries
            .iter()
            .any(|e| e["node"]["action"] == "USER_DELETED")
    );
    assert_no_trace("an API answer", &s.answers_after_deletion().await);
    assert_no_trace("the database", &dump(&app.db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_without_erase_keeps_the_snapshot_unless_an_erasure_is_pending() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let kept = app.user("kept-name", false, false).await;
    let leaving = app.user("leaving-name", false, false).await;
    let delete = "mutation($id: ID!) { deleteUser(id: $id) { deleted receipt } }";
    let done = app
        .ok(Some(&root), delete, json!({ "id": user_id(&kept) }))
        .await;
    assert_eq!(
        done["deleteUser"],
        json!({ "deleted": true, "receipt": null })
    );
    app.ok(Some(&root), REQUEST, json!({ "id": user_id(&leaving) }))
        .await;
    let done = app
        .ok(Some(&root), delete, json!({ "id": user_id(&leaving) }))
        .await;
    assert_eq!(done["deleteUser"]["receipt"]["via"], "deleteUser");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT target_repr FROM audit_entries WHERE target_user_ref = ANY($1) ORDER BY 1",
    )
    .bind(vec![kept.id, leaving.id])
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        names,
        [
            "deleted-user-".to_owned() + &leaving.id.to_string(),
            "kept-name".into()
        ]
    );
}

impl Story {
    /// The answers that can still reach a deleted person: the audit log and votes.
    async fn answers_after_deletion(&self) -> String {
        let app = &self.app;
        let root = Some(self.root.as_str());
        let log = app.ok(root, AUDIT, json!({})).await;
        let question = app
            .ok(
                root,
                "query($q: ID!) { question(id: $q) { choices { voteCount } } }",
                json!({ "q": self.question }),
            )
            .await;
        format!("{log}{question}")
    }
}

/// What PostgreSQL says references users must be exactly what the export
/// shows and what an erasure has decided about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_and_the_erasure_cover_every_foreign_key_to_users() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let member = app.user("member", false, false).await;
    let mut conn = app.pool().acquire().await.unwrap();
    let catalog: BTreeSet<(String, String)> =
        memberdesk::store::deletion::foreign_keys_to_users(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .collect();
    drop(conn);
    assert!(!catalog.is_empty());
    let exported: BTreeSet<(String, String)> = memberdesk::domain::export::SECTIONS
        .iter()
        .map(|s| (s.table.to_owned(), s.column.to_owned()))
        .collect();
    assert_eq!(
        exported, catalog,
        "a foreign key to users must be in export::SECTIONS (and in the export's SQL)"
    );
    let decided: BTreeSet<(String, String)> = memberdesk::domain::erasure::RELATIONS
        .iter()
        .map(|r| (r.table.to_owned(), r.column.to_owned()))
        .collect();
    assert_eq!(
        decided, catalog,
        "a foreign key to users must be in erasure::RELATIONS, with what anonymization does to it"
    );
    let doc = app
        .ok(
            Some(&root),
            "query($id: ID!) { exportUserData(userId: $id) }",
            json!({ "id": user_id(&member) }),
        )
        .await;
    for section in memberdesk::domain::export::SECTIONS {
        assert!(
            doc["exportUserData"][section.key].is_array(),
            "the export has no {} section",
            section.key
        );
    }
}
