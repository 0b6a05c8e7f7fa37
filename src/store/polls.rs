//! Questions, their choices and the votes cast on them.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor, QueryBuilder};

use super::PageAfter;

#[derive(Debug, Clone, FromRow)]
pub struct QuestionRow {
    pub id: i64,
    pub text: String,
    pub pub_date: DateTime<Utc>,
    pub created_by: Option<i64>,
    /// Set while the question is archived (soft-deleted).
    pub archived_at: Option<DateTime<Utc>>,
}

/// The columns of a [`QuestionRow`], for every statement that reads one.
macro_rules! question_columns {
    () => {
        "id, text, pub_date, created_by, archived_at"
    };
}

/// The `SELECT` of a [`QuestionRow`] from `questions` where `$condition` holds (with
/// any order or lock clause after it), as one literal for `sqlx`.
macro_rules! questions_where {
    ($condition:literal) => {
        concat!(
            "SELECT ",
            question_columns!(),
            " FROM questions WHERE ",
            $condition
        )
    };
}

#[derive(Debug, Clone, FromRow)]
pub struct ChoiceRow {
    pub id: i64,
    pub question_id: i64,
    pub text: String,
}

/// The columns of a [`ChoiceRow`], for every statement that reads one.
macro_rules! choice_columns {
    () => {
        "id, question_id, text"
    };
}

#[derive(Debug, Clone, FromRow)]
pub struct VoteRow {
    pub id: i64,
    pub choice_id: i64,
    pub question_id: i64,
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub const ONE_VOTE_PER_QUESTION: &str = "votes_one_per_user_per_question";

/// Whether a question is live (listed, open to votes) or archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Live,
    Archived,
}

/// Which questions a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    LiveOnly,
    WithArchived,
}

/// Every question the listing shows, newest first.
pub async fn questions(
    ex: impl PgExecutor<'_>,
    listing: Listing,
) -> sqlx::Result<Vec<QuestionRow>> {
    sqlx::query_as(questions_where!(
        "($1 OR archived_at IS NULL) ORDER BY pub_date DESC, id DESC"
    ))
    .bind(listing == Listing::WithArchived)
    .fetch_all(ex)
    .await
}

pub async fn find_questions(
    ex: impl PgExecutor<'_>,
    ids: &[i64],
) -> sqlx::Result<Vec<QuestionRow>> {
    super::rows_for_ids(ex, questions_where!("id = ANY($1)"), ids).await
}

pub async fn find_choices(ex: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<ChoiceRow>> {
    let sql = concat!(
        "SELECT ",
        choice_columns!(),
        " FROM choices WHERE id = ANY($1)"
    );
    super::rows_for_ids(ex, sql, ids).await
}

/// The choices of each of `question_ids`, in the order they were given.
pub async fn choices_of_questions(
    ex: impl PgExecutor<'_>,
    question_ids: &[i64],
) -> sqlx::Result<Vec<ChoiceRow>> {
    let sql = concat!(
        "SELECT ",
        choice_columns!(),
        " FROM choices WHERE question_id = ANY($1) ORDER BY question_id, position"
    );
    super::rows_for_ids(ex, sql, question_ids).await
}

/// Whose votes [`vote_counts`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VotesOf {
    Choice,
    User,
}

/// How many votes each of `ids` has (ids with none are absent): the
/// choices' tallies, or the users' votes.
pub async fn vote_counts(
    ex: impl PgExecutor<'_>,
    of: VotesOf,
    ids: &[i64],
) -> sqlx::Result<Vec<(i64, i64)>> {
    let sql = match of {
        VotesOf::Choice => {
            "SELECT choice_id, count(*) FROM votes WHERE choice_id = ANY($1) GROUP BY choice_id"
        }
        VotesOf::User => {
            "SELECT user_id, count(*) FROM votes WHERE user_id = ANY($1) GROUP BY user_id"
        }
    };
    super::rows_for_ids(ex, sql, ids).await
}

/// One page of a user's votes, newest first.
pub async fn votes_of_user(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    page: PageAfter,
) -> sqlx::Result<Vec<VoteRow>> {
    let sql = "SELECT id, choice_id, question_id, user_id, created_at FROM votes \
               WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3";
    super::page_of_owner(ex, sql, user_id, page).await
}

/// Inserts a question with its choices, in order.
pub async fn insert_question(
    conn: &mut PgConnection,
    text: &str,
    created_by: Option<i64>,
    choices: &[String],
) -> sqlx::Result<QuestionRow> {
    let question: QuestionRow = sqlx::query_as(concat!(
        "INSERT INTO questions (text, created_by) VALUES ($1, $2) RETURNING ",
        question_columns!()
    ))
    .bind(text)
    .bind(created_by)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO choices (question_id, text, position) \
         SELECT $1, t.text, t.position FROM unnest($2::text[]) WITH ORDINALITY AS t(text, position)",
    )
    .bind(question.id)
    .bind(choices)
    .execute(&mut *conn)
    .await?;
    Ok(question)
}

pub async fn insert_vote(
    ex: impl PgExecutor<'_>,
    choice: &ChoiceRow,
    user_id: i64,
) -> sqlx::Result<VoteRow> {
    sqlx::query_as(
        "INSERT INTO votes (choice_id, question_id, user_id) VALUES ($1, $2, $3) \
         RETURNING id, choice_id, question_id, user_id, created_at",
    )
    .bind(choice.id)
    .bind(choice.question_id)
    .bind(user_id)
    .fetch_one(ex)
    .await
}

/// The question, locked until the transaction ends: no vote, choice or
/// deletion touches it meanwhile (votes and choices need a share lock on it).
pub async fn lock_question(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<QuestionRow>> {
    super::row_by_key(ex, questions_where!("id = $1 FOR UPDATE"), id).await
}

/// The question, share-locked until the transaction ends: a vote reads
/// whether it is archived this way, so that archiving it (which locks it for
/// update) waits for the vote, or the vote sees it archived. Votes on one
/// question do not wait for each other.
pub async fn share_question(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<QuestionRow>> {
    super::row_by_key(ex, questions_where!("id = $1 FOR SHARE"), id).await
}

/// Archives the question now, or brings it back (`Live`); the row after.
pub async fn set_standing(
    ex: impl PgExecutor<'_>,
    id: i64,
    standing: Standing,
) -> sqlx::Result<QuestionRow> {
    let sql = concat!(
        "UPDATE questions SET archived_at = CASE WHEN $2 THEN now() END WHERE id = $1 RETURNING ",
        question_columns!()
    );
    super::updated_row(ex, sql, id, standing == Standing::Archived).await
}

/// How many questions were archived before `before`.
pub async fn count_archived_before(
    ex: impl PgExecutor<'_>,
    before: DateTime<Utc>,
) -> sqlx::Result<i64> {
    let sql = "SELECT count(*) FROM questions WHERE archived_at < $1";
    super::count_by_key(ex, sql, before).await
}

/// The next `limit` questions after id `after` that were archived before
/// `before`, locked, in id order. Those another transaction holds are
/// skipped, not waited for: two purges running at once take different
/// questions, and a question being voted on or restored is left to the next
/// run.
pub async fn lock_archived_batch(
    ex: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<QuestionRow>> {
    sqlx::query_as(questions_where!(
        "archived_at < $1 AND id > $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
    ))
    .bind(before)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
}

/// The choice, locked until the transaction ends.
pub async fn lock_choice(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<ChoiceRow>> {
    let sql = concat!(
        "SELECT ",
        choice_columns!(),
        " FROM choices WHERE id = $1 FOR UPDATE"
    );
    super::row_by_key(ex, sql, id).await
}

/// How many choices the question has.
pub async fn count_choices(ex: impl PgExecutor<'_>, question_id: i64) -> sqlx::Result<i64> {
    let sql = "SELECT count(*) FROM choices WHERE question_id = $1";
    super::count_by_key(ex, sql, question_id).await
}

/// Which questions a bulk deletion is about. `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuestionFilter {
    /// True: archived questions only (`archived_at` set); false: the others.
    pub archived: Option<bool>,
    /// Archived before this instant.
    pub archived_before: Option<DateTime<Utc>>,
    /// Published (created) before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Created by this user.
    pub created_by: Option<i64>,
}

impl QuestionFilter {
    /// Whether the filter matches every question.
    pub fn is_empty(&self) -> bool {
        // The derived comparison reads every field, so a new one cannot be
        // left out here.
        *self == Self::default()
    }
}

/// The questions with these ids, locked, in id order (a fixed order, so two
/// bulk operations cannot deadlock on each other).
pub async fn lock_questions(
    ex: impl PgExecutor<'_>,
    ids: &[i64],
) -> sqlx::Result<Vec<QuestionRow>> {
    super::rows_for_ids(
        ex,
        questions_where!("id = ANY($1) ORDER BY id FOR UPDATE"),
        ids,
    )
    .await
}

/// Every question matching `filter`, locked, in id order.
pub async fn lock_matching_questions(
    ex: impl PgExecutor<'_>,
    filter: &QuestionFilter,
) -> sqlx::Result<Vec<QuestionRow>> {
    let mut qb = QueryBuilder::new(questions_where!("TRUE"));
    super::push_is_set(&mut qb, "archived_at", filter.archived);
    if let Some(before) = filter.archived_before {
        qb.push(" AND archived_at < ").push_bind(before);
    }
    if let Some(before) = filter.created_before {
        qb.push(" AND pub_date < ").push_bind(before);
    }
    if let Some(user_id) = filter.created_by {
        qb.push(" AND created_by = ").push_bind(user_id);
    }
    qb.push(" ORDER BY id FOR UPDATE");
    qb.build_query_as().fetch_all(ex).await
}
