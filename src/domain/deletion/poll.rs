//! Deleting a question (`polls.delete_question`) or one of its choices
//! (`polls.change_question`: removing an answer is changing the question).
//!
//! A question's choices and votes cannot exist without it, so SET_NULL means
//! nothing for either (`INVALID_INPUT`, field `policy`); PROTECT refuses
//! while votes exist; CASCADE deletes them (the tallies go with them). A
//! question keeps at least two choices, as at its creation.
//!
//! The question row is locked for the whole deletion (also of a choice):
//! no vote is cast on it meanwhile, and two deletions of its choices run one
//! after the other, so they cannot together leave it with one.

use sqlx::{PgConnection, PgPool};

use super::plan::{check_request, finish};
use super::{DeleteOutcome, DeleteRequest, Target, TargetKind};
use crate::domain::access::{CHANGE_QUESTION, DELETE_QUESTION, Rule};
use crate::domain::polls::MIN_CHOICES;
use crate::domain::{Actor, authority};
use crate::error::{AppError, AppResult};
use crate::store::polls::{self, ChoiceRow};

/// The question `id`, if the caller may plan its deletion.
pub(super) async fn question_previewable(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
) -> AppResult<Target> {
    Rule::Permission(DELETE_QUESTION).check_actor(actor)?;
    let question = polls::find_questions(&mut *conn, &[id])
        .await?
        .pop()
        .ok_or(AppError::NotFound("question"))?;
    Ok(Target::Question(question))
}

/// The choice `id`, if the caller may plan its deletion and its question
/// would keep enough choices.
pub(super) async fn choice_previewable(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
) -> AppResult<Target> {
    Rule::Permission(CHANGE_QUESTION).check_actor(actor)?;
    let choice = polls::find_choices(&mut *conn, &[id])
        .await?
        .pop()
        .ok_or(AppError::NotFound("choice"))?;
    ensure_choices_remain(conn, &choice).await?;
    Ok(Target::Choice(choice))
}

/// Refuses to leave `choice`'s question with fewer than [`MIN_CHOICES`].
async fn ensure_choices_remain(conn: &mut PgConnection, choice: &ChoiceRow) -> AppResult<()> {
    let choices = polls::count_choices(&mut *conn, choice.question_id).await?;
    if choices <= MIN_CHOICES as i64 {
        return Err(AppError::invalid(
            "id",
            format!(
                "a question keeps at least {MIN_CHOICES} choices and this one has {choices}: \
                 delete the question instead, or add a choice first"
            ),
        ));
    }
    Ok(())
}

/// Deletes the question under the request's policy (PROTECT while it has
/// votes; CASCADE with its choices and votes), or in preview only plans it.
/// Audited `QUESTION_DELETED`.
pub async fn delete_question(
    pool: &PgPool,
    actor: &Actor,
    request: DeleteRequest,
) -> AppResult<DeleteOutcome> {
    let steps = check_request(TargetKind::Question, &request)?;
    let mut tx = pool.begin().await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(DELETE_QUESTION)).await?;
    let question = polls::lock_question(&mut *tx, request.id)
        .await?
        .ok_or(AppError::NotFound("question"))?;
    finish(tx, actor, Target::Question(question), &steps, request).await
}

/// Deletes the choice under the request's policy (PROTECT while it has
/// votes; CASCADE with its votes), or in preview only plans it; its question
/// keeps at least two choices. Audited `CHOICE_DELETED`.
pub async fn delete_choice(
    pool: &PgPool,
    actor: &Actor,
    request: DeleteRequest,
) -> AppResult<DeleteOutcome> {
    let steps = check_request(TargetKind::Choice, &request)?;
    let question_id = polls::find_choices(pool, &[request.id])
        .await?
        .pop()
        .ok_or(AppError::NotFound("choice"))?
        .question_id;
    let mut tx = pool.begin().await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(CHANGE_QUESTION)).await?;
    polls::lock_question(&mut *tx, question_id).await?;
    let choice = polls::lock_choice(&mut *tx, request.id)
        .await?
        .ok_or(AppError::NotFound("choice"))?;
    ensure_choices_remain(&mut tx, &choice).await?;
    finish(tx, actor, Target::Choice(choice), &steps, request).await
}
