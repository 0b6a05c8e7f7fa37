//! memberdesk killed with SIGKILL in the middle of its largest transactions:
//! a `deleteUser` CASCADE of a user with a million votes, a
//! `deactivateUsers` of ten thousand users. After a restart each is entirely
//! done or entirely not, the audit log says the same as the data, and the
//! operation, asked again, completes once.
//!
//! "In the middle" is made certain rather than hoped for: the test holds a
//! row lock on a session of the target, which the operation needs near its
//! end (votes go first in the deletion registry; sessions are revoked after
//! the flags and records of a deactivation). The server is killed while its
//! transaction waits on that lock, with everything before it written and
//! uncommitted; then the lock is released.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

use crate::cluster::Cluster;
use crate::invariants::{self, entries_about, server_backends};
use crate::seed::{self, PASSWORD, TEST_APPLICATION, user_id};
use crate::server::{Api, Outcome, ServerProcess};
use crate::{my_turn, own_cluster};

const VOTES: i64 = 1_000_000;
const COHORT: i64 = 10_000;
const DELETE_CASCADE: &str =
    "mutation($id: ID!) { deleteUser(id: $id, policy: CASCADE) { deleted } }";
const DEACTIVATE_DORMANT: &str = "mutation { deactivateUsers(filter: { isActive: true, lastLoginBefore: \"2000-01-01T00:00:00Z\" }) { skipped { id code } } }";

/// Locks the live sessions of `users` in a transaction of the test's own,
/// until it is rolled back.
async fn hold_sessions_of(pool: &PgPool, users: &[i64]) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sessions WHERE user_id = ANY($1) FOR UPDATE")
        .bind(users)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits (at most five minutes) until one of the server's connections waits
/// on a lock, then kills the server with SIGKILL.
async fn kill_when_blocked(server: ServerProcess, pool: &PgPool) {
    let started = Instant::now();
    loop {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name <> $1 AND wait_event_type = 'Lock'",
        )
        .bind(TEST_APPLICATION)
        .fetch_one(pool)
        .await
        .unwrap();
        if blocked > 0 {
            server.kill_hard();
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the operation never reached the held lock: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until PostgreSQL has ended every connection of the killed server
/// (and so rolled back what it had not committed).
async fn wait_for_backends_to_end(pool: &PgPool) {
    let started = Instant::now();
    while server_backends(pool).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the killed server's connections stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An operation as sent: its document and variables.
type Operation = (&'static str, serde_json::Value);

/// A cluster of the test's own with memberdesk serving it, the test's pool,
/// and a superuser's token.
/// Fields drop in order: the server and the pool before their cluster.
struct Stage {
    server: Option<ServerProcess>,
    pool: PgPool,
    url: String,
    hash: String,
    root: String,
    _cluster: Cluster,
}

impl Stage {
    async fn new(test: &str) -> Option<Stage> {
        let cluster = own_cluster(test)?;
        let url = cluster.url("memberdesk");
        let server = ServerProcess::start(&url, &[]).await;
        let pool = seed::test_pool(&url).await;
        let hash = seed::password_hash().await;
        seed::superuser(&pool, "root", &hash).await;
        let root = Api::new(server.graphql()).login("root", PASSWORD).await;
        Some(Stage {
            server: Some(server),
            pool,
            url,
            hash,
            root: root.expect("root logs in"),
            _cluster: cluster,
        })
    }

    /// Kills the server in the middle of `operation`, which needs the
    /// sessions of `held` late in its transaction; returns once the killed
    /// server's connections are gone.
    async fn crash_during(&mut self, operation: Operation, held: &[i64]) {
        let server = self.server.take().expect("a running server");
        let obstacle = hold_sessions_of(&self.pool, held).await;
        let api = Api::new(server.graphql());
        let (token, (query, variables)) = (self.root.clone(), operation);
        let request = tokio::spawn(async move { api.send(Some(&token), query, variables).await });
        kill_when_blocked(server, &self.pool).await;
        obstacle.rollback().await.unwrap();
        let answer = request.await.unwrap();
        assert!(
            matches!(answer, Outcome::Unanswered(_)),
            "answered before it was killed: {answer:?}"
        );
        wait_for_backends_to_end(&self.pool).await;
        invariants::assert_hold(&self.pool).await;
    }

    /// Starts a new server on the same database and sends `operation` again,
    /// which must now succeed; its `data`.
    async fn restart_and_retry(&mut self, operation: Operation) -> serde_json::Value {
        let server = ServerProcess::start(&self.url, &[]).await;
        let api = Api::new(server.graphql());
        let (query, variables) = operation;
        let data = api.ok(Some(&self.root), query, variables).await;
        self.server = Some(server);
        data
    }
}

/// What a user deletion leaves of `victim`, relation by relation.
#[derive(Debug, PartialEq)]
struct DeletionFootprint {
    users: i64,
    votes: i64,
    memberships: i64,
    sessions: i64,
    deleted_entries: i64,
}

impl DeletionFootprint {
    async fn of(pool: &PgPool, victim: i64, username: &str) -> DeletionFootprint {
        let count = |sql: &'static str| async move {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(victim)
                .fetch_one(pool)
                .await
                .unwrap();
            n
        };
        DeletionFootprint {
            users: count("SELECT count(*) FROM users WHERE id = $1").await,
            // Every vote in the database is the victim's.
            votes: count("SELECT count(*) FROM votes WHERE $1 > 0").await,
            memberships: count("SELECT count(*) FROM user_groups WHERE user_id = $1").await,
            sessions: count("SELECT count(*) FROM sessions WHERE user_id = $1").await,
            deleted_entries: entries_about(pool, "USER_DELETED", victim, username).await,
        }
    }

    const UNTOUCHED: DeletionFootprint = DeletionFootprint {
        users: 1,
        votes: VOTES,
        memberships: 3,
        sessions: 1,
        deleted_entries: 0,
    };

    const DONE: DeletionFootprint = DeletionFootprint {
        users: 0,
        votes: 0,
        memberships: 0,
        sessions: 0,
        deleted_entries: 1,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_cascade_delete_of_a_million_votes_leaves_all_or_nothing() {
    let _turn = my_turn().await;
    let Some(mut stage) = Stage::new("sigkill_during_a_cascade_delete").await else {
        return;
    };
    let pool = stage.pool.clone();
    let victim = seed::members(&pool, "victim", 1, &stage.hash).await[0];
    seed::memberships_and_sessions(&pool, &[victim]).await;
    seed::votes_of(&pool, victim, VOTES).await;
    let deletion = || (DELETE_CASCADE, json!({ "id": user_id(victim) }));

    stage.crash_during(deletion(), &[victim]).await;
    let after_crash = DeletionFootprint::of(&pool, victim, "victim1").await;
    assert_eq!(
        after_crash,
        DeletionFootprint::UNTOUCHED,
        "killed before its commit, the deletion left something behind"
    );
    let payload = stage.restart_and_retry(deletion()).await;
    assert_eq!(payload["deleteUser"]["deleted"], true, "{payload}");
    let done = DeletionFootprint::of(&pool, victim, "victim1").await;
    assert_eq!(done, DeletionFootprint::DONE);
    invariants::assert_hold(&pool).await;
}

/// What a bulk deactivation leaves of the cohort, relation by relation.
#[derive(Debug, PartialEq)]
struct DeactivationFootprint {
    inactive: i64,
    open_records: i64,
    memberships: i64,
    live_sessions: i64,
    deactivated_entries: i64,
}

impl DeactivationFootprint {
    async fn of(pool: &PgPool, cohort: &[i64]) -> DeactivationFootprint {
        let count = |sql: &'static str| async move {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(cohort)
                .fetch_one(pool)
                .await
                .unwrap();
            n
        };
        DeactivationFootprint {
            inactive: count("SELECT count(*) FROM users WHERE id = ANY($1) AND NOT is_active")
                .await,
            open_records: count(
                "SELECT count(*) FROM deactivations WHERE user_id = ANY($1) AND ended_at IS NULL",
            )
            .await,
            memberships: count("SELECT count(*) FROM user_groups WHERE user_id = ANY($1)").await,
            live_sessions: count(
                "SELECT count(*) FROM sessions WHERE user_id = ANY($1) AND revoked_at IS NULL",
            )
            .await,
            deactivated_entries: count(
                "SELECT count(*) FROM audit_entries WHERE action = 'USER_DEACTIVATED' AND target_user_id = ANY($1)",
            )
            .await,
        }
    }

    const UNTOUCHED: DeactivationFootprint = DeactivationFootprint {
        inactive: 0,
        open_records: 0,
        memberships: 3 * COHORT,
        live_sessions: COHORT,
        deactivated_entries: 0,
    };

    const DONE: DeactivationFootprint = DeactivationFootprint {
        inactive: COHORT,
        open_records: COHORT,
        memberships: 0,
        live_sessions: 0,
        deactivated_entries: COHORT,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_deactivation_of_ten_thousand_users_leaves_all_or_nothing() {
    let _turn = my_turn().await;
    let Some(mut stage) = Stage::new("sigkill_during_a_bulk_deactivation").await else {
        return;
    };
    let pool = stage.pool.clone();
    let cohort = seed::members(&pool, "dormant", COHORT, &stage.hash).await;
    seed::memberships_and_sessions(&pool, &cohort).await;
    let deactivation = || (DEACTIVATE_DORMANT, json!({}));

    stage
        .crash_during(deactivation(), &cohort[cohort.len() - 1..])
        .await;
    let after_crash = DeactivationFootprint::of(&pool, &cohort).await;
    assert_eq!(
        after_crash,
        DeactivationFootprint::UNTOUCHED,
        "killed before its commit, the deactivation left something behind"
    );
    let payload = stage.restart_and_retry(deactivation()).await;
    assert_eq!(
        payload["deactivateUsers"]["skipped"],
        json!([]),
        "{payload}"
    );
    let done = DeactivationFootprint::of(&pool, &cohort).await;
    assert_eq!(done, DeactivationFootprint::DONE);
    invariants::assert_hold(&pool).await;
}
