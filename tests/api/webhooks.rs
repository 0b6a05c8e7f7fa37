//! Lifecycle webhooks out: a real receiver on 127.0.0.1 gets one signed
//! request per committed change (verified with the `standardwebhooks`
//! crate), none for a refused or rolled-back one, every event after being
//! down, each event once from two workers; only superusers manage
//! endpoints; the address rules refuse what an endpoint must not reach; an
//! erasure leaves no old name in the outbox.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberdesk::config::{Settings, Switch, WebhookSettings};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::helpers::{ANONYMOUS, TestApp, group_id, user_id};

/// Fast pacing for tests; the receivers are on 127.0.0.1 over http.
fn local_settings() -> WebhookSettings {
    WebhookSettings {
        allow_http: Switch::On,
        allow_private: Switch::On,
        poll_interval: Duration::from_millis(50),
        first_retry: Duration::from_millis(200),
        max_retry: Duration::from_millis(400),
        attempt_timeout: Duration::from_secs(5),
    }
}

async fn local_app() -> TestApp {
    TestApp::spawn_with(Settings {
        webhooks: local_settings(),
        ..Settings::default()
    })
    .await
}

/// One request a receiver got.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        write!(f, "{:?} {body}", self.headers.get("webhook-id"))
    }
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
}

/// A minimal HTTP/1.1 endpoint answering 204 to every request and keeping
/// what it got; it can go down and come back on the same port.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let task = Some(tokio::spawn(serve(listener, got.clone())));
        Receiver { addr, got, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Stops listening: connections are refused until [`Receiver::up`].
    fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn up(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener = socket.listen(64).unwrap();
        self.task = Some(tokio::spawn(serve(listener, self.got.clone())));
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `n` requests have arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "expected {n} requests, got {}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

async fn serve(listener: TcpListener, got: Arc<Mutex<Vec<Received>>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let got = got.clone();
        tokio::spawn(async move {
            if let Some(received) = read_request(stream).await {
                got.lock().unwrap().push(received);
            }
        });
    }
}

/// Reads one request (headers, then `content-length` bytes of body),
/// answers 204 and closes.
async fn read_request(mut stream: TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.insert(
            HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    let _ = stream
        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        .await;
    Some(Received { headers, body })
}

const ALL_EVENTS: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deactivated",
    "user.reactivated",
    "user.deleted",
    "user.anonymized",
    "user.erasure_requested",
    "group.deleted",
    "question.deleted",
];

/// A webhook for every event at `url`: (id, secret).
async fn subscribe(app: &TestApp, root: &str, url: &str) -> (String, String) {
    let hook = app.create_webhook(root, url, ALL_EVENTS).ok().await;
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    (text(&hook["id"]), text(&hook["secret"]))
}

fn verify(secret: &str, received: &Received) {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&received.body, &received.headers)
        .unwrap_or_else(|e| panic!("the signature does not verify: {e:?}"));
}

fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (at most 20 s) until the count `sql` reads meets `wanted`.
async fn eventually(app: &TestApp, sql: &'static str, wanted: impl Fn(i64) -> bool) {
    let started = Instant::now();
    loop {
        let n = app.count(sql).await;
        if wanted(n) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{sql}: still {n}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until every delivery is settled (delivered or failed), none pending.
async fn settled(app: &TestApp) {
    let pending = "SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING'";
    eventually(app, pending, |n| n == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_committed_change_arrives_signed_in_order_without_personal_data() {
    let app = local_app().await;
    let (_, root) = app.superuser("root").await;
    let receiver = Receiver::start().await;
    let (hook_id, secret) = subscribe(&app, &root, &receiver.url()).await;
    assert!(secret.starts_with("whsec_"));
    let input = json!({ "username": "dana", "email": "dana@private.example", "password": "a long and unusual passphrase 42",
                        "firstName": "Dana", "lastName": "Scully" });
    let dana = app.create_user(&root, input).ok().await;
    let dana_id = dana["id"].as_str().unwrap().to_owned();
    app.update_user(&root, &dana_id, json!({ "lastName": "Mulder" }))
        .ok()
        .await;
    app.deactivate(&root, &dana_id).ok().await;
    app.reactivate(&root, &dana_id).ok().await;

    let got = receiver.wait_for(4).await;
    assert_eq!(
        types(&got),
        [
            "user.created",
            "user.updated",
            "user.deactivated",
            "user.reactivated"
        ]
    );
    for received in &got {
        verify(&secret, received);
        assert_eq!(received.header("content-type"), "application/json");
        let body = String::from_utf8(received.body.clone()).unwrap();
        for personal in ["private.example", "Dana", "Scully", "Mulder"] {
            assert!(!body.contains(personal), "{personal} in {body}");
        }
        let data = &received.json()["data"];
        assert_eq!(data["user"], json!({ "id": dana_id, "username": "dana" }));
        assert_eq!(data["actor"]["username"], "root");
    }
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "one webhook-id per event: {ids:?}");
    assert_eq!(
        got[1].json()["data"]["changes"]["changed"],
        json!(["lastName"])
    );

    settled(&app).await;
    let deliveries = app.webhook_deliveries(&root, &hook_id).ok().await;
    assert_eq!(deliveries["totalCount"], 4);
    for edge in deliveries["edges"].as_array().unwrap() {
        assert_eq!(edge["node"]["status"], "DELIVERED");
        assert_eq!(edge["node"]["attempts"], 1);
        assert_eq!(edge["node"]["lastStatusCode"], 204);
    }
    // The secret is shown once.
    let listed = app.webhooks(&root).ok().await;
    assert_eq!(listed[0]["secret"], Value::Null);
    assert_eq!(listed[0]["events"], json!(ALL_EVENTS));
    assert_eq!(app.audit_count("WEBHOOK_CREATED").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_attempts").await,
        4,
        "every attempt is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_rolled_back_change_sends_nothing() {
    let app = local_app().await;
    let (_, root) = app.superuser("root").await;
    let receiver = Receiver::start().await;
    subscribe(&app, &root, &receiver.url()).await;
    let member = app.user("member", false, false).await;
    let group = app.create_group(&root, "crew", &[]).ok().await;
    let group = group["id"].as_str().unwrap().to_owned();
    app.add_to_group(&root, &user_id(&member), &group)
        .ok()
        .await;
    // PROTECT refuses while the group has members: nothing committed, nothing queued.
    let delete_group = |policy: &str| {
        app.gql(
            Some(&root),
            "mutation($id: ID!, $p: DeletePolicy) { deleteGroup(id: $id, policy: $p) { deleted } }",
            json!({ "id": group, "p": policy }),
        )
    };
    let before = app.count("SELECT count(*) FROM webhook_deliveries").await;
    let refused = delete_group("PROTECT").await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "DELETE_PROTECTED"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        before
    );
    // Deactivating yourself is refused the same way.
    let root_id = app.id_of(&root, "root").await;
    app.deactivate(&root, &root_id).refused("SELF_ACTION").await;

    // An audited change that rolls back after its entry was written queues
    // nothing either: the outbox row is in the same transaction.
    let mut tx = app.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO audit_entries (action, actor_username, target_repr) VALUES ('GROUP_DELETED', 'system', 'group x')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE event = 'group.deleted'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(queued, 1, "queued with the entry, inside the transaction");
    tx.rollback().await.unwrap();

    let cascade = delete_group("CASCADE").await;
    assert!(cascade.get("errors").is_none(), "{cascade:#}");
    let got = receiver.wait_for(2).await;
    settled(&app).await;
    let got_now = receiver.received();
    assert_eq!(got_now.len(), got.len(), "nothing more arrives");
    assert_eq!(types(&got_now), ["user.created", "group.deleted"]);
    assert_eq!(got_now[1].json()["data"]["group"]["id"], group);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries WHERE event = 'group.deleted'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_while_the_receiver_is_down_all_arrive_in_order() {
    let app = local_app().await;
    let (_, root) = app.superuser("root").await;
    let mut receiver = Receiver::start().await;
    let (_, secret) = subscribe(&app, &root, &receiver.url()).await;
    receiver.down();
    let erin = app.user("erin", false, false).await;
    let erin_id = user_id(&erin);
    app.deactivate(&root, &erin_id).ok().await;
    app.reactivate(&root, &erin_id).ok().await;
    app.deactivate(&root, &erin_id).ok().await;
    // The first event fails (connection refused) and waits for its retry;
    // the others wait behind it.
    let failed = "SELECT count(*) FROM webhook_attempts WHERE error IS NOT NULL";
    eventually(&app, failed, |n| n >= 2).await;
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries WHERE attempts > 0 AND id > (SELECT min(id) FROM webhook_deliveries)")
            .await,
        0,
        "later events wait behind the first"
    );
    receiver.up().await;
    let got = receiver.wait_for(4).await;
    assert_eq!(
        types(&got),
        [
            "user.created",
            "user.deactivated",
            "user.reactivated",
            "user.deactivated"
        ]
    );
    for received in &got {
        verify(&secret, received);
    }
    settled(&app).await;
    assert_eq!(receiver.received().len(), 4, "each once");
    let first: (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM webhook_deliveries ORDER BY id LIMIT 1")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(first.0 >= 3, "retried: {first:?}");
    assert_eq!(first.1, None, "the last attempt succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_send_each_event_once() {
    let app = local_app().await;
    let (_, root) = app.superuser("root").await;
    let receiver = Receiver::start().await;
    // Two endpoints (the receiver twice), so both workers have heads to claim.
    subscribe(&app, &root, &receiver.url()).await;
    subscribe(&app, &root, &format!("{}?second", receiver.url())).await;
    let second = memberdesk::webhooks::worker::spawn(app.pool().clone(), local_settings());
    for n in 0..10 {
        app.user(&format!("user{n}"), false, false).await;
    }
    let got = receiver.wait_for(20).await;
    settled(&app).await;
    second.abort();
    let got_all = receiver.received();
    assert_eq!(
        got_all.len(),
        20,
        "{} requests for 20 deliveries",
        got_all.len()
    );
    let mut per_endpoint: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r.header("webhook-id").to_owned(),
                r.header("webhook-signature").to_owned(),
            )
        })
        .collect();
    per_endpoint.sort();
    per_endpoint.dedup();
    assert_eq!(per_endpoint.len(), 20);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_attempts").await,
        20,
        "one attempt per delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_superusers_manage_webhooks_and_refusals_change_nothing() {
    let app = local_app().await;
    let (_, root) = app.superuser("root").await;
    let receiver = Receiver::start().await;
    let (hook_id, _) = subscribe(&app, &root, &receiver.url()).await;
    let every_permission: Vec<String> =
        sqlx::query_scalar("SELECT app_label || '.' || codename FROM permissions")
            .fetch_all(app.pool())
            .await
            .unwrap();
    let every_permission: Vec<&str> = every_permission.iter().map(String::as_str).collect();
    let (_, staff) = app.staff_with("staff", &every_permission).await;
    settled(&app).await;
    for caller in [Some(staff.as_str()), ANONYMOUS] {
        let code = if caller.is_some() {
            "FORBIDDEN"
        } else {
            "UNAUTHENTICATED"
        };
        app.create_webhook(caller, &receiver.url(), &["user.created"])
            .refused(code)
            .await;
        app.delete_webhook(caller, &hook_id).refused(code).await;
        app.webhooks(caller).refused(code).await;
        app.webhook_deliveries(caller, &hook_id).refused(code).await;
    }
    let delivery: i64 = sqlx::query_scalar("SELECT min(id) FROM webhook_deliveries")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let delivery_id = memberdesk::ids::encode(memberdesk::ids::Kind::WebhookDelivery, delivery);
    app.redeliver_webhook(&staff, &delivery_id)
        .refused("FORBIDDEN")
        .await;
    // Wrong kinds of id name nothing.
    app.delete_webhook(&root, &group_id(1))
        .refused("NOT_FOUND")
        .await;

    // A superuser redelivers: the same webhook-id again, then deletes the endpoint.
    let again = app.redeliver_webhook(&root, &delivery_id).ok().await;
    // The endpoint had one event (the staff account's creation), now twice.
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"));
    assert_eq!(got[1].body, got[0].body);
    assert_eq!(again["status"], "PENDING");
    settled(&app).await;
    app.delete_webhook(&root, &hook_id).ok().await;
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM webhooks").await, 0);
    assert_eq!(app.audit_count("WEBHOOK_DELETED").await, 1);
    assert_eq!(app.audit_count("WEBHOOK_REDELIVERED").await, 1);
    app.delete_webhook(&root, &hook_id)
        .refused("NOT_FOUND")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_outside_the_address_rules_are_refused() {
    // The production rules: https only, public addresses only.
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    for (url, why) in [
        ("http://hooks.example.org/in", "https"),
        ("ftp://hooks.example.org/in", "https"),
        ("https://127.0.0.1/in", "non-public"),
        ("https://[::1]/in", "non-public"),
        ("https://10.0.0.8/in", "non-public"),
        ("https://169.254.169.254/latest/meta-data", "non-public"),
        ("https://localhost:8443/in", "non-public"),
        ("https://user:pw@hooks.example.org/in", "credentials"),
        ("not a url", "not a URL"),
    ] {
        let refusal = app
            .create_webhook(&root, url, &["user.created"])
            .refused("INVALID_INPUT")
            .await;
        assert_eq!(refusal.field, "url", "{url}");
        assert!(refusal.message.contains(why), "{url}: {}", refusal.message);
    }
    for events in [&["user.exploded"][..], &[]] {
        let refusal = app
            .create_webhook(&root, "https://hooks.example.org/in", events)
            .refused("INVALID_INPUT")
            .await;
        assert_eq!(refusal.field, "events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_again_at_delivery() {
    // http allowed, private addresses not: an endpoint stored when the rules
    // were looser (or a name now resolving inward) is refused at each attempt.
    let app = TestApp::spawn_with(Settings {
        webhooks: WebhookSettings {
            allow_private: Switch::Off,
            ..local_settings()
        },
        ..Settings::default()
    })
    .await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url(),
        format!("http://localhost:{}/hooks", receiver.addr.port()),
    ] {
        sqlx::query("INSERT INTO webhooks (url, events, secret) VALUES ($1, '{user.created}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')")
            .bind(url)
            .execute(app.pool())
            .await
            .unwrap();
    }
    app.user("frank", false, false).await;
    let tried = "SELECT count(DISTINCT d.webhook_id) FROM webhook_attempts a \
                 JOIN webhook_deliveries d ON d.id = a.delivery_id";
    eventually(&app, tried, |n| n >= 2).await;
    let errors: Vec<String> = sqlx::query_scalar("SELECT error FROM webhook_attempts ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap();
    for error in &errors {
        assert!(error.contains("non-public"), "{error}");
    }
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_leaves_no_old_name_in_the_outbox() {
    let app = local_app().await;
    let (_, root) = app.superuser("root").await;
    let mut receiver = Receiver::start().await;
    subscribe(&app, &root, &receiver.url()).await;
    receiver.down();
    let carol = app.user("carolynne", false, false).await;
    app.deactivate(&root, &user_id(&carol)).ok().await;
    let naming =
        "SELECT count(*) FROM webhook_deliveries d JOIN audit_entries a ON a.id = d.audit_entry_id
                   WHERE webhook_payload(a, d.event)::text LIKE '%carolynne%'";
    assert_eq!(app.count(naming).await, 2);
    app.anonymize(&root, &user_id(&carol)).ok().await;
    assert_eq!(
        app.count(naming).await,
        0,
        "queued payloads keep the old name"
    );
    receiver.up().await;
    let got = receiver.wait_for(3).await;
    for received in &got {
        let body = String::from_utf8(received.body.clone()).unwrap();
        assert!(!body.contains("carolynne"), "{body}");
    }
    assert_eq!(types(&got)[2], "user.anonymized");
    assert_eq!(
        got[2].json()["data"]["user"]["username"],
        format!("deleted-user-{}", carol.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_ids_are_the_api_ids() {
    let app = TestApp::spawn().await;
    for (kind, tag) in [
        (memberdesk::ids::Kind::User, "User"),
        (memberdesk::ids::Kind::Group, "Group"),
        (memberdesk::ids::Kind::Question, "Question"),
        (memberdesk::ids::Kind::AuditEntry, "AuditEntry"),
    ] {
        for id in [1_i64, 42, 9_007_199_254_740_993] {
            let in_sql: String = sqlx::query_scalar("SELECT api_id($1, $2)")
                .bind(tag)
                .bind(id)
                .fetch_one(app.pool())
                .await
                .unwrap();
            assert_eq!(in_sql, memberdesk::ids::encode(kind, id));
        }
    }
}
