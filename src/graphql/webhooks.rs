//! Webhook endpoints in the API: `createWebhook`, `webhooks`,
//! `deleteWebhook`, `webhookDeliveries` and `redeliverWebhook`, superusers
//! only. Thin resolvers over `domain::webhooks`; the sending is
//! `crate::webhooks`.

use async_graphql::{Context, Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::context::{ContextExt, wrap_all};
use super::guards::Require;
use super::pagination::{CountedConnection, IdPage, TotalCount};
use crate::domain::webhooks::{self, WebhookRequest};
use crate::error::AppError;
use crate::ids::{self, Kind};
use crate::store::webhooks::{self as store, DeliveryRow, WebhookRow};
use crate::webhooks::address::AddressPolicy;

/// An endpoint that receives lifecycle events, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[derive(SimpleObject)]
pub struct Webhook {
    /// Opaque id of the endpoint.
    id: ID,
    /// Where events are posted.
    url: String,
    /// The events it receives (`user.created`, `user.deactivated`, …).
    events: Vec<String>,
    /// What it is for, as its creator wrote it.
    description: String,
    /// When it was registered.
    created_at: DateTime<Utc>,
    /// Whether deliveries to it are held back.
    disabled: bool,
    /// The signing secret (`whsec_…`): only in `createWebhook`'s answer, null everywhere else. Keep it; it is never shown again.
    secret: Option<String>,
}

impl Webhook {
    /// An endpoint as every answer but `createWebhook`'s shows it: without
    /// its secret.
    fn listed(row: WebhookRow) -> Self {
        Webhook::with_secret(row, None)
    }

    /// An endpoint, with the secret only `createWebhook`'s answer holds.
    fn with_secret(row: WebhookRow, secret: Option<String>) -> Self {
        Webhook {
            id: ID(ids::encode(Kind::Webhook, row.id)),
            url: row.url,
            events: row.events,
            description: row.description,
            created_at: row.created_at,
            disabled: row.disabled,
            secret,
        }
    }
}

/// Where a delivery stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Retried for 24 hours without success; `redeliverWebhook` tries again.
    Failed,
}

/// One event for one endpoint, with how its attempts went.
pub struct WebhookDelivery(pub DeliveryRow);

/// One event for one endpoint, with how its attempts went.
#[Object]
impl WebhookDelivery {
    /// Opaque id of the delivery (for `redeliverWebhook`).
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::WebhookDelivery, self.0.id))
    }
    /// The `webhook-id` header: the same for every attempt and redelivery of the event, the receiver's idempotency key.
    async fn message_id(&self) -> &str {
        &self.0.message_id
    }
    /// The event (`user.deactivated`, …).
    async fn event(&self) -> &str {
        &self.0.event
    }
    /// The body posted (`type`, `timestamp`, `data`).
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    /// Pending, delivered or failed.
    async fn status(&self) -> Result<WebhookDeliveryStatus, AppError> {
        match self.0.status.as_str() {
            "PENDING" => Ok(WebhookDeliveryStatus::Pending),
            "DELIVERED" => Ok(WebhookDeliveryStatus::Delivered),
            "FAILED" => Ok(WebhookDeliveryStatus::Failed),
            other => Err(AppError::internal(format!(
                "unknown delivery status {other}"
            ))),
        }
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When the change happened and the event was queued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the next attempt is due; null unless pending.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == "PENDING").then_some(self.0.next_attempt_at)
    }
    /// The HTTP status of the last answer; null when there was none.
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }
    /// Why the last attempt failed; null after a success.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When the endpoint acknowledged it (2xx); null until then.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Every webhook endpoint, oldest first (without secrets). Superusers only.
    #[graphql(guard = "Require::Superuser")]
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>, AppError> {
        Ok(wrap_all(store::all(ctx.pool()).await?, Webhook::listed))
    }

    /// An endpoint's deliveries, newest first. Superusers only.
    #[graphql(guard = "Require::Superuser")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint.")] webhook_id: ID,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
    ) -> Result<CountedConnection<WebhookDelivery>, AppError> {
        let webhook_id = ids::decode(Kind::Webhook, &webhook_id, "webhookId")?;
        let page = IdPage::new(first, after)?;
        let rows = store::deliveries_page(ctx.pool(), webhook_id, page.read()).await?;
        let total = TotalCount::WebhookDeliveries(webhook_id);
        Ok(page.connection(rows, |d| d.id, WebhookDelivery, total))
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint for lifecycle events. The URL must be `https`
    /// (or `http` with `MEMBERDESK_WEBHOOK_ALLOW_HTTP`) and resolve to public
    /// addresses only (unless `MEMBERDESK_WEBHOOK_ALLOW_PRIVATE`); refusals
    /// are `INVALID_INPUT` on `url` or `events`. The answer holds the signing
    /// `secret`, shown this once. Superusers only; audited.
    #[graphql(guard = "Require::Superuser")]
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Where to post events.")] url: String,
        #[graphql(
            desc = "The events to receive: user.created, user.updated, user.deactivated, user.reactivated, user.deleted, user.anonymized, user.erasure_requested, group.deleted, question.deleted."
        )]
        events: Vec<String>,
        #[graphql(desc = "What it is for (up to 500 characters).")] description: Option<String>,
    ) -> Result<Webhook, AppError> {
        let policy = AddressPolicy::from(&ctx.settings().webhooks);
        let request = WebhookRequest {
            url,
            events,
            description,
        };
        let created = webhooks::create_webhook(ctx.pool(), &ctx.actor()?, request, policy).await?;
        Ok(Webhook::with_secret(created.webhook, Some(created.secret)))
    }

    /// Removes an endpoint and its deliveries; nothing more is sent to it.
    /// Returns it as it was. Superusers only; audited.
    #[graphql(guard = "Require::Superuser")]
    async fn delete_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint to remove.")] id: ID,
    ) -> Result<Webhook, AppError> {
        let id = ids::decode(Kind::Webhook, &id, "id")?;
        let row = webhooks::delete_webhook(ctx.pool(), &ctx.actor()?, id).await?;
        Ok(Webhook::listed(row))
    }

    /// Sends a delivery's event again (a failed one, or one the receiver
    /// lost), as a new delivery with the same `webhook-id`, due now.
    /// Superusers only; audited.
    #[graphql(guard = "Require::Superuser")]
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The delivery to send again.")] delivery_id: ID,
    ) -> Result<WebhookDelivery, AppError> {
        let id = ids::decode(Kind::WebhookDelivery, &delivery_id, "deliveryId")?;
        let row = webhooks::redeliver(ctx.pool(), &ctx.actor()?, id).await?;
        Ok(WebhookDelivery(row))
    }
}
