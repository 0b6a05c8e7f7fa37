//! Erasure (GDPR Art. 17) tried as an auditor would: after `anonymizeUser`,
//! a due `run-erasures` or `deleteUser(erase: true)`, nothing of the person
//! is in any API answer or anywhere in a `pg_dump` of the database; typed
//! unknown usernames are kept nowhere; pseudonyms cannot be taken; the audit
//! log refuses every other change; the grace period, its cancellation and
//! two concurrent runs; receipts; the export against the catalog.

use std::collections::BTreeSet;
use std::process::Command;

use crate::cli::{memberdesk, text};
use crate::helpers::{ANONYMOUS, PASSWORD, Refusal, TestApp, TestDb, snapshot, user_id};
use memberdesk::config::{LoginLimit, ReasonPolicy, Settings, TrustedProxies};
use memberdesk::store::users::UserRow;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The address the person logs in from (behind the trusted proxy 127.0.0.1).
const ADDRESS: &str = "203.0.113.77";
const USERNAME: &str = "quill-ardent";
const EMAIL: &str = "quill.ardent@mail.example";
const FIRST: &str = "Wilhelmina";
const LAST: &str = "Strzelecka";
/// A phrase only the reasons written about the person hold.
const STORY: &str = "Zanzibar incident";

/// What an erasure's payload is checked by.
const ERASED: &str = "user { id username email firstName lastName anonymizedAt erasureDueAt } sessionsRevoked receipt";
/// A user as an erasure request shows them.
const REQUESTED: &str = "id username isActive erasureDueAt anonymizedAt";
/// Every part of an audit entry, the people it names included.
const ENTRY: &str = "action at actorUsername targetRepr reason details redactedAt
    actor { username email firstName lastName } targetUser { username email firstName lastName }";

/// Everything that identified the person, as the tests grep for it.
const TRACES: [&str; 6] = [USERNAME, EMAIL, FIRST, LAST, STORY, ADDRESS];

fn assert_no_trace(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for trace in TRACES {
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
        .args(["--data-only", "--dbname", &db.url])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = String::from_utf8(out.stdout).unwrap();
    assert!(dumped.contains("COPY public.audit_entries"), "{dumped}");
    dumped
}

/// The whole audit table, to prove a statement changed nothing in it.
async fn audit_table(app: &TestApp) -> Value {
    sqlx::query_scalar("SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM audit_entries t")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// The requests of `id` fall due now, as if the grace period had passed.
async fn make_due(app: &TestApp, id: i64) {
    app.execute(
        "UPDATE users SET erasure_due_at = now() - interval '1 minute' WHERE id = $1",
        id,
    )
    .await;
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

/// The person, with a history that names them wherever it can: created and
/// edited, logged in from their address (and failed once), deactivated and
/// reactivated with reasons about them, a vote, and, as staff, a
/// deactivation of someone else with a reason of their own.
struct Story {
    app: TestApp,
    root: String,
    person: UserRow,
    question: String,
}

async fn story() -> Story {
    let app = TestApp::spawn_with(behind_proxy()).await;
    let (_, root) = app.superuser("root").await;
    let input = json!({ "username": USERNAME, "email": "quill@old.example", "firstName": FIRST,
                        "lastName": LAST, "password": PASSWORD, "isStaff": true });
    let id = app.create_user(&root, input).ok().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for permission in ["auth.change_user", "auth.view_user"] {
        app.grant(&root, &id, permission).ok().await;
    }
    let question = app
        .create_question(&root, "Lunch?", &["Yes", "No"])
        .ok()
        .await;
    let failed = app
        .login_from(ADDRESS, USERNAME, "not the password at all")
        .await;
    assert_eq!(Refusal::of(&failed).code, "INVALID_CREDENTIALS");
    let token = app.login_from(ADDRESS, USERNAME, PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let choice = question["choices"][0]["id"].as_str().unwrap();
    app.vote(&token, choice).ok().await;
    let other = app.user("other-member", false, false).await;
    let own_reason = json!({ "reason": "cleaning up after the merger" });
    app.deactivate(&token, &user_id(&other))
        .input(own_reason)
        .ok()
        .await;
    let about = format!("{FIRST} {LAST} ({EMAIL}) left after the {STORY}");
    app.deactivate(&root, &id)
        .input(json!({ "reason": about }))
        .ok()
        .await;
    app.reactivate(&root, &id)
        .restore_access()
        .reason(&format!("{USERNAME} is back"))
        .ok()
        .await;
    app.update_user(&root, &id, json!({ "email": EMAIL }))
        .ok()
        .await;
    // Two live sessions when the erasure comes.
    for _ in 0..2 {
        app.login_from(ADDRESS, USERNAME, PASSWORD).await;
    }
    let key = memberdesk::domain::validation::username_key(USERNAME);
    let person = memberdesk::store::users::find_by_username_key(app.pool(), &key)
        .await
        .unwrap()
        .expect("the person");
    Story {
        app,
        root,
        person,
        question: question["id"].as_str().unwrap().to_owned(),
    }
}

impl Story {
    fn id(&self) -> String {
        user_id(&self.person)
    }

    fn pseudonym(&self) -> String {
        format!("deleted-user-{}", self.person.id)
    }

    /// The audit entries `filter` finds, every part of them.
    async fn entries(&self, filter: Value) -> Vec<Value> {
        let page = self.app.audit_log(&self.root, filter);
        let page = page
            .arg("first", "Int", 100)
            .select(&format!("edges {{ node {{ {ENTRY} }} }}"));
        let log = page.ok().await;
        let edges = log["edges"].as_array().unwrap();
        edges.iter().map(|e| e["node"].clone()).collect()
    }

    /// What the API still answers about the person and their history, as
    /// one text: the audit log, their export, their account, their votes,
    /// the question they voted on, and the users list.
    async fn answers(&self) -> String {
        let app = &self.app;
        let root = Some(self.root.as_str());
        let id = json!({ "id": self.id() });
        let all = json!([
            self.entries(json!({})).await,
            app.export_user_data(&self.root, &self.id()).ok().await,
            app.ok(
                root,
                "query($id: ID!) { user(id: $id) { username email firstName lastName deactivationReason
                    votes(first: 10) { edges { node { voterName } } } } }",
                id.clone(),
            )
            .await,
            app.ok(
                root,
                "query($id: ID!) { votes(userId: $id, first: 10) { edges { node { voterName user { username } } } } }",
                id,
            )
            .await,
            self.after_deletion().await,
            app.ok(
                root,
                "{ users(first: 100) { edges { node { username email firstName lastName } } } }",
                json!({}),
            )
            .await,
        ]);
        all.to_string()
    }

    /// What can still reach a deleted person: the audit log and the tallies.
    async fn after_deletion(&self) -> Value {
        let question = self
            .app
            .ok(
                Some(self.root.as_str()),
                "query($q: ID!) { question(id: $q) { createdBy { username } choices { voteCount } } }",
                json!({ "q": self.question }),
            )
            .await;
        json!([self.entries(json!({})).await, question])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_anonymization_no_answer_and_no_table_holds_the_person() {
    let s = story().await;
    let app = &s.app;
    // Before: the person is everywhere, which is what makes the rest a test.
    let (answers, dumped) = (s.answers().await, dump(&app.db));
    for trace in TRACES {
        assert!(answers.contains(trace), "the answers should show {trace}");
        assert!(dumped.contains(trace), "the dump should hold {trace}");
    }

    let done = app
        .anonymize(&s.root, &s.id())
        .reason("erasure request under GDPR Art. 17")
        .select(ERASED)
        .ok()
        .await;
    assert_eq!(done["user"]["username"], json!(s.pseudonym()));
    assert_eq!(done["sessionsRevoked"], 2);

    assert_no_trace("an API answer", &s.answers().await);
    assert_no_trace("the database", &dump(&app.db));

    // The history stays, with the pseudonym: every entry about the person,
    // its action and time, marked as redacted.
    let entries = s.entries(json!({ "targetUserId": s.id() })).await;
    let actions: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "USER_CREATED",
        "PERMISSION_GRANTED",
        "LOGIN",
        "LOGIN_FAILED",
        "USER_DEACTIVATED",
        "USER_REACTIVATED",
        "USER_UPDATED",
        "USER_DATA_EXPORTED",
        "USER_ANONYMIZED",
    ] {
        assert!(actions.contains(action), "{action} kept: {actions:?}");
    }
    let written_since = ["USER_ANONYMIZED", "USER_DATA_EXPORTED"];
    for entry in &entries {
        assert_eq!(entry["targetRepr"], json!(s.pseudonym()), "{entry}");
        if !written_since.contains(&entry["action"].as_str().unwrap()) {
            assert_eq!(entry["reason"], Value::Null, "{entry}");
            assert_eq!(entry["details"]["redacted"], true, "{entry}");
            assert!(entry["redactedAt"].is_string(), "{entry}");
        }
    }
    // As the actor of someone else's deactivation: their own snapshot
    // stays, the person's and their reason go.
    let filter = json!({ "actorId": s.id(), "action": "USER_DEACTIVATED" });
    let own = &s.entries(filter).await[0];
    assert_eq!(own["actorUsername"], json!(s.pseudonym()));
    assert_eq!(own["targetRepr"], "other-member");
    assert_eq!(own["reason"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_due_run_erasures_no_answer_and_no_table_holds_the_person() {
    let s = story().await;
    let app = &s.app;
    app.request_erasure(&s.root, &s.id()).ok().await;
    make_due(app, s.person.id).await;
    let out = memberdesk(&app.db.url, &["run-erasures"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_trace("run-erasures' output", &text(&out));
    assert_no_trace("an API answer", &s.answers().await);
    assert_no_trace("the database", &dump(&app.db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_names_the_audited_export_and_holds_no_personal_data() {
    let s = story().await;
    let app = &s.app;
    let export = app.export_user_data(&s.root, &s.id()).ok().await;
    assert_eq!(export["profile"]["email"], EMAIL);
    let digest = sha256_hex(&canonical(&export));
    let recorded: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'sha256' FROM audit_entries WHERE action = 'USER_DATA_EXPORTED'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        recorded,
        std::slice::from_ref(&digest),
        "the export is audited with its digest"
    );

    // The erasure's own reason is kept, so it may not name the person.
    for reason in [
        format!("{FIRST} asked us"),
        format!("erasure for {USERNAME}"),
        format!("mail from {EMAIL}"),
    ] {
        let refusal = app
            .anonymize(&s.root, &s.id())
            .reason(&reason)
            .refused("INVALID_INPUT")
            .await;
        assert_eq!(refusal.field, "reason", "{reason}");
    }

    let done = app
        .anonymize(&s.root, &s.id())
        .reason("erasure request")
        .select(ERASED)
        .ok()
        .await;
    let receipt = &done["receipt"];
    assert_no_trace("the receipt", &receipt.to_string());
    assert_eq!(receipt["userId"], json!(s.id()));
    assert_eq!(receipt["pseudonym"], json!(s.pseudonym()));
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
    let fields = receipt["fieldsErased"].to_string();
    for field in ["username", "email", "firstName", "lastName", "password"] {
        assert!(fields.contains(&format!("\"{field}\"")), "{fields}");
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
    let erasing = |id: i64| async move {
        let mut tx = app.pool().begin().await.unwrap();
        sqlx::query("SELECT set_config('memberdesk.erasure', $1::bigint::text, true)")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx
    };
    let mut tx = erasing(s.person.id).await;
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
    app.anonymize(&s.root, &s.id()).ok().await;
    let erased = audit_table(app).await;
    let mut tx = erasing(s.person.id).await;
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
    let mut tx = erasing(s.person.id).await;
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
        let resp = app
            .login_from("198.51.100.9", typed, "whatever it was")
            .await;
        assert_eq!(Refusal::of(&resp).code, "INVALID_CREDENTIALS", "{resp}");
    }
    // Counted under its digest all the same.
    let resp = app
        .login_from("198.51.100.9", typed, "whatever it was")
        .await;
    assert_eq!(Refusal::of(&resp).code, "RATE_LIMITED", "{resp}");

    let entries = app
        .audit_entries(&root, json!({ "action": "LOGIN_FAILED" }))
        .await;
    assert_eq!(entries.len(), 2);
    let digests: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["details"]["usernameDigest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 1, "two attempts on one name correlate");
    let digest = *digests.iter().next().unwrap();
    assert_eq!(
        entries[0]["targetRepr"],
        json!(format!("unknown username {}", &digest[..12]))
    );
    for kept in [json!(entries).to_string(), dump(&app.db)] {
        assert!(!kept.to_lowercase().contains("hunter2"), "{kept}");
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
    let member = user_id(&app.user("member", false, false).await);
    for name in [
        "deleted-user-5",
        "Deleted-User-x",
        "ＤＥＬＥＴＥＤ-USER-7",
        "de1eted-user-1",
        "deleted-user-",
    ] {
        let input = json!({ "username": name, "password": "plum tunnel cobalt harvest" });
        let create = app.create_user(&root, input).refused("INVALID_INPUT").await;
        assert_eq!(create.field, "username", "createUser {name}");
        let input = json!({ "username": name });
        let rename = app
            .update_user(&root, &member, input)
            .refused("INVALID_INPUT")
            .await;
        assert_eq!(rename.field, "username", "updateUser {name}");
    }
    // Nor can SQL give a live account a pseudonym's key.
    let before = snapshot(app.pool()).await;
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
    let pool = db.pool.clone();
    tokio::spawn(server.serve(pool, Settings::default(), std::future::pending()));
    let app = TestApp {
        addr,
        db,
        client: reqwest::Client::new(),
    };
    // The older account keeps its name and its login.
    app.login("deleted-user-2", PASSWORD).await;
    let root = app.login("root", PASSWORD).await;
    let bob = memberdesk::ids::encode(memberdesk::ids::Kind::User, 2);
    let done = app.anonymize(&root, &bob).ok().await;
    assert_eq!(done["user"]["username"], "deleted-user-2");
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT username, anonymized_at IS NOT NULL FROM users WHERE username = 'deleted-user-2' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
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
    let id = user_id(&member);
    let token = app.login("member", PASSWORD).await;
    let asked = chrono::Utc::now();
    let request = || app.request_erasure(&root, &id).reason("asked on the phone");
    let done = request().select(REQUESTED).ok().await;
    assert_eq!(
        (&done["isActive"], &done["anonymizedAt"]),
        (&json!(false), &Value::Null)
    );
    let due: chrono::DateTime<chrono::Utc> =
        done["erasureDueAt"].as_str().unwrap().parse().unwrap();
    let grace = (due - asked).num_seconds();
    assert!(
        (7 * 86_400 - 60..=7 * 86_400 + 60).contains(&grace),
        "{grace}"
    );
    assert_eq!(
        app.me(&token).await,
        Err("UNAUTHENTICATED".into()),
        "sessions end at once"
    );

    // Not due yet: a run finds nothing; asking again changes nothing; a
    // reactivation must wait for a cancellation.
    let before = snapshot(app.pool()).await;
    for args in [&["run-erasures"][..], &["run-erasures", "--dry-run"]] {
        let out = memberdesk(&app.db.url, args, None);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("no erasure is due"), "{}", text(&out));
    }
    let again = request().select(REQUESTED).ok().await;
    assert_eq!(again["erasureDueAt"], done["erasureDueAt"]);
    assert_eq!(snapshot(app.pool()).await, before);
    let wait = app.reactivate(&root, &id).refused("INVALID_INPUT").await;
    assert_eq!(wait.field, "id");

    // Due: too late to cancel; a dry run lists it by id and changes nothing;
    // the run erases it as `system`, and a second run finds nothing.
    make_due(&app, member.id).await;
    let late = app
        .cancel_erasure(&root, &id)
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(late.field, "userId");
    let before = snapshot(app.pool()).await;
    let dry = text(&memberdesk(
        &app.db.url,
        &["run-erasures", "--dry-run"],
        None,
    ));
    let n = member.id;
    let listed = format!("dry run: 1 erasure(s) due would be carried out: user {n} (due ");
    assert!(dry.starts_with(&listed), "{dry}");
    assert!(!dry.contains("member"), "ids, not names: {dry}");
    assert_eq!(snapshot(app.pool()).await, before);

    let out = memberdesk(&app.db.url, &["run-erasures"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "erased user {n} as deleted-user-{n}: 3 audit entries redacted, 0 session(s) revoked\n\
             erased 1 user(s) whose requested erasure was due\n"
        )
    );
    let user = app
        .ok(
            Some(root.as_str()),
            "query($id: ID!) { user(id: $id) { username erasureDueAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        user["user"],
        json!({ "username": format!("deleted-user-{n}"), "erasureDueAt": null })
    );
    let (actor, actor_id, receipt): (String, Option<i64>, Value) = sqlx::query_as(
        "SELECT actor_username, actor_id, details FROM audit_entries WHERE action = 'USER_ANONYMIZED'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((actor.as_str(), actor_id), ("system", None));
    assert_eq!(
        (&receipt["via"], &receipt["erasedBy"]),
        (&json!("requestErasure"), &json!("system"))
    );
    let reasons: Vec<Option<String>> =
        sqlx::query_scalar("SELECT reason FROM audit_entries WHERE action = 'ERASURE_REQUESTED'")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(reasons, [None], "the request's reason went with the rest");
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
    let other = user_id(&app.user("other", false, false).await);
    let token = app.login("member", PASSWORD).await;

    // Only for yourself, or by a superuser.
    app.request_erasure(&manager, &other)
        .refused("FORBIDDEN")
        .await;
    app.request_erasure(ANONYMOUS, &other)
        .refused("UNAUTHENTICATED")
        .await;

    let n = member.id;
    let done = app
        .request_erasure(&token, &user_id(&member))
        .select(REQUESTED)
        .ok()
        .await;
    assert_eq!(done["username"], json!(format!("deleted-user-{n}")));
    assert!(done["anonymizedAt"].is_string());
    assert_eq!(done["erasureDueAt"], Value::Null);
    assert_eq!(app.me(&token).await, Err("UNAUTHENTICATED".into()));
    let actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor_username FROM audit_entries
          WHERE action IN ('ERASURE_REQUESTED', 'USER_ANONYMIZED') ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        actors,
        [
            ("ERASURE_REQUESTED".into(), format!("deleted-user-{n}")),
            ("USER_ANONYMIZED".into(), "system".into())
        ]
    );
    app.request_erasure(&root, &user_id(&member))
        .refused("ANONYMIZED")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_reason_holds_for_requesting_an_erasure_too() {
    let app = TestApp::spawn_with(Settings {
        reason_policy: ReasonPolicy::Required,
        ..Settings::default()
    })
    .await;
    let (_, root) = app.superuser("root").await;
    let id = user_id(&app.user("member", false, false).await);
    let missing = app
        .request_erasure(&root, &id)
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(missing.field, "reason");
    app.request_erasure(&root, &id)
        .reason("asked by email")
        .ok()
        .await;
    // Withdrawing gives back; it needs none.
    app.cancel_erasure(&root, &id).ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_erasure_leaves_the_user_deactivated_until_reactivated() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let id = user_id(&app.user("member", false, false).await);
    let group = app.create_group(&root, "Editors", &[]).ok().await;
    let group = group["id"].as_str().unwrap();
    app.add_to_group(&root, &id, group).ok().await;
    app.request_erasure(&root, &id).ok().await;
    let done = app
        .cancel_erasure(&root, &id)
        .select("username isActive erasureDueAt")
        .ok()
        .await;
    assert_eq!(
        done,
        json!({ "username": "member", "isActive": false, "erasureDueAt": null })
    );
    assert_eq!(app.audit_count("ERASURE_CANCELLED").await, 1);

    // Nothing pending any more: a second cancel is refused and changes nothing.
    let again = app
        .cancel_erasure(&root, &id)
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(again.field, "userId");

    let back = app
        .reactivate(&root, &id)
        .restore_access()
        .select("user { isActive } restoredGroups { name }")
        .ok()
        .await;
    assert_eq!(
        back,
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
        app.request_erasure(&root, &user_id(&user)).ok().await;
        make_due(&app, user.id).await;
        ids.push(user.id);
    }
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let url = app.db.url.clone();
            std::thread::spawn(move || memberdesk(&url, &["run-erasures"], None))
        })
        .collect();
    let mut erased = Vec::new();
    for run in runs {
        let out = run.join().unwrap();
        assert!(out.status.success(), "{}", text(&out));
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
        .count("SELECT count(*) FROM users WHERE erasure_due_at IS NOT NULL OR username LIKE 'leaver%'")
        .await;
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_with_erase_redacts_the_audit_trail_and_returns_a_receipt() {
    let s = story().await;
    let app = &s.app;
    let delete = || {
        app.delete_user(&s.root, &s.id())
            .policy("SET_NULL")
            .erase(true)
            .select("deleted receipt plan { user { username email } }")
    };
    // The reason is kept, so it may not name the person either.
    let named = delete()
        .reason(&format!("{LAST} asked"))
        .refused("INVALID_INPUT")
        .await;
    assert_eq!(named.field, "reason");

    let done = delete().reason("spam").ok().await;
    assert_eq!(done["deleted"], true);
    assert_eq!(
        done["plan"]["user"],
        json!({ "username": s.pseudonym(), "email": "" })
    );
    let receipt = &done["receipt"];
    assert_eq!(receipt["via"], "deleteUser");
    assert_eq!(receipt["userId"], json!(s.id()));
    assert_eq!(receipt["removed"]["sessions"], 3, "{receipt}");
    assert_eq!(receipt["removed"]["userPermissions"], 2, "{receipt}");
    let kept = receipt["kept"].to_string();
    for relation in ["votes", "auditEntries", "auditEntriesAsTarget"] {
        assert!(kept.contains(&format!("\"{relation}\"")), "{kept}");
    }
    assert_no_trace("the deletion's answer", &done.to_string());

    // The old id still finds every entry, now without the person.
    let entries = s.entries(json!({ "targetUserId": s.id() })).await;
    assert!(entries.len() >= 8, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry["targetRepr"], json!(s.pseudonym()), "{entry}");
    }
    assert!(entries.iter().any(|e| e["action"] == "USER_DELETED"));
    assert_no_trace("an API answer", &s.after_deletion().await.to_string());
    assert_no_trace("the database", &dump(&app.db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_without_erase_keeps_the_snapshot_unless_an_erasure_is_pending() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let kept = app.user("kept-name", false, false).await;
    let leaving = app.user("leaving-name", false, false).await;
    let in_bulk = app.user("bulk-kept", false, false).await;
    let leaving_in_bulk = app.user("bulk-leaving", false, false).await;
    let delete = |user: &UserRow| {
        app.delete_user(&root, &user_id(user))
            .select("deleted receipt")
    };
    let done = delete(&kept).ok().await;
    assert_eq!(done, json!({ "deleted": true, "receipt": null }));
    for user in [&leaving, &leaving_in_bulk] {
        app.request_erasure(&root, &user_id(user)).ok().await;
    }
    let done = delete(&leaving).ok().await;
    assert_eq!(done["receipt"]["via"], "deleteUser");
    // So does a bulk deletion: the one whose erasure was pending is erased.
    let bulk = app
        .ok(
            Some(root.as_str()),
            "mutation($ids: [ID!]) { deleteUsers(ids: $ids) { deleted } }",
            json!({ "ids": [user_id(&in_bulk), user_id(&leaving_in_bulk)] }),
        )
        .await;
    assert_eq!(bulk["deleteUsers"]["deleted"].as_array().unwrap().len(), 2);
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT target_repr FROM audit_entries WHERE target_user_ref = ANY($1) ORDER BY 1",
    )
    .bind(vec![kept.id, leaving.id, in_bulk.id, leaving_in_bulk.id])
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        names,
        [
            "bulk-kept".to_owned(),
            format!("deleted-user-{}", leaving.id),
            format!("deleted-user-{}", leaving_in_bulk.id),
            "kept-name".into()
        ]
    );
    let receipts = app
        .count("SELECT count(*) FROM audit_entries WHERE action = 'USER_DELETED' AND details ? 'receipt'")
        .await;
    assert_eq!(receipts, 2);
}

/// What PostgreSQL says references users must be exactly what the export
/// shows and what an erasure has decided about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_and_the_erasure_cover_every_foreign_key_to_users() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let member = app.user("member", false, false).await;
    let mut conn = app.pool().acquire().await.unwrap();
    let catalog: BTreeSet<(String, String)> = memberdesk::store::deletion::foreign_keys(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|key| key.references == "users")
        .map(|key| (key.table, key.column))
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
        .map(|r| (r.edge().table.to_owned(), r.edge().column.to_owned()))
        .collect();
    assert_eq!(
        decided, catalog,
        "a foreign key to users must be in erasure::RELATIONS, with what anonymization does to it"
    );
    let doc = app.export_user_data(&root, &user_id(&member)).ok().await;
    for section in memberdesk::domain::export::SECTIONS {
        assert!(
            doc[section.key].is_array(),
            "the export has no {} section",
            section.key
        );
    }
}
