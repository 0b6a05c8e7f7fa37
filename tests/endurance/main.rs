//! Endurance under real faults: PostgreSQL restarted while the server is
//! busy (`restart`), and memberdesk killed with SIGKILL in the middle of its
//! largest transactions (`crash`). Each test runs its own PostgreSQL cluster
//! (`initdb` into a temporary folder, its own port), because restarting the
//! shared one would break every other test; where `initdb` cannot run, each
//! test says so on one line and passes without checking anything.
//!
//! `cargo test --test endurance` (about two minutes: the tests take turns,
//! each would otherwise starve the others of the machine's cores).

// Shared with benches/soak.rs: each uses only part of it.
#[allow(dead_code)]
mod cluster;
mod crash;
mod invariants;
mod restart;
mod seed;
// Shared with benches/soak.rs: each uses only part of it.
#[allow(dead_code)]
mod server;

use cluster::{Cluster, Durability};
use tokio::sync::{Mutex, MutexGuard};

/// Held by each test for its whole run: one seeding a million votes while
/// another measures how fast the server heals would make both meaningless.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The turn of the calling test.
async fn my_turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// A cluster of the test's own, or `None` after printing why there can be
/// none on this machine (the test then checks nothing).
fn own_cluster(test: &str) -> Option<Cluster> {
    match Cluster::start(Durability::Off) {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            println!("SKIPPED {test}: cannot run a PostgreSQL cluster of its own here: {why}");
            None
        }
    }
}
