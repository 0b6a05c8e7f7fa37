//! The webhook tables (migration 0009): endpoints, the outbox of deliveries
//! (which the audit log's trigger fills, never this module; their bodies are
//! made from the audit entries, `webhook_payload`) and the attempts.
//!
//! The delivery worker's statements are here too: claiming due deliveries
//! with `FOR UPDATE SKIP LOCKED`, so several instances share the outbox
//! without sending an event twice, and recording each attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};

use super::PageAfter;

/// An endpoint, without its secret (read only by the worker, see [`Claimed`]).
#[derive(Debug, Clone, FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

macro_rules! webhook_columns {
    () => {
        "id, url, events, description, created_at, disabled"
    };
}

/// What a new endpoint is.
pub struct NewWebhook<'a> {
    pub url: &'a str,
    pub events: &'a [String],
    pub description: &'a str,
    pub secret: &'a str,
    /// The creator's id, kept as a plain value.
    pub created_by: Option<i64>,
}

/// The events an endpoint may subscribe to (`webhook_events`), by name.
pub async fn known_events(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT event FROM webhook_events ORDER BY event")
        .fetch_all(ex)
        .await
}

pub async fn insert(ex: impl PgExecutor<'_>, new: NewWebhook<'_>) -> sqlx::Result<WebhookRow> {
    sqlx::query_as(concat!(
        "INSERT INTO webhooks (url, events, description, secret, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING ",
        webhook_columns!()
    ))
    .bind(new.url)
    .bind(new.events)
    .bind(new.description)
    .bind(new.secret)
    .bind(new.created_by)
    .fetch_one(ex)
    .await
}

pub async fn all(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<WebhookRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        webhook_columns!(),
        " FROM webhooks ORDER BY id"
    ))
    .fetch_all(ex)
    .await
}

/// The endpoint, locked until the transaction ends.
pub async fn find_for_update(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<WebhookRow>> {
    super::row_by_key(
        ex,
        concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE id = $1 FOR UPDATE"
        ),
        id,
    )
    .await
}

/// Removes an endpoint with its deliveries and their attempts (each table
/// named: attempts' key is `ON DELETE RESTRICT`, deliveries have none);
/// returns how many deliveries went.
pub async fn delete(ex: &mut PgConnection, id: i64) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM webhook_attempts a USING webhook_deliveries d
          WHERE a.delivery_id = d.id AND d.webhook_id = $1",
    )
    .bind(id)
    .execute(&mut *ex)
    .await?;
    let deliveries = sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
        .bind(id)
        .execute(&mut *ex)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(&mut *ex)
        .await?;
    Ok(deliveries)
}

/// One event for one endpoint, as the API shows it.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: i64,
    pub message_id: String,
    pub event: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A [`DeliveryRow`]'s columns, from `webhook_deliveries d` joined with the
/// audit entry `a` it reports: the `webhook-id` and the body are made from
/// the entry (migration 0009), so they show an erasure's redaction at once.
macro_rules! delivery_columns {
    () => {
        "d.id, d.webhook_id, 'msg_' || d.audit_entry_id AS message_id, d.event, \
         webhook_payload(a, d.event) AS payload, d.status, d.attempts, d.created_at, \
         d.next_attempt_at, d.last_status_code, d.last_error, d.delivered_at"
    };
}

/// A page of an endpoint's deliveries, newest first.
pub async fn deliveries_page(
    ex: impl PgExecutor<'_>,
    webhook_id: i64,
    page: PageAfter,
) -> sqlx::Result<Vec<DeliveryRow>> {
    let sql = concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries d JOIN audit_entries a ON a.id = d.audit_entry_id
           JOIN webhooks w ON w.id = d.webhook_id
          WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
          ORDER BY d.id DESC LIMIT $3"
    );
    super::page_of_owner(ex, sql, webhook_id, page).await
}

pub async fn count_deliveries(ex: impl PgExecutor<'_>, webhook_id: i64) -> sqlx::Result<i64> {
    let sql = "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                WHERE d.webhook_id = $1";
    super::count_by_key(ex, sql, webhook_id).await
}

/// Queues `delivery_id`'s event again for its endpoint, as a new delivery
/// of the same change (so the same `webhook-id`), due now.
pub async fn redeliver(
    ex: impl PgExecutor<'_>,
    delivery_id: i64,
) -> sqlx::Result<Option<DeliveryRow>> {
    let sql = concat!(
        "WITH d AS (
             INSERT INTO webhook_deliveries (webhook_id, audit_entry_id, event)
             SELECT o.webhook_id, o.audit_entry_id, o.event
               FROM webhook_deliveries o JOIN webhooks w ON w.id = o.webhook_id
              WHERE o.id = $1
             RETURNING *
         )
         SELECT ",
        delivery_columns!(),
        " FROM d JOIN audit_entries a ON a.id = d.audit_entry_id"
    );
    super::row_by_key(ex, sql, delivery_id).await
}

/// A delivery the worker claimed, with what it needs to send it.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: i64,
    pub message_id: String,
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub give_up_at: DateTime<Utc>,
    pub url: String,
    pub secret: String,
}

/// Claims up to `limit` due deliveries, each the oldest pending one of its
/// endpoint (so an endpoint receives its events one at a time, in the order
/// of the changes), and leases them for `lease`: other instances skip the
/// rows this one locks, and a lease that runs out (an instance that died
/// mid-attempt) makes the delivery due again.
///
/// `due` tests the status again, not only `heads`: a head another instance
/// records as `DELIVERED` while this statement runs is re-read when locked,
/// and only conditions on `d` itself are re-checked then (its
/// `next_attempt_at` is the delivery time, already past), so without it the
/// event could be sent a second time.
pub async fn claim_due(
    ex: &mut PgConnection,
    limit: i64,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(
        "WITH heads AS (
             SELECT (SELECT d.id FROM webhook_deliveries d
                      WHERE d.webhook_id = w.id AND d.status = 'PENDING'
                      ORDER BY d.id LIMIT 1) AS id
               FROM webhooks w WHERE NOT w.disabled
         ), due AS (
             SELECT d.id FROM webhook_deliveries d JOIN heads h ON h.id = d.id
              WHERE d.status = 'PENDING' AND d.next_attempt_at <= now()
              ORDER BY d.id LIMIT $1
                FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE webhook_deliveries d
            SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
           FROM due, webhooks w, audit_entries a
          WHERE d.id = due.id AND w.id = d.webhook_id AND a.id = d.audit_entry_id
         RETURNING d.id, 'msg_' || d.audit_entry_id AS message_id, webhook_payload(a, d.event) AS payload,
                   d.attempts, d.give_up_at, w.url, w.secret",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(ex)
    .await
}

/// How one attempt went, and what becomes of the delivery.
pub struct AttemptRecord<'a> {
    pub delivery_id: i64,
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i32,
    /// `DELIVERED`, `FAILED`, or `PENDING` again.
    pub status: &'a str,
    /// When to try again (for `PENDING`).
    pub next_attempt_at: DateTime<Utc>,
}

/// Records an attempt and the delivery's new state, in one statement; a
/// delivery deleted meanwhile (its endpoint deleted) records nothing.
pub async fn record_attempt(ex: impl PgExecutor<'_>, r: AttemptRecord<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "WITH delivery AS (
             UPDATE webhook_deliveries
                SET status = $5, next_attempt_at = $6, last_status_code = $2, last_error = $3,
                    delivered_at = CASE WHEN $5 = 'DELIVERED' THEN now() END
              WHERE id = $1 RETURNING id
         )
         INSERT INTO webhook_attempts (delivery_id, status_code, error, duration_ms)
         SELECT id, $2, $3, $4 FROM delivery",
    )
    .bind(r.delivery_id)
    .bind(r.status_code)
    .bind(r.error)
    .bind(r.duration_ms)
    .bind(r.status)
    .bind(r.next_attempt_at)
    .execute(ex)
    .await?;
    Ok(())
}
