//! PostgreSQL restarted (`pg_ctl restart -m fast`) while readers, voters,
//! a member logging in and admins deactivating and reactivating members
//! keep the server busy, and one deactivation waits on a row lock across
//! the restart (so a request is always cut in flight). During the gap every answer is `INTERNAL` and
//! `/readyz` is 503, never anything else; the same server process heals by
//! itself; afterwards the invariants hold, every acknowledged change is
//! there with its audit entry, and nothing is half done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberdesk::ids::{Kind, encode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::invariants::{self, entries_about};
use crate::seed::{self, PASSWORD, user_id};
use crate::server::{Api, Outcome, ServerProcess};
use crate::{my_turn, own_cluster};

const VOTERS: i64 = 8;
const TARGETS: i64 = 6;
const QUESTIONS: i64 = 300;
/// Load before the restart, and after the server is ready again.
const LOAD_BEFORE: Duration = Duration::from_secs(3);
const LOAD_AFTER: Duration = Duration::from_secs(5);
/// How long after `/readyz` first says 200 again a request may still meet
/// a connection the restart killed.
const SETTLING: Duration = Duration::from_secs(2);
const PAGE: &str = "{ users(first: 20) { edges { node { username groups { name } } } } }";
const TALLIES: &str = "{ questions { choices { voteCount } } }";

/// One answer, when it came, from which kind of client.
struct Answer {
    at: Instant,
    client: &'static str,
    outcome: Outcome,
}

/// What the clients saw and what they were told was done.
#[derive(Default)]
struct Journal {
    answers: Vec<Answer>,
    /// (voter, API id of the choice) of each vote acknowledged.
    votes: Vec<(i64, String)>,
    /// Changes acknowledged per lifecycle target.
    changes: BTreeMap<i64, i64>,
    /// Changes per target whose outcome is unknown (answered `INTERNAL`).
    uncertain: BTreeMap<i64, i64>,
    logins: i64,
}

#[derive(Clone)]
struct Load {
    api: Api,
    base: String,
    journal: Arc<Mutex<Journal>>,
    stop: Arc<AtomicBool>,
}

impl Load {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    fn note(&self, client: &'static str, outcome: &Outcome) {
        let answer = Answer {
            at: Instant::now(),
            client,
            outcome: outcome.clone(),
        };
        self.journal.lock().unwrap().answers.push(answer);
    }

    async fn send(&self, client: &'static str, token: &str, query: &str, vars: Value) -> Outcome {
        let outcome = self.api.send(Some(token), query, vars).await;
        self.note(client, &outcome);
        outcome
    }

    async fn reader(self, token: String) {
        while self.running() {
            for query in [PAGE, TALLIES] {
                self.send("reader", &token, query, json!({})).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Votes on question after question, never twice on one: an answer
    /// lost in the gap is not retried, so a refusal can only be the gap's.
    async fn voter(self, voter: i64, token: String, choices: Arc<Vec<String>>) {
        let cast = "mutation($c: ID!) { castVote(choiceId: $c) { id } }";
        for choice in choices.iter() {
            if !self.running() {
                break;
            }
            let outcome = self
                .send("voter", &token, cast, json!({ "c": choice }))
                .await;
            if matches!(outcome, Outcome::Done(_)) {
                let vote = (voter, choice.clone());
                self.journal.lock().unwrap().votes.push(vote);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn login(self, username: String) {
        while self.running() {
            let outcome = match self.api.login(&username, PASSWORD).await {
                Ok(_) => Outcome::Done(Value::Null),
                Err(outcome) => outcome,
            };
            self.note("login", &outcome);
            if matches!(outcome, Outcome::Done(_)) {
                self.journal.lock().unwrap().logins += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deactivates and reactivates its own targets in turn. After an
    /// `INTERNAL` it reads the target's state again before going on, so
    /// every acknowledged call is a real change (a repeated one would
    /// change nothing and be neither audited nor counted).
    async fn admin(self, token: String, targets: Vec<i64>) {
        let deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { user { id } } }";
        let reactivate = "mutation($id: ID!) { reactivateUser(id: $id) { user { id } } }";
        let mut active: BTreeMap<i64, bool> = targets.iter().map(|&t| (t, true)).collect();
        while self.running() {
            for &target in &targets {
                let change = if active[&target] {
                    deactivate
                } else {
                    reactivate
                };
                let vars = json!({ "id": user_id(target) });
                let done = matches!(
                    self.send("admin", &token, change, vars).await,
                    Outcome::Done(_)
                );
                self.count_change(target, done);
                let now_active = match done {
                    true => !active[&target],
                    false => self.is_active(&token, target).await,
                };
                active.insert(target, now_active);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One change of `target` acknowledged (`done`), or of unknown outcome.
    fn count_change(&self, target: i64, done: bool) {
        let mut journal = self.journal.lock().unwrap();
        let counts = match done {
            true => &mut journal.changes,
            false => &mut journal.uncertain,
        };
        *counts.entry(target).or_default() += 1;
    }

    /// `target`'s state as the server reads it, asked until it answers.
    async fn is_active(&self, token: &str, target: i64) -> bool {
        let query = "query($id: ID!) { user(id: $id) { isActive } }";
        loop {
            let vars = json!({ "id": user_id(target) });
            match self.send("admin", token, query, vars).await {
                Outcome::Done(data) => return data["user"]["isActive"].as_bool().unwrap(),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `/readyz`, ten times a second: 200 or 503, and nothing else.
    async fn probe(self) {
        let http = reqwest::Client::new();
        while self.running() {
            let outcome = match http.get(format!("{}/readyz", self.base)).send().await {
                Ok(r) if r.status() == 200 => Outcome::Done(Value::Null),
                Ok(r) => Outcome::Refused(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Outcome::Unanswered(e.to_string()),
            };
            self.note("readyz", &outcome);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The seeded world: a superuser, voters, lifecycle targets, a member who
/// logs in, questions; the API ids of the questions' first choices.
struct World {
    root: String,
    voters: Vec<(i64, String)>,
    targets: Vec<i64>,
    /// The member whose deactivation is held in flight across the restart.
    held: i64,
    choices: Arc<Vec<String>>,
}

async fn seed_world(pool: &PgPool, api: &Api) -> World {
    let hash = seed::password_hash().await;
    seed::superuser(pool, "root", &hash).await;
    let voter_ids = seed::members(pool, "voter", VOTERS, &hash).await;
    let targets = seed::members(pool, "target", TARGETS, &hash).await;
    seed::memberships_and_sessions(pool, &targets).await;
    seed::members(pool, "regular", 1, &hash).await;
    let held = seed::members(pool, "held", 1, &hash).await[0];
    let choices = Arc::new(seed::questions(pool, QUESTIONS).await);
    let root = api.login("root", PASSWORD).await.expect("root logs in");
    let mut voters = Vec::new();
    for (n, id) in voter_ids.into_iter().enumerate() {
        let token = api.login(&format!("voter{}", n + 1), PASSWORD).await;
        voters.push((id, token.expect("a voter logs in")));
    }
    World {
        root,
        voters,
        targets,
        held,
        choices,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restarted_mid_load_costs_only_internal_errors_and_heals_by_itself() {
    let _turn = my_turn().await;
    let Some(cluster) = own_cluster("postgresql_restarted_mid_load") else {
        return;
    };
    let cluster = Arc::new(cluster);
    let url = cluster.url("memberdesk");
    let env = [("MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS", "1000000")];
    let server = ServerProcess::start(&url, &env).await;
    let pool = seed::test_pool(&url).await;
    let api = Api::new(server.graphql());
    let world = seed_world(&pool, &api).await;

    let load = Load {
        api,
        base: server.base.clone(),
        journal: Arc::default(),
        stop: Arc::default(),
    };
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(tokio::spawn(load.clone().reader(world.root.clone())));
    }
    for (voter, token) in &world.voters {
        let work = load
            .clone()
            .voter(*voter, token.clone(), world.choices.clone());
        clients.push(tokio::spawn(work));
    }
    clients.push(tokio::spawn(load.clone().login("regular1".into())));
    for half in world.targets.chunks(TARGETS as usize / 2) {
        let work = load.clone().admin(world.root.clone(), half.to_vec());
        clients.push(tokio::spawn(work));
    }
    clients.push(tokio::spawn(load.clone().probe()));

    tokio::time::sleep(LOAD_BEFORE).await;
    let lock = hold_a_deactivation(&pool, &load, &world).await;
    let restart_began = Instant::now();
    let restarting = cluster.clone();
    tokio::task::spawn_blocking(move || restarting.restart_fast())
        .await
        .unwrap();
    let ready_again = wait_until_ready(&server.base, Duration::from_secs(60)).await;
    drop(lock);
    println!(
        "PostgreSQL restarted in {:.1} s; /readyz 200 again {:.1} s after the restart began",
        (Instant::now() - restart_began).as_secs_f64(),
        (ready_again - restart_began).as_secs_f64()
    );
    tokio::time::sleep(LOAD_AFTER).await;
    load.stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let journal = std::mem::take(&mut *load.journal.lock().unwrap());
    assert_gap_answers(&journal, restart_began, ready_again + SETTLING);
    assert_acknowledged_work_is_there(&pool, &journal).await;
    invariants::assert_hold(&pool).await;
    assert_tallies_equal_votes(&pool, &Api::new(server.graphql()), &world.root).await;
    server.stop();
}

/// Sends a deactivation of `world.held` that waits on the row lock the
/// returned transaction holds, and returns once PostgreSQL shows it
/// waiting: the restart then always cuts a request in flight. Without it a
/// fast machine can restart between two requests and every client passes
/// (the server heals that quickly), which proves nothing.
async fn hold_a_deactivation(
    pool: &PgPool,
    load: &Load,
    world: &World,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = pool.begin().await.unwrap();
    let holder: i32 = sqlx::query_scalar(
        "SELECT pg_backend_pid() FROM (SELECT 1 FROM users WHERE id = $1 FOR UPDATE) AS locked",
    )
    .bind(world.held)
    .fetch_one(&mut *lock)
    .await
    .unwrap();
    let (held, token) = (world.held, world.root.clone());
    let load = load.clone();
    tokio::spawn(async move {
        let deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { user { id } } }";
        let vars = json!({ "id": user_id(held) });
        let done = matches!(
            load.send("admin", &token, deactivate, vars).await,
            Outcome::Done(_)
        );
        load.count_change(held, done);
    });
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))";
    for _ in 0..100 {
        let count: i64 = sqlx::query_scalar(waiting)
            .bind(holder)
            .fetch_one(pool)
            .await
            .unwrap();
        if count > 0 {
            return lock;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the held deactivation never waited on its lock");
}

/// When `/readyz` at `base` first answers 200 (polled every 50 ms).
async fn wait_until_ready(base: &str, limit: Duration) -> Instant {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < limit,
            "the server did not heal by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every answer is a success, or `INTERNAL` (`/readyz`: 503) inside the gap;
/// after it every kind of client succeeds again.
fn assert_gap_answers(journal: &Journal, gap_began: Instant, gap_ended: Instant) {
    let mut seen: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for answer in &journal.answers {
        *seen
            .entry((answer.client, answer.outcome.label()))
            .or_default() += 1;
        let expected_refusal = match answer.client {
            "readyz" => "HTTP 503",
            _ => "INTERNAL",
        };
        match &answer.outcome {
            Outcome::Done(_) => {}
            Outcome::Refused(code) if code == expected_refusal => assert!(
                answer.at >= gap_began && answer.at <= gap_ended,
                "{} answered {code} {:.1} s after the restart began, outside the gap",
                answer.client,
                (answer.at - gap_began).as_secs_f64()
            ),
            other => panic!("{} got {other:?}", answer.client),
        }
    }
    println!("answers by client and outcome: {seen:?}");
    let felt = journal
        .answers
        .iter()
        .any(|a| matches!(a.outcome, Outcome::Refused(_)));
    assert!(felt, "no client felt the restart: the test proved nothing");
    for client in ["reader", "voter", "login", "admin", "readyz"] {
        let healed = journal.answers.iter().any(|a| {
            a.client == client && a.at > gap_ended && matches!(a.outcome, Outcome::Done(_))
        });
        assert!(healed, "no {client} succeeded after the gap");
    }
}

/// Every acknowledged vote, login and lifecycle change is in the database
/// with its audit entry; an unacknowledged one is there entirely or not at
/// all.
async fn assert_acknowledged_work_is_there(pool: &PgPool, journal: &Journal) {
    let votes: Vec<(i64, i64)> =
        sqlx::query_as("SELECT v.user_id, c.id FROM votes v JOIN choices c ON c.id = v.choice_id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(
        votes.len() >= journal.votes.len(),
        "{} votes acknowledged, {} kept",
        journal.votes.len(),
        votes.len()
    );
    let kept: BTreeSet<(i64, String)> = votes
        .into_iter()
        .map(|(voter, choice)| (voter, encode(Kind::Choice, choice)))
        .collect();
    for vote in &journal.votes {
        assert!(
            kept.contains(vote),
            "the acknowledged vote {vote:?} is missing"
        );
    }
    for (&target, &changes) in &journal.changes {
        let name: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
            .bind(target)
            .fetch_one(pool)
            .await
            .unwrap();
        let audited = entries_about(pool, "USER_DEACTIVATED", target, &name).await
            + entries_about(pool, "USER_REACTIVATED", target, &name).await;
        let uncertain = journal.uncertain.get(&target).copied().unwrap_or(0);
        assert!(
            (changes..=changes + uncertain).contains(&audited),
            "{name}: {changes} changes acknowledged, {uncertain} uncertain, {audited} audited"
        );
    }
    // A session and its LOGIN entry are written in one transaction.
    let (sessions, logins): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'regular1'),
                (SELECT count(*) FROM audit_entries WHERE action = 'LOGIN' AND target_repr = 'regular1')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        sessions, logins,
        "a session without its LOGIN entry, or the reverse"
    );
    assert!(
        sessions >= journal.logins,
        "an acknowledged login left no session"
    );
}

/// The tallies the API shows add up to the votes in the database.
async fn assert_tallies_equal_votes(pool: &PgPool, api: &Api, root: &str) {
    let data = api.ok(Some(root), TALLIES, json!({})).await;
    let shown: i64 = data["questions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| q["choices"].as_array().unwrap().iter())
        .map(|c| c["voteCount"].as_i64().unwrap())
        .sum();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM votes")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(shown, stored, "tallies equal the votes");
}
