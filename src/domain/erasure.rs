//! Erasure (GDPR Art. 17) that leaves nothing of the person behind and can
//! be proven: what every erasure does, the requests that wait out a grace
//! period, and the receipt.
//!
//! # Redaction in place, not crypto-shredding
//!
//! An erasure keeps the history (the user row and its id, votes, audit
//! entries: their actions, times and kept ids) and takes out what
//! identifies the person. In the audit log that is a known, small set: the
//! username snapshots, the reasons typed about them, and client addresses
//! (and any copied name or email) in the details. memberdesk redacts these
//! in place: the snapshots become the pseudonym, the reason becomes null,
//! the details lose those keys and gain `redacted: true`, and `redactedAt`
//! says when. Crypto-shredding (those columns encrypted under a per-person
//! key that erasure destroys) was weighed and not chosen:
//!
//! - the key has to live somewhere. In the same database it is in the same
//!   backups as the ciphertext, so a restored backup brings the person back
//!   exactly as it does with redaction; in a separate key store, memberdesk
//!   would need a second stateful service to run and back up;
//! - the audit log is read in pages mixing many people and searched by name
//!   (the fold columns): every read would decrypt, and search would need a
//!   blind index, which is itself a digest of the name to erase;
//! - an entry names two people (an admin acting on a member), and a reason
//!   typed by one about the other belongs to neither key alone.
//!
//! # What guards the audit log
//!
//! PostgreSQL does, not this module: the triggers of migration 0006 refuse
//! `DELETE` and `TRUNCATE`, and allow an `UPDATE` only to detach a deleted
//! user (the kept id stays) or to fill a missing fold. The one other change
//! is the redaction, and its rule is in the database too: in a transaction
//! that set `memberdesk.erasure` to a user id (transaction-locally,
//! `store::erasure::redact_audit_entries`), an update of an entry naming
//! that user writes the redaction the migration defines, whatever the
//! statement asked for, and the statement is refused unless that user is
//! already anonymized or deleted.
//!
//! The application's role can set that setting too, like any role. That is
//! accepted because of what it unlocks: only the fixed redaction (values
//! removed or replaced by the pseudonym, never written), only for someone
//! already erased, whose erasure is itself an audit entry, and every
//! redacted entry shows `redactedAt`. A role that could abuse it could
//! anonymize the person outright. What no role that owns the table can be
//! stopped from is DDL (dropping the trigger); run memberdesk under a role
//! that does not own its tables if that matters, and log DDL.
//!
//! # Requests with a grace period
//!
//! `requestErasure` deactivates at once and sets `erasureDueAt`;
//! `memberdesk run-erasures` (cron) erases every due request, each in its
//! own transaction, claiming rows with `FOR UPDATE SKIP LOCKED`, so two runs
//! at once share the work and each request is done exactly once. Until it
//! is due, `cancelErasure` withdraws it; a reactivation must wait for that.
//!
//! # The receipt
//!
//! Every erasure returns a [`Receipt`] and records it as the details of its
//! audit entry: what was erased and counted, the pseudonym, when, by whom,
//! and the SHA-256 of the last export of the person's data (its
//! `USER_DATA_EXPORTED` entry; see `domain::export`), so the person can be
//! shown what was held while memberdesk keeps only a digest. It holds no
//! personal data. The digest is of the export taken before, not one taken
//! by the erasure: building the whole document costs as much as the
//! person's votes, and anonymization must not grow with them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::Actor;
use super::access::Rule;
use super::audit::{AuditAction, AuditActor, AuditEntry, Target};
use super::authority::{self, Acting};
use super::deletion::registry::{EDGES, Edge};
use super::export::CANONICAL_FORM;
use super::validation::{self, Reason};
use crate::error::{AppError, AppResult, OrNotFound};
use crate::ids::{self, Kind};
use crate::store::deactivations::{self, AccessRemoval};
use crate::store::users::{self, UserRow};
use crate::store::{audit, erasure, login_failures};

/// What anonymization does to the rows of each table that references a
/// user. Nothing reads it to act: it is the decision, written down, for
/// every foreign key to `users`, and a test holds it to PostgreSQL's catalog
/// so a new table cannot be forgotten by erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Kept as they are: no personal data, and history (votes, questions).
    Kept,
    /// Deleted (what the person could do).
    Removed,
    /// Kept, ended or revoked (sessions, deactivation records).
    Ended,
    /// Kept, with personal data taken out.
    Redacted,
}

/// One foreign key to `users`, by its name in the deletion registry (which
/// holds its table and column), and what an erasure does with its rows.
#[derive(Debug)]
pub struct Relation {
    pub name: &'static str,
    pub fate: Fate,
}

impl Relation {
    /// The foreign key itself, as the deletion registry declares it.
    pub fn edge(&self) -> &'static Edge {
        EDGES
            .iter()
            .find(|edge| edge.parent == "users" && edge.name == self.name)
            .expect("every erasure relation names a registry edge to users")
    }
}

const fn relation(name: &'static str, fate: Fate) -> Relation {
    Relation { name, fate }
}

/// Every foreign key to `users`, by its fate under anonymization.
pub const RELATIONS: &[Relation] = &[
    relation("votes", Fate::Kept),
    relation("questions", Fate::Kept),
    relation("sessions", Fate::Ended),
    relation("groupMemberships", Fate::Removed),
    relation("userPermissions", Fate::Removed),
    relation("deactivations", Fate::Ended),
    relation("auditEntries", Fate::Redacted),
    relation("auditEntriesAsTarget", Fate::Redacted),
];

/// The profile fields an anonymization empties or replaces.
const FIELDS_ERASED: &[&str] = &[
    "username",
    "email",
    "firstName",
    "lastName",
    "password",
    "deactivationReason",
    // The identifier a provisioning client (SCIM) gave the person.
    "externalId",
];

/// What a deletion leaves of the person in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Erase {
    /// The entries keep the snapshot of who the user was (the default).
    #[default]
    KeepSnapshots,
    /// The entries are redacted as an anonymization redacts them
    /// (`deleteUser(erase: true)`).
    Scrub,
}

impl Erase {
    /// The mode an `erase` argument asks for (absent means keep).
    pub fn from_flag(erase: Option<bool>) -> Self {
        match erase {
            Some(true) => Erase::Scrub,
            _ => Erase::KeepSnapshots,
        }
    }
}

/// Which operation erased the person, as the receipt names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    AnonymizeUser,
    /// A `requestErasure` whose grace period ended (or was zero).
    ErasureRequest,
    DeleteUser,
}

impl Via {
    /// This operation, carried out by `actor`.
    pub fn by(self, actor: AuditActor<'_>) -> ErasedBy<'_> {
        ErasedBy { actor, via: self }
    }

    fn name(self) -> &'static str {
        match self {
            Via::AnonymizeUser => "anonymizeUser",
            Via::ErasureRequest => "requestErasure",
            Via::DeleteUser => "deleteUser",
        }
    }
}

/// Who erased the person and through which operation: the receipt's
/// `erasedBy` and `via`, which are known together or not at all.
#[derive(Clone, Copy)]
pub struct ErasedBy<'a> {
    pub actor: AuditActor<'a>,
    pub via: Via,
}

/// The last export of the person's data, as the receipt names it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportDigest {
    pub exported_at: DateTime<Utc>,
    pub sha256: Option<String>,
    pub format: &'static str,
}

/// The proof of one erasure, without personal data: returned by the
/// operation and recorded as its audit entry's details.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// What this document is (and its version).
    pub receipt: &'static str,
    /// The person's API id (the row and its id stay after anonymization).
    pub user_id: String,
    pub pseudonym: String,
    pub erased_at: DateTime<Utc>,
    /// The username of who erased them (`system` for `run-erasures`).
    pub erased_by: String,
    pub via: &'static str,
    pub fields_erased: Vec<&'static str>,
    /// Rows taken away, per relation.
    pub removed: BTreeMap<&'static str, i64>,
    pub audit_entries_redacted: u64,
    pub sessions_revoked: i64,
    /// The relations kept (history), without personal data.
    pub kept: Vec<&'static str>,
    /// The last export before the erasure; `None` if none was taken.
    pub export: Option<ExportDigest>,
}

impl Receipt {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a receipt is plain data")
    }
}

/// What anonymizing one user did.
#[derive(Debug)]
pub struct Anonymization {
    pub user: UserRow,
    pub sessions_revoked: i64,
    pub receipt: Receipt,
}

pub fn pseudonym(user_id: i64) -> String {
    format!("{}{user_id}", validation::PSEUDONYM_PREFIX)
}

/// How an erased user shows where their old row is still reported (a
/// deletion's plan): the pseudonym, no email, names or reason.
pub fn erased_view(user: UserRow) -> UserRow {
    UserRow {
        username: pseudonym(user.id),
        email: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        deactivation_reason: None,
        ..user
    }
}

/// Refuses a reason that names the person being erased (username, email,
/// first or last name, as whole words, any case): the erasure's own entry
/// keeps its reason, and that must not undo the erasure.
pub fn ensure_reason_spares(target: &UserRow, reason: Option<&str>) -> AppResult<()> {
    let Some(reason) = reason else { return Ok(()) };
    let identifying = [
        &target.username,
        &target.email,
        &target.first_name,
        &target.last_name,
    ];
    if identifying
        .iter()
        .any(|name| name.chars().count() >= 2 && mentions(reason, name))
    {
        return Err(AppError::invalid(
            "reason",
            "the reason is kept after the erasure, so it must not name the person (username, email or name): say why without naming them",
        ));
    }
    Ok(())
}

/// Whether `text` holds `name` (case-insensitively) as a whole word: not
/// inside a longer run of letters and digits.
fn mentions(text: &str, name: &str) -> bool {
    let (text, name) = (text.to_lowercase(), name.to_lowercase());
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&name).any(|(at, found)| {
        !word(text[..at].chars().next_back()) && !word(text[at + found.len()..].chars().next())
    })
}

/// The erasure of a locked, not yet anonymized `target` inside the caller's
/// transaction: the profile anonymized, access and sessions ended, the
/// audit entries naming them redacted. The caller writes the closing audit
/// entry with the receipt.
pub async fn anonymize_locked(
    tx: &mut PgConnection,
    target: &UserRow,
    by: ErasedBy<'_>,
) -> AppResult<Receipt> {
    let done = users::anonymize(&mut *tx, target.id).await?;
    let removed = BTreeMap::from([
        ("groupMemberships", done.group_memberships),
        ("userPermissions", done.user_permissions),
        ("loginFailureCounters", done.login_counters),
    ]);
    redact_with_receipt(tx, target.id, by, removed, done.sessions_revoked).await
}

/// What a deletion did with the rows of each relation, by name.
pub struct DeletedRows {
    pub removed: BTreeMap<&'static str, i64>,
    /// The relations whose rows stay, detached.
    pub kept: Vec<&'static str>,
}

/// The erasure of a user whose row a deletion has just removed (inside its
/// transaction): the audit entries naming them are redacted, and their
/// failed-login counter goes.
pub async fn scrub_deleted(
    tx: &mut PgConnection,
    former: &UserRow,
    by: AuditActor<'_>,
    rows: DeletedRows,
) -> AppResult<Receipt> {
    let key = validation::username_key(&former.username);
    login_failures::forget_username(&mut *tx, &key).await?;
    let sessions = rows.removed.get("sessions").copied().unwrap_or(0);
    let by = Via::DeleteUser.by(by);
    let mut receipt = redact_with_receipt(tx, former.id, by, rows.removed, sessions).await?;
    receipt.fields_erased.push("the user row (deleted)");
    receipt.kept = rows.kept;
    Ok(receipt)
}

/// A user of a bulk deletion whose erasure was pending, erased: what the
/// deletion's audit entry shows of them.
pub struct ScrubbedDeletion {
    /// The erased view: the entry names the pseudonym.
    pub former: UserRow,
    pub receipt: Receipt,
}

/// The users of a bulk deletion whose erasure was pending are erased as
/// `deleteUser` erases them: their audit entries redacted, and their
/// deletion's entry showing the pseudonym with the receipt. Returns those,
/// by id; the others need nothing.
pub async fn scrub_pending(
    tx: &mut PgConnection,
    gone: &[&UserRow],
    by: AuditActor<'_>,
) -> AppResult<BTreeMap<i64, ScrubbedDeletion>> {
    let mut scrubbed = BTreeMap::new();
    for user in gone.iter().filter(|u| u.erasure_due_at.is_some()) {
        // A bulk plan counts the whole set, so no per-user rows are known.
        let rows = DeletedRows {
            removed: BTreeMap::new(),
            kept: Vec::new(),
        };
        let receipt = scrub_deleted(&mut *tx, user, by, rows).await?;
        let former = erased_view((*user).clone());
        scrubbed.insert(user.id, ScrubbedDeletion { former, receipt });
    }
    Ok(scrubbed)
}

/// What every erasure ends with, once the person's row is anonymized or
/// gone (the database refuses the redaction before): the receipt, with the
/// digest of the last export read before the redaction rewrites the entries.
async fn redact_with_receipt(
    tx: &mut PgConnection,
    user_id: i64,
    by: ErasedBy<'_>,
    removed: BTreeMap<&'static str, i64>,
    sessions_revoked: i64,
) -> AppResult<Receipt> {
    let export = last_export(&mut *tx, user_id).await?;
    let redacted = erasure::redact_audit_entries(&mut *tx, user_id).await?;
    Ok(receipt(
        user_id,
        by,
        removed,
        redacted,
        export,
        sessions_revoked,
    ))
}

async fn last_export(tx: &mut PgConnection, user_id: i64) -> AppResult<Option<ExportDigest>> {
    Ok(audit::last_export(&mut *tx, user_id)
        .await?
        .map(|(exported_at, sha256)| ExportDigest {
            exported_at,
            sha256,
            format: CANONICAL_FORM,
        }))
}

fn receipt(
    user_id: i64,
    by: ErasedBy<'_>,
    removed: BTreeMap<&'static str, i64>,
    audit_entries_redacted: u64,
    export: Option<ExportDigest>,
    sessions_revoked: i64,
) -> Receipt {
    Receipt {
        receipt: "memberdesk erasure receipt, version 1",
        user_id: ids::encode(Kind::User, user_id),
        pseudonym: pseudonym(user_id),
        erased_at: Utc::now(),
        erased_by: by.actor.username.to_owned(),
        via: by.via.name(),
        fields_erased: FIELDS_ERASED.to_vec(),
        removed,
        audit_entries_redacted,
        sessions_revoked,
        kept: RELATIONS
            .iter()
            .filter(|r| matches!(r.fate, Fate::Kept | Fate::Ended | Fate::Redacted))
            .map(|r| r.name)
            .collect(),
        export,
    }
}

/// Who may ask for (or withdraw) an erasure: the person themself, or a
/// superuser for anyone.
fn request_rule(actor: &Actor, user_id: i64) -> Rule {
    match actor.user_id() == Some(user_id) {
        true => Rule::Authenticated,
        false => Rule::Superuser,
    }
}

/// The caller and the person an erasure request is about, both locked
/// under [`request_rule`]; a person already anonymized has nothing left to
/// ask about.
async fn lock_for_request(tx: &mut PgConnection, actor: &Actor, user_id: i64) -> AppResult<Acting> {
    let rule = request_rule(actor, user_id);
    let acting = authority::lock_caller_and_target(tx, actor, rule, user_id).await?;
    if acting.target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    Ok(acting)
}

/// `requestErasure`: deactivates the user now (sessions revoked, groups and
/// direct permissions taken away and remembered) and schedules their
/// anonymization after `grace`; with a zero grace period it is done at once,
/// in the same transaction, by `system` as a due request is. Asking again
/// while a request is pending changes nothing.
pub async fn request_erasure(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    reason: Reason,
    grace: chrono::Duration,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let Acting { actor, target } = lock_for_request(&mut tx, actor, user_id).await?;
    if target.erasure_due_at.is_some() {
        tx.commit().await?;
        return Ok(target);
    }
    authority::ensure_superusers_remain(&mut tx, &[&target]).await?;
    let removal = AccessRemoval {
        groups: true,
        permissions: true,
        staff: false,
    };
    let done = deactivations::deactivate(&mut tx, &[target.id], removal, reason.as_deref()).await?;
    let sessions_revoked = done.first().map_or(0, |d| d.sessions_revoked);
    let due = Utc::now() + grace;
    erasure::schedule(&mut *tx, target.id, due).await?;
    let details = json!({
        "dueAt": due, "graceDays": grace.num_days(),
        "sessionsRevoked": sessions_revoked, "wasActive": target.is_active,
    });
    AuditEntry::new(AuditAction::ErasureRequested, Target::User(&target))
        .by(&actor)
        .reason(reason.as_deref())
        .details(details)
        .record(&mut *tx)
        .await?;
    if grace <= chrono::Duration::zero() {
        erase_due(&mut tx, target.id).await?;
    }
    let user = users::find(&mut *tx, target.id)
        .await
        .or_not_found("user")?;
    tx.commit().await?;
    Ok(user)
}

/// `cancelErasure`: withdraws a pending request before it falls due. The
/// user stays deactivated until someone reactivates them.
pub async fn cancel_erasure(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    reason: Option<String>,
) -> AppResult<UserRow> {
    let reason = validation::reason("reason", reason.as_deref())?;
    let mut tx = pool.begin().await?;
    let Acting { actor, target } = lock_for_request(&mut tx, actor, user_id).await?;
    let due = target
        .erasure_due_at
        .ok_or_else(|| AppError::invalid("userId", "no erasure is pending for this user"))?;
    if due <= Utc::now() {
        return Err(AppError::invalid(
            "userId",
            format!("this erasure fell due at {due}: it can no longer be cancelled"),
        ));
    }
    erasure::cancel(&mut *tx, target.id).await?;
    let user = users::find(&mut *tx, target.id)
        .await
        .or_not_found("user")?;
    AuditEntry::new(AuditAction::ErasureCancelled, Target::User(&user))
        .by(&actor)
        .reason(reason.as_deref())
        .details(json!({ "wasDueAt": due }))
        .record_and_commit(tx)
        .await?;
    Ok(user)
}

/// Anonymizes the due request of `user_id` (its row locked by the caller)
/// as `system`, and writes the anonymization's entry with the receipt.
async fn erase_due(tx: &mut PgConnection, user_id: i64) -> AppResult<Receipt> {
    let target = users::find_for_update(&mut *tx, user_id)
        .await
        .or_not_found("user")?;
    authority::ensure_superusers_remain(&mut *tx, &[&target]).await?;
    let by = Via::ErasureRequest.by(AuditActor::from(&Actor::System));
    let receipt = anonymize_locked(&mut *tx, &target, by).await?;
    let user = users::find(&mut *tx, user_id).await.or_not_found("user")?;
    AuditEntry::new(AuditAction::UserAnonymized, Target::User(&user))
        .by(&Actor::System)
        .reason(Some("a requested erasure fell due"))
        .details(receipt.to_json())
        .record(&mut *tx)
        .await?;
    Ok(receipt)
}

/// What `run-erasures` did, request by request.
#[derive(Debug, Default)]
pub struct ErasureRun {
    pub erased: Vec<Receipt>,
    /// Requests that failed (each rolled back, left due for the next run).
    pub failed: Vec<(i64, AppError)>,
}

/// One request of a run, as it is done.
pub enum Step<'a> {
    Erased(&'a Receipt),
    Failed(i64, &'a AppError),
}

/// Erases every due request, each in its own transaction; `progress` hears
/// of each one as it is done. Safe to run twice at once: see
/// [`erasure::claim_next_due`].
pub async fn run_due_erasures(
    pool: &PgPool,
    mut progress: impl FnMut(Step<'_>),
) -> AppResult<ErasureRun> {
    let mut run = ErasureRun::default();
    loop {
        let mut tx = pool.begin().await?;
        let failed: Vec<i64> = run.failed.iter().map(|(id, _)| *id).collect();
        let Some(id) = erasure::claim_next_due(&mut tx, &failed).await? else {
            tx.rollback().await?;
            return Ok(run);
        };
        match erase_due(&mut tx, id).await {
            Ok(receipt) => {
                tx.commit().await?;
                progress(Step::Erased(&receipt));
                run.erased.push(receipt);
            }
            Err(err) => {
                tx.rollback().await?;
                progress(Step::Failed(id, &err));
                run.failed.push((id, err));
            }
        }
    }
}

/// The requests a run would erase now: ids and when each fell due.
pub async fn due_erasures(pool: &PgPool) -> AppResult<Vec<(i64, DateTime<Utc>)>> {
    Ok(erasure::due(pool).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pseudonym_prefix_is_its_own_username_key() {
        // The constraint of migration 0006 and the validation rule compare
        // keys with the literal prefix; they agree only if it is a fixed point.
        assert_eq!(
            validation::username_key(validation::PSEUDONYM_PREFIX),
            validation::PSEUDONYM_PREFIX
        );
        assert_eq!(pseudonym(42), "deleted-user-42");
        assert_eq!(validation::username_key(&pseudonym(42)), pseudonym(42));
    }

    #[test]
    fn a_reason_names_someone_only_as_a_whole_word() {
        assert!(mentions(
            "Bob Person (bob@example.org) left",
            "bob@example.org"
        ));
        assert!(mentions("asked by BOB today", "bob"));
        assert!(!mentions("a bobsled accident", "bob"));
        assert!(!mentions("legal request", "al"));
        assert!(mentions("Al asked", "al"));
    }
}
