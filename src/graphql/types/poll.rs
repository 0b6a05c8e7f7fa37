use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::User;
use crate::error::{AppError, OrNotFound};
use crate::graphql::context::{load, load_count, load_list};
use crate::graphql::loaders::{
    ChoiceById, ChoicesOfQuestion, QuestionById, UserById, VoteCountOfChoice,
};
use crate::ids::{self, Kind};
use crate::store::polls::{ChoiceRow, QuestionRow, VoteRow};

/// A poll question. Its author may be deleted; the question stays, detached.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Question {
    /// Opaque id of the question.
    id: ID,
    /// The question as asked.
    text: String,
    /// When it was published.
    pub_date: DateTime<Utc>,
    /// When it was archived (`archiveQuestion`); null while it is live.
    /// An archived question is left out of `questions` and takes no votes.
    archived_at: Option<DateTime<Utc>>,
    /// The id the store knows it by, for the fields loaded through it.
    #[graphql(skip)]
    row_id: i64,
    /// Its author's id, for `createdBy`.
    #[graphql(skip)]
    author_id: Option<i64>,
}

impl From<QuestionRow> for Question {
    fn from(row: QuestionRow) -> Self {
        Question {
            id: ID(ids::encode(Kind::Question, row.id)),
            text: row.text,
            pub_date: row.pub_date,
            archived_at: row.archived_at,
            row_id: row.id,
            author_id: row.created_by,
        }
    }
}

#[ComplexObject]
impl Question {
    /// Who created the question; null once that user is deleted. Its fields
    /// other than `id` and `username` need `auth.view_user` (see `User`).
    async fn created_by(&self, ctx: &Context<'_>) -> Result<Option<User>, AppError> {
        let Some(id) = self.author_id else {
            return Ok(None);
        };
        Ok(load(ctx, UserById(id)).await?.map(User::new))
    }
    /// Its answers, in the order given at creation.
    #[graphql(complexity = "crate::graphql::cost::choices(child_complexity)")]
    async fn choices(&self, ctx: &Context<'_>) -> Result<Vec<Choice>, AppError> {
        load_list(ctx, ChoicesOfQuestion(self.row_id), Choice::from).await
    }
}

/// One answer of a question; `voteCount` is its tally.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Choice {
    /// Opaque id of the choice; pass it to `castVote`.
    id: ID,
    /// The answer as shown.
    text: String,
    /// The id the store knows it by, for the fields loaded through it.
    #[graphql(skip)]
    row_id: i64,
    /// Its question's id, for `question`.
    #[graphql(skip)]
    question_id: i64,
}

impl From<ChoiceRow> for Choice {
    fn from(row: ChoiceRow) -> Self {
        Choice {
            id: ID(ids::encode(Kind::Choice, row.id)),
            text: row.text,
            row_id: row.id,
            question_id: row.question_id,
        }
    }
}

#[ComplexObject]
impl Choice {
    /// The question this answers.
    async fn question(&self, ctx: &Context<'_>) -> Result<Question, AppError> {
        load(ctx, QuestionById(self.question_id))
            .await?
            .map(Question::from)
            .or_not_found("question")
    }
    /// The tally: every vote on this choice, detached ones included.
    async fn vote_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        load_count(ctx, VoteCountOfChoice(self.row_id)).await
    }
}

/// One vote. Deleting its user under SET_NULL detaches it; the tally keeps it.
pub struct Vote(pub VoteRow);

/// One vote. Deleting its user under `SET_NULL`, or anonymizing them, detaches it; `CASCADE` deletes it. The tally counts it while it exists.
#[Object]
impl Vote {
    /// Opaque id of the vote.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::Vote, self.0.id))
    }
    /// The choice voted for.
    async fn choice(&self, ctx: &Context<'_>) -> Result<Choice, AppError> {
        load(ctx, ChoiceById(self.0.choice_id))
            .await?
            .map(Choice::from)
            .or_not_found("choice")
    }
    /// When the vote was cast.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The voter; null once detached. Its fields other than `id` and `username` are for the voter themselves and staff with `auth.view_user` (see `User`).
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>, AppError> {
        match self.0.user_id {
            Some(id) => Ok(load(ctx, UserById(id)).await?.map(User::new)),
            None => Ok(None),
        }
    }
    /// The voter's username, or `Deleted user` once detached or anonymized.
    async fn voter_name(&self, ctx: &Context<'_>) -> Result<String, AppError> {
        let user = match self.0.user_id {
            Some(id) => load(ctx, UserById(id)).await?,
            None => None,
        };
        Ok(match user {
            Some(u) if u.anonymized_at.is_none() => u.username,
            _ => DELETED_USER.to_owned(),
        })
    }
}

pub const DELETED_USER: &str = "Deleted user";
