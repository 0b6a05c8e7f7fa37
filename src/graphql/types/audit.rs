use async_graphql::{Context, ID, Json, Object};
use chrono::{DateTime, Utc};

use super::User;
use crate::domain::audit::AuditAction;
use crate::error::AppError;
use crate::graphql::context::load;
use crate::graphql::loaders::UserById;
use crate::ids::{self, Kind};
use crate::store::audit::AuditRow;

/// One entry of the append-only audit log. Entries outlive their actor and
/// target: the references become null, the snapshots stay.
pub struct AuditEntry(pub AuditRow);

/// One entry of the append-only audit log. Entries outlive their actor and target: the references become null, the username snapshots stay.
#[Object]
impl AuditEntry {
    /// Opaque id of the entry.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::AuditEntry, self.0.id))
    }
    /// When the change was committed.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// What happened.
    async fn action(&self) -> Result<AuditAction, AppError> {
        AuditAction::parse(&self.0.action)
            .ok_or_else(|| AppError::internal(format!("unknown audit action {}", self.0.action)))
    }
    /// Who acted; null for the system and once the actor is deleted.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>, AppError> {
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        Ok(load(ctx, UserById(id)).await?.map(User::new))
    }
    /// The actor's username when they acted (`system` for the command line).
    async fn actor_username(&self) -> Option<&str> {
        self.0.actor_username.as_deref()
    }
    /// The user the entry is about; null once that user is deleted.
    async fn target_user(&self, ctx: &Context<'_>) -> Result<Option<User>, AppError> {
        let Some(id) = self.0.target_user_id else {
            return Ok(None);
        };
        Ok(load(ctx, UserById(id)).await?.map(User::new))
    }
    /// What the entry is about, as it was then (a username, a group, a question).
    async fn target_repr(&self) -> &str {
        &self.0.target_repr
    }
    /// Why, as the actor gave it; null when no reason was given.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// Facts of this action as JSON, e.g. a deletion's policy and the rows it deleted and detached.
    async fn details(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.clone().map(Json)
    }
    /// When an erasure took personal data out of this entry (the snapshots became the pseudonym, the reason and
    /// client addresses went, `details.redacted` is true); null for an entry as written.
    async fn redacted_at(&self) -> Option<DateTime<Utc>> {
        self.0.redacted_at
    }
}
