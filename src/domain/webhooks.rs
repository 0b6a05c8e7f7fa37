//! Webhook endpoints: who may register them, what a valid one is, and the
//! audit trail of registering, removing and redelivering.
//!
//! Superusers only: an endpoint receives every lifecycle event of every
//! user (ids and usernames), so registering one is as broad as reading the
//! whole audit log, and its URL makes memberdesk send requests into a
//! network, which the address rules (`webhooks::address`) bound. The secret
//! is returned once, on creation, and never shown again.

use serde_json::json;
use sqlx::PgPool;

use super::access::Rule;
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Begun};
use super::{Actor, validation};
use crate::error::{AppError, AppResult, OrNotFound};
use crate::store::webhooks::{self as store, DeliveryRow, NewWebhook, WebhookRow};
use crate::webhooks::address::AddressPolicy;
use crate::webhooks::signature;

/// The most characters an endpoint's description may have.
const MAX_DESCRIPTION: usize = 500;

/// What a superuser asks for.
pub struct WebhookRequest {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// A new endpoint and its signing secret, shown this once.
pub struct CreatedWebhook {
    pub webhook: WebhookRow,
    pub secret: String,
}

/// Registers an endpoint for `events`. The URL must pass the address rules
/// now (its host resolved once); the worker checks it again at every
/// attempt. Audited (`WEBHOOK_CREATED`, with the host, not the URL: a path
/// or query may hold a token of the receiver's).
pub async fn create_webhook(
    pool: &PgPool,
    actor: &Actor,
    request: WebhookRequest,
    policy: AddressPolicy,
) -> AppResult<CreatedWebhook> {
    let url = policy
        .check_url(&request.url)
        .map_err(|refused| AppError::invalid("url", refused.0))?;
    let description = validation::line(
        "description",
        request.description.as_deref().unwrap_or(""),
        MAX_DESCRIPTION,
        false,
    )?;
    let events = checked_events(pool, &request.events).await?;
    policy
        .resolve(&url)
        .await
        .map_err(|refused| AppError::invalid("url", refused.0))?;
    let secret = signature::new_secret();
    let Begun { mut tx, actor } = authority::begin(pool, actor, Rule::Superuser).await?;
    let webhook = store::insert(
        &mut *tx,
        NewWebhook {
            url: url.as_str(),
            events: &events,
            description: &description,
            secret: &secret,
            created_by: actor.user_id(),
        },
    )
    .await?;
    let details = json!({ "webhookId": webhook.id, "host": url.host_str(), "events": events });
    AuditEntry::new(AuditAction::WebhookCreated, described(webhook.id))
        .by(&actor)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(CreatedWebhook { webhook, secret })
}

/// The audit target of an entry about endpoint `id`.
fn described(id: i64) -> Target<'static> {
    Target::Described(format!("webhook {id}"))
}

/// The events asked for, each known (`webhook_events`), without repeats,
/// at least one.
async fn checked_events(pool: &PgPool, asked: &[String]) -> AppResult<Vec<String>> {
    let known = store::known_events(pool).await?;
    let mut events: Vec<String> = Vec::new();
    for event in asked.iter().map(|e| e.trim()) {
        if !known.iter().any(|k| k == event) {
            return Err(AppError::invalid(
                "events",
                format!(
                    "'{}' is not an event; the events are: {}",
                    crate::ids::echo(event),
                    known.join(", ")
                ),
            ));
        }
        if !events.iter().any(|e| e == event) {
            events.push(event.to_owned());
        }
    }
    if events.is_empty() {
        return Err(AppError::invalid(
            "events",
            "name at least one event to subscribe to",
        ));
    }
    Ok(events)
}

/// Removes an endpoint, its queued and past deliveries and their attempts:
/// nothing more is sent to it. Audited (`WEBHOOK_DELETED`).
pub async fn delete_webhook(pool: &PgPool, actor: &Actor, id: i64) -> AppResult<WebhookRow> {
    let Begun { mut tx, actor } = authority::begin(pool, actor, Rule::Superuser).await?;
    let webhook = store::find_for_update(&mut *tx, id)
        .await
        .or_not_found("webhook")?;
    let deliveries = store::delete(&mut tx, id).await?;
    let host = reqwest::Url::parse(&webhook.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    let details = json!({ "webhookId": id, "host": host, "deliveriesRemoved": deliveries });
    AuditEntry::new(AuditAction::WebhookDeleted, described(id))
        .by(&actor)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(webhook)
}

/// Sends a delivery's event again, as a new delivery with the same
/// `webhook-id` (the receiver's idempotency key) and payload, due now.
/// Audited (`WEBHOOK_REDELIVERED`).
pub async fn redeliver(pool: &PgPool, actor: &Actor, delivery_id: i64) -> AppResult<DeliveryRow> {
    let Begun { mut tx, actor } = authority::begin(pool, actor, Rule::Superuser).await?;
    let delivery = store::redeliver(&mut *tx, delivery_id)
        .await
        .or_not_found("webhook delivery")?;
    let details = json!({
        "webhookId": delivery.webhook_id,
        "deliveryId": delivery_id,
        "newDeliveryId": delivery.id,
        "event": delivery.event,
        "messageId": delivery.message_id,
    });
    AuditEntry::new(
        AuditAction::WebhookRedelivered,
        described(delivery.webhook_id),
    )
    .by(&actor)
    .details(details)
    .record_and_commit(tx)
    .await?;
    Ok(delivery)
}
