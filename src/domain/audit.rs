//! What gets written to the audit log, and how.

use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};

use super::Actor;
use crate::store::audit::{self, EntryTarget, NewEntry, SharedEntry};
use crate::store::users::UserRow;

// The derive makes this very enum the API's `AuditAction`, and entries are
// stored under the same SCREAMING_CASE names, so the log and the API cannot
// drift apart.
/// Every kind of change memberdesk records in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum AuditAction {
    Login,
    LoginFailed,
    Logout,
    UserCreated,
    UserUpdated,
    PasswordChanged,
    GroupCreated,
    GroupPermissionsSet,
    /// A group's name or provisioning id (SCIM `externalId`) changed.
    GroupUpdated,
    GroupDeleted,
    UserAddedToGroup,
    UserRemovedFromGroup,
    PermissionGranted,
    PermissionRevoked,
    QuestionCreated,
    QuestionDeleted,
    ChoiceDeleted,
    /// `archiveQuestion`: soft-deleted, kept with its votes.
    QuestionArchived,
    /// `restoreQuestion`: live again.
    QuestionRestored,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    UserAnonymized,
    /// `exportUserData`: someone was shown everything held about the person.
    UserDataExported,
    /// `requestErasure`: deactivated now, anonymized when the grace period ends.
    ErasureRequested,
    /// `cancelErasure`: the pending erasure will not happen.
    ErasureCancelled,
    /// `createWebhook`: an endpoint now receives lifecycle events.
    WebhookCreated,
    /// `deleteWebhook`: it no longer does; its deliveries are gone.
    WebhookDeleted,
    /// `redeliverWebhook`: an event queued again for its endpoint.
    WebhookRedelivered,
    /// `memberdesk scim-token create`: a provisioning client may now call
    /// `/scim/v2` with the permissions the entry lists.
    ScimTokenCreated,
    /// `memberdesk scim-token revoke`: it may no longer.
    ScimTokenRevoked,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        super::schema_name(self)
    }

    pub fn parse(name: &str) -> Option<Self> {
        use async_graphql::resolver_utils::EnumType;
        Self::items()
            .iter()
            .find(|item| item.name == name)
            .map(|item| item.value)
    }
}

/// What an entry is about: a user (kept as a reference and a snapshot of
/// their username), or something else described in words.
pub enum Target<'a> {
    User(&'a UserRow),
    /// A user whose row is gone (a deletion's own entry, written after it):
    /// no reference, but the id is kept as a plain value, with the snapshot.
    Former(&'a UserRow),
    Described(String),
}

/// One entry of an [`AuditBatch`]: what it is about, and what only it says.
pub struct BatchEntry<'a> {
    pub target: Target<'a>,
    pub own_details: Option<Value>,
}

impl<'a> BatchEntry<'a> {
    /// An entry with nothing of its own beyond the batch's shared details.
    pub fn about(target: Target<'a>) -> Self {
        BatchEntry {
            target,
            own_details: None,
        }
    }
}

/// The entries of one bulk operation, written in one statement: one per
/// target, by one actor, for one reason, with the details they all share
/// held once (PostgreSQL merges each entry's own over them).
#[must_use = "a batch of audit entries is written only by `record`"]
pub struct AuditBatch<'a> {
    action: AuditAction,
    by: AuditActor<'a>,
    reason: Option<&'a str>,
    shared: Value,
}

impl<'a> AuditBatch<'a> {
    pub fn new(action: AuditAction, by: impl Into<AuditActor<'a>>) -> Self {
        AuditBatch {
            action,
            by: by.into(),
            reason: None,
            shared: Value::Object(Default::default()),
        }
    }

    pub fn reason(self, reason: Option<&'a str>) -> Self {
        AuditBatch { reason, ..self }
    }

    /// What every entry of the batch says (a JSON object).
    pub fn shared_details(self, shared: Value) -> Self {
        AuditBatch { shared, ..self }
    }

    /// Writes one entry per element of `entries`, in order (inside the
    /// caller's transaction).
    pub async fn record(
        self,
        ex: &mut PgConnection,
        entries: &[BatchEntry<'_>],
    ) -> sqlx::Result<u64> {
        let targets: Vec<EntryTarget<'_>> = entries.iter().map(BatchEntry::entry_target).collect();
        let shared = SharedEntry {
            action: self.action.as_str(),
            actor_id: self.by.id,
            actor_username: self.by.username,
            reason: self.reason,
            details: &self.shared,
        };
        audit::insert_many(ex, shared, &targets).await
    }
}

impl BatchEntry<'_> {
    fn entry_target(&self) -> EntryTarget<'_> {
        let target = self.target.reference();
        EntryTarget {
            target_user_id: target.user_id,
            target_user_ref: target.user_ref,
            target_repr: target.repr,
            own_details: self.own_details.as_ref(),
        }
    }
}

/// What an entry holds about its target.
struct TargetReference<'a> {
    /// The live user it is about (a reference the database keeps valid).
    user_id: Option<i64>,
    /// The id of a user it is about, kept after the user is deleted.
    user_ref: Option<i64>,
    /// The snapshot: the username then, or a description.
    repr: &'a str,
}

impl Target<'_> {
    /// The reference, kept id and snapshot an entry about this target holds.
    fn reference(&self) -> TargetReference<'_> {
        let (user_id, user_ref, repr) = match self {
            Target::User(user) => (Some(user.id), None, user.username.as_str()),
            Target::Former(user) => (None, Some(user.id), user.username.as_str()),
            Target::Described(repr) => (None, None, repr.as_str()),
        };
        TargetReference {
            user_id,
            user_ref,
            repr,
        }
    }
}

/// Who did it, as the entry records it: a reference and a snapshot of the
/// username (`system` for the command line).
#[derive(Clone, Copy)]
pub struct AuditActor<'a> {
    pub id: Option<i64>,
    pub username: &'a str,
}

impl<'a> From<&'a Actor> for AuditActor<'a> {
    fn from(actor: &'a Actor) -> Self {
        AuditActor {
            id: actor.user_id(),
            username: actor.username(),
        }
    }
}

impl<'a> AuditActor<'a> {
    /// The user themselves (a login, a logout).
    pub fn user(user: &'a UserRow) -> Self {
        AuditActor {
            id: Some(user.id),
            username: &user.username,
        }
    }
}

/// One audit entry, built step by step and written with [`record`] (or, as
/// the last step of an operation, [`record_and_commit`]): the action and
/// what it is about are required, the rest reads as what it says.
///
/// ```text
/// AuditEntry::new(AuditAction::UserDeactivated, Target::User(&user))
///     .by(actor)
///     .reason(reason.as_deref())
///     .details(details)
///     .record_and_commit(tx)
///     .await?;
/// ```
///
/// [`record`]: AuditEntry::record
/// [`record_and_commit`]: AuditEntry::record_and_commit
#[must_use = "an audit entry is written only by `record` or `record_and_commit`"]
pub struct AuditEntry<'a> {
    action: AuditAction,
    target: Target<'a>,
    by: Option<AuditActor<'a>>,
    reason: Option<&'a str>,
    details: Option<Value>,
}

impl<'a> AuditEntry<'a> {
    /// An entry with no actor (a failed login), no reason and no details.
    pub fn new(action: AuditAction, target: Target<'a>) -> Self {
        AuditEntry {
            action,
            target,
            by: None,
            reason: None,
            details: None,
        }
    }

    /// Who did it: an [`Actor`], or [`AuditActor::user`] for the user themselves.
    pub fn by(self, by: impl Into<AuditActor<'a>>) -> Self {
        AuditEntry {
            by: Some(by.into()),
            ..self
        }
    }

    /// Why, as the caller gave it (if they did).
    pub fn reason(self, reason: Option<&'a str>) -> Self {
        AuditEntry { reason, ..self }
    }

    pub fn details(self, details: Value) -> Self {
        AuditEntry {
            details: Some(details),
            ..self
        }
    }

    /// Writes the entry (inside the caller's transaction, so it lands with
    /// the change it records, or not at all).
    pub async fn record(self, ex: impl PgExecutor<'_>) -> sqlx::Result<i64> {
        let target = self.target.reference();
        audit::insert(
            ex,
            NewEntry {
                action: self.action.as_str(),
                actor_id: self.by.and_then(|b| b.id),
                actor_username: self.by.map(|b| b.username),
                target_user_id: target.user_id,
                target_user_ref: target.user_ref,
                target_repr: target.repr,
                reason: self.reason,
                details: self.details,
            },
        )
        .await
    }

    /// Writes the entry as the last step of `tx`, then commits it: the tail
    /// every audited operation ends with.
    pub async fn record_and_commit(self, mut tx: Transaction<'_, Postgres>) -> sqlx::Result<()> {
        self.record(&mut *tx).await?;
        tx.commit().await
    }
}
