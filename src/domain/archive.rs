//! Soft delete for content: a question is archived (it leaves the
//! `questions` listing and takes no new votes, while its choices, votes and
//! tallies stay), restored, or, once it has been archived long enough,
//! purged for good.
//!
//! Django leaves soft deletion to each project (an `is_deleted` flag and a
//! manager that hides it); hard deletion afterwards is then a second delete
//! path with its own idea of what goes. Here the purge is the bulk deletion
//! of `deleteQuestions` under CASCADE, batch by batch: the same registry,
//! the same set-based statements, the same `QUESTION_DELETED` entries, with
//! `system` as the actor.
//!
//! Archiving and restoring lock the question for update; a vote reads it
//! share-locked (`domain::polls::cast_vote`), so a vote either lands before
//! the archiving or sees the question archived. Archiving an archived
//! question, or restoring a live one, changes nothing and is not audited,
//! as a repeated deactivation.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::PgPool;

use super::access::{DELETE_QUESTION, Rule};
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Begun};
use super::deletion::{self, BulkDelete, BulkDeletion, DeletePolicy, QuestionSelection};
use super::validation::Reason;
use super::{Actor, Mode};
use crate::error::{AppError, AppResult, OrNotFound};
use crate::store::polls::{self, QuestionFilter, QuestionRow, Standing};

/// Archives the question: it leaves `questions` and takes no new votes;
/// everything it holds stays. Audited `QUESTION_ARCHIVED` (not when it was
/// archived already).
pub async fn archive_question(
    pool: &PgPool,
    actor: &Actor,
    id: i64,
    reason: Reason,
) -> AppResult<QuestionRow> {
    set_standing(pool, actor, id, Change::Archive(reason)).await
}

/// Brings an archived question back, as it was. Audited `QUESTION_RESTORED`
/// (not when it was live already).
pub async fn restore_question(pool: &PgPool, actor: &Actor, id: i64) -> AppResult<QuestionRow> {
    set_standing(pool, actor, id, Change::Restore).await
}

/// What [`set_standing`] does to a question.
enum Change {
    Archive(Reason),
    Restore,
}

impl Change {
    fn standing(&self) -> Standing {
        match self {
            Change::Archive(_) => Standing::Archived,
            Change::Restore => Standing::Live,
        }
    }
}

async fn set_standing(
    pool: &PgPool,
    actor: &Actor,
    id: i64,
    change: Change,
) -> AppResult<QuestionRow> {
    let Begun { mut tx, actor } =
        authority::begin(pool, actor, Rule::Permission(DELETE_QUESTION)).await?;
    let question = polls::lock_question(&mut *tx, id)
        .await
        .or_not_found("question")?;
    let standing = change.standing();
    let already = match standing {
        Standing::Archived => question.archived_at.is_some(),
        Standing::Live => question.archived_at.is_none(),
    };
    if already {
        // Nothing to do, nothing to audit.
        tx.commit().await?;
        return Ok(question);
    }
    let changed = polls::set_standing(&mut *tx, id, standing).await?;
    let (action, reason) = match &change {
        Change::Archive(reason) => (AuditAction::QuestionArchived, reason.as_deref()),
        Change::Restore => (AuditAction::QuestionRestored, None),
    };
    AuditEntry::new(action, Target::Described(format!("question {id}")))
        .by(&actor)
        .reason(reason)
        .details(json!({ "questionId": id, "text": changed.text }))
        .record_and_commit(tx)
        .await?;
    Ok(changed)
}

/// What `purge-archived` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Purge {
    /// Questions archived more than this many days ago.
    pub older_than_days: u32,
    /// Questions per transaction.
    pub batch_size: i64,
    /// [`Mode::Preview`] counts what would go and changes nothing.
    pub mode: Mode,
}

impl Purge {
    /// The reason each `QUESTION_DELETED` entry of the run gives.
    fn reason(&self) -> Reason {
        Reason::system(format!(
            "archived for more than {} days",
            self.older_than_days
        ))
    }
}

/// How a purge went so far (or, previewed, what it would do).
#[derive(Debug, Default)]
pub struct PurgeRun {
    /// Archived questions old enough when the run started.
    pub matched: i64,
    /// Questions deleted (previewed: that would be).
    pub deleted: usize,
    /// Rows deleted with them, per relation (`choices`, `votes`).
    pub with: BTreeMap<String, i64>,
}

impl PurgeRun {
    fn add(&mut self, done: &BulkDeletion) {
        self.deleted += done.deleted.len();
        for relation in &done.plan.effects.deleted {
            *self.with.entry(relation.relation.clone()).or_default() += relation.count;
        }
    }
}

/// Deletes, under CASCADE with their choices and votes, the questions
/// archived more than `purge.older_than_days` days ago, by `actor`
/// (`system` from the command line), `purge.batch_size` questions per
/// transaction: a run cut short keeps the batches it finished, and a second
/// run at the same time takes other questions. `progress` hears after every
/// batch. Previewed, one plan over all of them, nothing changed.
pub async fn purge_archived(
    pool: &PgPool,
    actor: &Actor,
    purge: Purge,
    mut progress: impl FnMut(&PurgeRun),
) -> AppResult<PurgeRun> {
    // Fixed once: a question archived while the run goes on is not old enough.
    let before = archived_before(purge.older_than_days)?;
    let mut run = PurgeRun {
        matched: polls::count_archived_before(pool, before).await?,
        ..PurgeRun::default()
    };
    if purge.mode == Mode::Preview {
        let filter = QuestionFilter {
            archived_before: Some(before),
            ..QuestionFilter::default()
        };
        let done = delete_batch(pool, actor, purge, QuestionSelection::Filter(filter)).await?;
        run.add(&done);
        return Ok(run);
    }
    let mut after = 0;
    loop {
        let batch = QuestionSelection::ArchivedBatch {
            before,
            after,
            limit: purge.batch_size,
        };
        let done = delete_batch(pool, actor, purge, batch).await?;
        let Some(&last) = done.deleted.last() else {
            break;
        };
        after = last;
        run.add(&done);
        progress(&run);
        // A short batch found every question left (but those another run
        // holds, which it deletes): asking again would find nothing.
        if done.deleted.len() < purge.batch_size as usize {
            break;
        }
    }
    Ok(run)
}

/// The instant `days` days ago; refused when it is before anything
/// PostgreSQL or chrono can hold.
fn archived_before(days: u32) -> AppResult<DateTime<Utc>> {
    Utc::now()
        .checked_sub_signed(Duration::days(i64::from(days)))
        .ok_or_else(|| AppError::invalid("olderThanDays", "too many days"))
}

/// One `deleteQuestions` CASCADE of `selection`, as the purge's actor.
async fn delete_batch(
    pool: &PgPool,
    actor: &Actor,
    purge: Purge,
    selection: QuestionSelection,
) -> AppResult<BulkDeletion> {
    let request = BulkDelete {
        selection,
        policy: DeletePolicy::Cascade,
        mode: purge.mode,
        plan_token: None,
        reason: purge.reason(),
    };
    deletion::delete_questions(pool, actor, request).await
}
