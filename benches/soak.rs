//! Soak: two `memberdesk serve` instances on one database under a steady,
//! mixed load for minutes, to see what only time shows: memory that grows,
//! latency that creeps, connections that leak, errors that appear after a
//! while.
//!
//! `cargo bench --bench soak -- [--minutes 5] [--rate 40]`; the CI smoke is
//! `cargo test --bench soak -- --minutes 0.2` (a debug build, flatness not
//! judged).
//!
//! The load is open-loop: an operation starts every `1 / rate` seconds
//! whatever the previous ones are doing, alternating between the instances:
//! half reads (a page of users with their groups, the questions with their
//! tallies), a fifth votes (each voter on question after question), a tenth
//! logins followed by a logout, a fifth deactivations and reactivations by
//! an admin. Every minute (a quarter of the run when it is shorter than
//! three) it prints throughput, p50 and p99, errors by code, each server's
//! RSS and the PostgreSQL connections to the database; p99 is given per
//! kind of operation. It fails (exit 1) on any error (a code outside the
//! contract, no answer, or even a contract code: nothing here should be
//! refused), and, from three minutes on, when the last minute's p99 of a
//! kind or an instance's RSS is over 1.2 times the second's, or the
//! connections reach a new high in the last minute (a burst raises a
//! pool's count for a while; a leak keeps raising it). See benches/README.md, "Soak".

#[path = "../tests/endurance/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[path = "../tests/endurance/seed.rs"]
#[allow(dead_code)]
mod seed;
#[path = "../tests/endurance/server.rs"]
#[allow(dead_code)]
mod server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;

use cluster::{Cluster, Durability};

use seed::{PASSWORD, user_id};
use server::{Api, Outcome, ServerProcess};

const VOTERS: i64 = 50;
const TARGETS: i64 = 100;
const REGULARS: i64 = 10;
/// Each instance's pool (`MEMBERDESK_DB_POOL_SIZE`'s default).
const POOL_SIZE: i64 = 10;
/// The kinds of operation, as rows report them.
const KINDS: [&str; 4] = ["read", "vote", "login", "lifecycle"];
const PAGE: &str = "{ users(first: 50) { edges { node { username groups { name } } } } }";
const TALLIES: &str = "{ questions { id choices { voteCount } } }";

struct Args {
    minutes: f64,
    rate: f64,
}

fn args() -> Args {
    let (mut minutes, mut rate) = (5.0, 40.0);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || -> f64 {
            let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            value
                .parse()
                .unwrap_or_else(|_| panic!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--minutes" => minutes = number(),
            "--rate" => rate = number(),
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other} (use --minutes, --rate)"),
        }
    }
    assert!(
        minutes > 0.0 && rate > 0.0,
        "--minutes and --rate must be positive"
    );
    Args { minutes, rate }
}

/// The people and questions of the load, and their sessions.
struct World {
    admin: String,
    /// Each voter's token and the index of the next question it votes on.
    voters: Vec<(String, AtomicUsize)>,
    targets: Vec<i64>,
    /// A per-target lock: one change of a target at a time, so each is a
    /// real change whatever the rate.
    target_locks: Vec<tokio::sync::Mutex<bool>>,
    choices: Vec<String>,
}

async fn seed_world(pool: &PgPool, api: &Api, args: &Args) -> World {
    let hash = seed::password_hash().await;
    seed::superuser(pool, "soak-admin", &hash).await;
    let voter_ids = seed::members(pool, "voter", VOTERS, &hash).await;
    let targets = seed::members(pool, "target", TARGETS, &hash).await;
    seed::memberships_and_sessions(pool, &targets).await;
    seed::members(pool, "regular", REGULARS, &hash).await;
    // A fifth of the operations are votes, each voter's on a new question.
    let votes = args.minutes * 60.0 * args.rate / 5.0;
    let questions = (votes / VOTERS as f64).ceil() as i64 + 10;
    let choices = seed::questions(pool, questions).await;
    let admin = api
        .login("soak-admin", PASSWORD)
        .await
        .expect("admin logs in");
    let mut voters = Vec::new();
    for n in 1..=voter_ids.len() {
        let token = api.login(&format!("voter{n}"), PASSWORD).await;
        voters.push((token.expect("a voter logs in"), AtomicUsize::new(0)));
    }
    let target_locks = targets
        .iter()
        .map(|_| tokio::sync::Mutex::new(true))
        .collect();
    World {
        admin,
        voters,
        targets,
        target_locks,
        choices,
    }
}

/// What one reporting window saw.
#[derive(Default)]
struct Window {
    /// Latencies by operation kind, in [`KINDS`] order.
    latencies_ms: [Vec<f64>; 4],
    by_outcome: BTreeMap<String, usize>,
}

/// One printed line: a window's figures.
struct Row {
    ops_per_s: f64,
    p50_ms: f64,
    /// By operation kind, in [`KINDS`] order: a login (one argon2 hash) is
    /// slower than any other request, so a p99 over the mix would be the
    /// logins' alone.
    p99_ms: [f64; 4],
    errors: BTreeMap<String, usize>,
    rss_mib: [f64; 2],
    connections: i64,
}

struct Soak {
    apis: [Api; 2],
    world: World,
    window: Mutex<Window>,
    /// Every outcome that breaks the pass rules, with its operation.
    breaches: Mutex<BTreeMap<String, usize>>,
}

impl Soak {
    /// Operation `k` of the load, on instance `k % 2`.
    async fn operation(&self, k: usize) {
        let api = &self.apis[k % 2];
        let started = Instant::now();
        let (kind, outcome) = match k % 10 {
            0..=4 => (0, self.read(api, k).await),
            5 | 6 => (1, self.vote(api, k).await),
            7 => (2, self.login(api, k).await),
            _ => (3, self.lifecycle(api, k).await),
        };
        let name = KINDS[kind];
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        if !matches!(outcome, Outcome::Done(_)) {
            let what = format!("{name}: {}", outcome.breach().unwrap_or(outcome.label()));
            *self.breaches.lock().unwrap().entry(what).or_default() += 1;
        }
        let mut window = self.window.lock().unwrap();
        window.latencies_ms[kind].push(elapsed);
        *window.by_outcome.entry(outcome.label()).or_default() += 1;
    }

    async fn read(&self, api: &Api, k: usize) -> Outcome {
        // Alternating by tens, so that both instances serve both reads.
        let query = match (k / 10) % 2 {
            0 => PAGE,
            _ => TALLIES,
        };
        api.send(Some(&self.world.admin), query, json!({})).await
    }

    async fn vote(&self, api: &Api, k: usize) -> Outcome {
        let (token, next) = &self.world.voters[(k / 10) % self.world.voters.len()];
        let question = next.fetch_add(1, Ordering::Relaxed);
        let Some(choice) = self.world.choices.get(question) else {
            return Outcome::Refused("the voter ran out of questions".into());
        };
        let cast = "mutation($c: ID!) { castVote(choiceId: $c) { id } }";
        api.send(Some(token), cast, json!({ "c": choice })).await
    }

    async fn login(&self, api: &Api, k: usize) -> Outcome {
        let regular = format!("regular{}", (k / 10) % REGULARS as usize + 1);
        match api.login(&regular, PASSWORD).await {
            Ok(token) => {
                api.send(Some(&token), "mutation { logout }", json!({}))
                    .await
            }
            Err(outcome) => outcome,
        }
    }

    async fn lifecycle(&self, api: &Api, k: usize) -> Outcome {
        let i = (k / 10 * 2 + k % 2) % self.world.targets.len();
        let mut active = self.world.target_locks[i].lock().await;
        let change = match *active {
            true => "mutation($id: ID!) { deactivateUser(id: $id) { user { id } } }",
            false => "mutation($id: ID!) { reactivateUser(id: $id) { user { id } } }",
        };
        let vars = json!({ "id": user_id(self.world.targets[i]) });
        let outcome = api.send(Some(&self.world.admin), change, vars).await;
        if matches!(outcome, Outcome::Done(_)) {
            *active = !*active;
        }
        outcome
    }

    /// Closes the current window into a row.
    async fn row(&self, seconds: f64, servers: &[ServerProcess; 2], pool: &PgPool) -> Row {
        let window = std::mem::take(&mut *self.window.lock().unwrap());
        let mut by_kind = window.latencies_ms;
        by_kind.iter_mut().for_each(|l| l.sort_by(f64::total_cmp));
        let mut all: Vec<f64> = by_kind.concat();
        all.sort_by(f64::total_cmp);
        let rss = |s: &ServerProcess| s.rss_kib().unwrap_or(0) as f64 / 1024.0;
        let mut errors = window.by_outcome;
        errors.remove("ok");
        Row {
            ops_per_s: all.len() as f64 / seconds,
            p50_ms: percentile(&all, 0.5),
            p99_ms: by_kind.each_ref().map(|l| percentile(l, 0.99)),
            errors,
            rss_mib: [rss(&servers[0]), rss(&servers[1])],
            connections: server_connections(pool).await,
        }
    }
}

/// The `q` quantile of `sorted` (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) as f64 * q).round() as usize],
    }
}

/// The servers' connections to the database (not this process's own).
async fn server_connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend'
            AND application_name <> $1",
    )
    .bind(seed::TEST_APPLICATION)
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}

fn print_row(minute: f64, row: &Row) {
    println!(
        "| {minute:>6.1} | {:>5.1} | {:>6.1} | {:>8.1} | {:>8.1} | {:>9.1} | {:>13.1} | {:>9.1} | {:>9.1} | {:>11} | {:?}",
        row.ops_per_s,
        row.p50_ms,
        row.p99_ms[0],
        row.p99_ms[1],
        row.p99_ms[2],
        row.p99_ms[3],
        row.rss_mib[0],
        row.rss_mib[1],
        row.connections,
        row.errors
    );
}

/// The pass rules over the rows; each failure in words.
fn judge(rows: &[Row], judged: bool, breaches: &BTreeMap<String, usize>) -> Vec<String> {
    let mut failures: Vec<String> = breaches
        .iter()
        .map(|(what, n)| format!("{n} × {what}"))
        .collect();
    let too_many = rows
        .iter()
        .filter(|r| r.connections > 2 * POOL_SIZE)
        .count();
    if too_many > 0 {
        failures.push(format!(
            "more than {} connections in {too_many} windows",
            2 * POOL_SIZE
        ));
    }
    if !judged {
        return failures;
    }
    let (second, last) = (&rows[1], &rows[rows.len() - 1]);
    let mut grew = |what: &str, from: f64, to: f64| {
        if to > from * 1.2 {
            failures.push(format!("{what} grew from {from:.1} to {to:.1} (over 20 %)"));
        }
    };
    for (kind, name) in KINDS.iter().enumerate() {
        let what = format!("p99 of {name} (ms)");
        grew(&what, second.p99_ms[kind], last.p99_ms[kind]);
    }
    grew(
        "RSS of instance A (MiB)",
        second.rss_mib[0],
        last.rss_mib[0],
    );
    grew(
        "RSS of instance B (MiB)",
        second.rss_mib[1],
        last.rss_mib[1],
    );
    // A pool opens connections on demand and keeps them a while, so a burst
    // raises the count for good; a leak keeps raising it to the end.
    let earlier_high = rows[..rows.len() - 1].iter().map(|r| r.connections).max();
    if last.connections > earlier_high.unwrap_or(0) {
        failures.push(format!(
            "connections still growing at the end: {} after at most {} before",
            last.connections,
            earlier_high.unwrap_or(0)
        ));
    }
    failures
}

/// Runs the load for `total`, a row every `window`; the rows.
async fn run_load(
    soak: Arc<Soak>,
    servers: &[ServerProcess; 2],
    pool: &PgPool,
    rate: f64,
    (total, window): (Duration, Duration),
) -> Vec<Row> {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let (mut rows, mut in_flight, mut k) = (Vec::new(), Vec::new(), 0);
    let mut window_began = started;
    let close_window = async |window_began: Instant, rows: &mut Vec<Row>| {
        let row = soak
            .row(window_began.elapsed().as_secs_f64(), servers, pool)
            .await;
        print_row(started.elapsed().as_secs_f64() / 60.0, &row);
        rows.push(row);
    };
    while started.elapsed() < total {
        ticks.tick().await;
        let one = soak.clone();
        in_flight.push(tokio::spawn(async move { one.operation(k).await }));
        in_flight.retain(|task| !task.is_finished());
        k += 1;
        if window_began.elapsed() >= window {
            close_window(window_began, &mut rows).await;
            window_began = Instant::now();
        }
    }
    for task in in_flight {
        task.await.unwrap();
    }
    // The last window, unless what is left of it is too short to mean anything.
    if window_began.elapsed() >= window / 2 {
        close_window(window_began, &mut rows).await;
    }
    rows
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    // A cluster of its own: the connections and the load are only the soak's.
    let cluster = match Cluster::start(Durability::Defaults) {
        Ok(cluster) => cluster,
        Err(why) => {
            println!("SKIPPED soak: cannot run a PostgreSQL cluster of its own here: {why}");
            return;
        }
    };
    let url = cluster.url("memberdesk");
    let env = [
        ("MEMBERDESK_LOGIN_LIMIT_PER_ADDRESS", "1000000"),
        ("MEMBERDESK_LOG", "error"),
    ];
    let servers = [
        ServerProcess::start(&url, &env).await,
        ServerProcess::start(&url, &env).await,
    ];
    let pool = seed::test_pool(&url).await;
    let apis = [0, 1].map(|i| Api::new(servers[i].graphql()));
    let world = seed_world(&pool, &apis[0], &args).await;
    let soak = Arc::new(Soak {
        apis,
        world,
        window: Mutex::default(),
        breaches: Mutex::default(),
    });

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    // Flatness needs minutes to mean anything; a short run is a smoke run.
    let judged = args.minutes >= 3.0;
    let window = match judged {
        true => Duration::from_secs(60),
        false => total / 4,
    };
    println!(
        "soak: {} min at {} ops/s over two instances; a row every {:.0} s",
        args.minutes,
        args.rate,
        window.as_secs_f64()
    );
    println!(
        "| minute | ops/s | p50 ms | p99 read | p99 vote | p99 login | p99 lifecycle | RSS A MiB | RSS B MiB | connections | errors"
    );
    let rows = run_load(soak.clone(), &servers, &pool, args.rate, (total, window)).await;
    let breaches = soak.breaches.lock().unwrap().clone();
    let failures = judge(&rows, judged && rows.len() >= 3, &breaches);
    for server in servers {
        server.stop();
    }
    pool.close().await;
    drop(cluster);
    if failures.is_empty() {
        let smoke = if judged {
            ""
        } else {
            " (smoke: flatness not judged)"
        };
        println!("soak passed{smoke}");
    } else {
        println!("soak FAILED:\n  {}", failures.join("\n  "));
        std::process::exit(1);
    }
}
