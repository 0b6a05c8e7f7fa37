//! Questions and votes: the members' contributions that deletion must respect.

use serde_json::json;
use sqlx::PgPool;

use super::access::{ADD_QUESTION, Rule};
use super::actor::CurrentUser;
use super::audit::{AuditAction, AuditEntry, Target};
use super::authority::{self, Begun};
use super::{Actor, validation};
use crate::error::{AppError, AppResult, OnConstraint, OrNotFound};
use crate::store::polls::{self, QuestionRow, VoteRow};

pub const MAX_CHOICES: usize = 20;
/// A question offers a choice: at least two answers, at creation and after
/// any of its choices is deleted.
pub const MIN_CHOICES: usize = 2;
const MAX_CHOICE_TEXT: usize = 200;

pub async fn create_question(
    pool: &PgPool,
    actor: &Actor,
    text: &str,
    choices: &[String],
) -> AppResult<QuestionRow> {
    let text = validation::line("text", text, validation::MAX_TEXT, true)?;
    if choices.len() < MIN_CHOICES || choices.len() > MAX_CHOICES {
        return Err(AppError::invalid(
            "choices",
            format!("a question needs {MIN_CHOICES} to {MAX_CHOICES} choices"),
        ));
    }
    let mut cleaned = Vec::with_capacity(choices.len());
    for choice in choices {
        let choice = validation::line("choices", choice, MAX_CHOICE_TEXT, true)?;
        if cleaned.contains(&choice) {
            return Err(AppError::invalid(
                "choices",
                format!("choice '{choice}' appears twice"),
            ));
        }
        cleaned.push(choice);
    }
    let Begun { mut tx, actor } =
        authority::begin(pool, actor, Rule::Permission(ADD_QUESTION)).await?;
    let question = polls::insert_question(&mut tx, &text, actor.user_id(), &cleaned).await?;
    let details = json!({ "questionId": question.id, "choices": cleaned.len() });
    AuditEntry::new(
        AuditAction::QuestionCreated,
        Target::Described(format!("question {}", question.id)),
    )
    .by(&actor)
    .details(details)
    .record_and_commit(tx)
    .await?;
    Ok(question)
}

/// One vote per user per question, enforced by a unique index so that two
/// concurrent votes by the same user cannot both land. An archived question
/// takes no new votes: the vote reads it share-locked, so it either sees
/// the question archived or is counted before the archiving (see
/// `domain::archive`).
pub async fn cast_vote(pool: &PgPool, voter: &CurrentUser, choice_id: i64) -> AppResult<VoteRow> {
    let choice = polls::find_choices(pool, &[choice_id])
        .await?
        .pop()
        .or_not_found("choice")?;
    let mut tx = pool.begin().await?;
    // A voter deactivated since the request started casts nothing.
    authority::recheck(&mut tx, &Actor::User(voter.clone()), Rule::Authenticated).await?;
    let question = polls::share_question(&mut *tx, choice.question_id)
        .await
        .or_not_found("choice")?;
    if question.archived_at.is_some() {
        return Err(AppError::invalid(
            "choiceId",
            "this question is archived: it takes no new votes",
        ));
    }
    let vote = polls::insert_vote(&mut *tx, &choice, voter.id)
        .await
        .on_constraint(polls::ONE_VOTE_PER_QUESTION, || {
            AppError::invalid("choiceId", "you have already voted on this question")
        })?;
    tx.commit().await?;
    Ok(vote)
}
