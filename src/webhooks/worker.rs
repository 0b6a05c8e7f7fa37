//! The delivery worker: one per instance, started with the HTTP server.
//!
//! It claims due deliveries (`store::webhooks::claim_due`: the oldest
//! pending event of each endpoint, `FOR UPDATE SKIP LOCKED`, leased), sends
//! each in its own task, and records the attempt. Several instances share
//! the outbox: a claimed delivery is leased to one of them, so each event is
//! sent once unless an instance dies mid-attempt (then, when the lease runs
//! out, again: at least once, with the same `webhook-id`).
//!
//! Failures (a refused address, a timeout, a non-2xx status) are retried
//! with exponential backoff until the delivery's `give_up_at` (24 hours
//! after it was queued), then marked `FAILED`; the endpoint's next event
//! waits meanwhile, so each endpoint receives events in the order of the
//! changes. Nothing here runs inside an API request: a slow or dead endpoint
//! costs the API nothing but this task's connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};

use super::address::{self, AddressPolicy};
use super::signature;
use crate::config::WebhookSettings;
use crate::store::webhooks::{self as store, AttemptRecord, Claimed};

/// Deliveries in flight at once per instance.
const MAX_IN_FLIGHT: usize = 16;

/// Starts the worker; it runs until the task is aborted (the server stops).
pub fn spawn(pool: PgPool, settings: WebhookSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let policy = AddressPolicy::from(&settings);
        let client = match address::client(policy, settings.attempt_timeout) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "webhook deliveries are off: no HTTP client");
                return;
            }
        };
        let worker = Worker {
            pool,
            settings,
            policy,
            client,
            done: Arc::new(Notify::new()),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        };
        worker.run().await;
    })
}

#[derive(Clone)]
struct Worker {
    pool: PgPool,
    settings: WebhookSettings,
    policy: AddressPolicy,
    client: reqwest::Client,
    /// Poked when a delivery ends: its endpoint's next event may be due.
    done: Arc<Notify>,
    slots: Arc<Semaphore>,
}

impl Worker {
    async fn run(self) {
        loop {
            let claimed = match self.claim().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = self.done.notified() => {}
                }
                continue;
            }
            for delivery in claimed {
                let Ok(slot) = self.slots.clone().acquire_owned().await else {
                    return;
                };
                let worker = self.clone();
                tokio::spawn(async move {
                    worker.deliver(delivery).await;
                    drop(slot);
                    worker.done.notify_one();
                });
            }
        }
    }

    /// Due deliveries for the free slots, leased for three attempt timeouts.
    async fn claim(&self) -> sqlx::Result<Vec<Claimed>> {
        let free = self.slots.available_permits() as i64;
        if free == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        store::claim_due(&mut conn, free, self.settings.attempt_timeout * 3).await
    }

    /// One attempt, recorded whatever happens.
    async fn deliver(&self, delivery: Claimed) {
        let started = Instant::now();
        let result = self.attempt(&delivery).await;
        let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let now = Utc::now();
        let (status, next_attempt_at) = match &result {
            Ok(_) => ("DELIVERED", now),
            Err(_) => self.after_failure(&delivery, now),
        };
        let (status_code, error) = match &result {
            Ok(code) => (Some(*code), None),
            Err(failure) => (failure.status_code, Some(failure.error.as_str())),
        };
        if let Some(error) = error {
            tracing::warn!(
                delivery = delivery.id,
                attempt = delivery.attempts,
                status,
                error,
                "webhook delivery failed"
            );
        }
        let record = AttemptRecord {
            delivery_id: delivery.id,
            status_code,
            error,
            duration_ms,
            status,
            next_attempt_at,
        };
        if let Err(e) = store::record_attempt(&self.pool, record).await {
            // The lease runs out and the delivery is tried again.
            tracing::warn!(delivery = delivery.id, error = %e, "recording a webhook attempt failed");
        }
    }

    /// After a failed attempt: `PENDING` again after the backoff, or
    /// `FAILED` when that would pass the delivery's `give_up_at`.
    fn after_failure(
        &self,
        delivery: &Claimed,
        now: DateTime<Utc>,
    ) -> (&'static str, DateTime<Utc>) {
        let delay = backoff(&self.settings, delivery.attempts);
        let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        if next > delivery.give_up_at {
            ("FAILED", now)
        } else {
            ("PENDING", next)
        }
    }

    /// Signs and posts the payload; the status code of a 2xx answer.
    async fn attempt(&self, delivery: &Claimed) -> Result<i32, Failure> {
        let url = self
            .policy
            .check_url(&delivery.url)
            .map_err(Failure::without_answer)?;
        self.policy
            .check_literal(&url)
            .map_err(Failure::without_answer)?;
        let body = serde_json::to_vec(&delivery.payload).map_err(Failure::without_answer)?;
        let signed = signature::sign(
            &delivery.secret,
            &delivery.message_id,
            Utc::now().timestamp(),
            &body,
        )
        .map_err(Failure::without_answer)?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", signed.id)
            .header("webhook-timestamp", signed.timestamp)
            .header("webhook-signature", signed.signature)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::without_answer(error_chain(&e.without_url())))?;
        let code = i32::from(response.status().as_u16());
        if response.status().is_success() {
            Ok(code)
        } else {
            Err(Failure {
                status_code: Some(code),
                error: format!("the endpoint answered HTTP {code}"),
            })
        }
    }
}

/// The wait after the `attempts`-th failure: `first_retry` doubled for each
/// earlier failure, at most `max_retry`.
pub fn backoff(settings: &WebhookSettings, attempts: i32) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    settings
        .first_retry
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(settings.max_retry)
}

/// Why an attempt failed, as the attempt log records it.
struct Failure {
    status_code: Option<i32>,
    error: String,
}

impl Failure {
    /// A failure before any answer: refused, unreachable, timed out.
    fn without_answer(error: impl ToString) -> Self {
        Failure {
            status_code: None,
            error: error.to_string(),
        }
    }
}

/// An error and its causes, `: `-separated (reqwest's own message names
/// only the request, the cause says what went wrong).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = WebhookSettings::default();
        assert_eq!(backoff(&settings, 1), Duration::from_secs(5));
        assert_eq!(backoff(&settings, 2), Duration::from_secs(10));
        assert_eq!(backoff(&settings, 4), Duration::from_secs(40));
        assert_eq!(backoff(&settings, 40), Duration::from_secs(3600));
    }
}
