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

use sqlx::PgConnection;

use crate::domain::polls::MIN_CHOICES;
use crate::error::{AppError, AppResult};
use crate::store::polls::{self, ChoiceRow};

/// Refuses to leave `choice`'s question with fewer than [`MIN_CHOICES`].
pub(super) async fn ensure_choices_remain(
    conn: &mut PgConnection,
    choice: &ChoiceRow,
) -> AppResult<()> {
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

/// Locks the choice `id` after its question: votes and choice changes take
/// the question first, so two deletions of its choices run one after the
/// other.
pub(super) async fn lock_choice(conn: &mut PgConnection, id: i64) -> AppResult<Option<ChoiceRow>> {
    let Some(choice) = polls::find_choices(&mut *conn, &[id]).await?.pop() else {
        return Ok(None);
    };
    polls::lock_question(&mut *conn, choice.question_id).await?;
    Ok(polls::lock_choice(&mut *conn, id).await?)
}
