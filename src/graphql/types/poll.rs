use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::User;
use crate::error::AppError;
use crate::graphql::context::{load, load_count, load_list};
use crate::graphql::loaders::{
    ChoiceById, ChoicesOfQuestion, QuestionById, UserById, VoteCountOfChoice,
};
use crate::ids::{self, Kind};
use crate::store::polls::{ChoiceRow, QuestionRow, VoteRow};

/// A poll question. Its author may be deleted; the question stays.
pub struct Question(pub QuestionRow);

/// A poll question. Its author may be deleted; the question stays, detached.
#[Object]
impl Question {
    /// Opaque id of the question.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::Question, self.0.id))
    }
    /// The question as asked.
    async fn text(&self) -> &str {
        &self.0.text
    }
    /// When it was published.
    async fn pub_date(&self) -> DateTime<Utc> {
        self.0.pub_date
    }
    /// When it was archived (`archiveQuestion`); null while it is live.
    /// An archived question is left out of `questions` and takes no votes.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
    /// Who created the question; null once that user is deleted. Its fields
    /// other than `id` and `username` need `auth.view_user` (see `User`).
    async fn created_by(&self, ctx: &Context<'_>) -> Result<Option<User>, AppError> {
        let Some(id) = self.0.created_by else {
            return Ok(None);
        };
        Ok(load(ctx, UserById(id)).await?.map(User::new))
    }
    /// Its answers, in the order given at creation.
    #[graphql(complexity = "crate::graphql::cost::choices(child_complexity)")]
    async fn choices(&self, ctx: &Context<'_>) -> Result<Vec<Choice>, AppError> {
        load_list(ctx, ChoicesOfQuestion(self.0.id), Choice).await
    }
}

pub struct Choice(pub ChoiceRow);

/// One answer of a question; `voteCount` is its tally.
#[Object]
impl Choice {
    /// Opaque id of the choice; pass it to `castVote`.
    async fn id(&self) -> ID {
        ID(ids::encode(Kind::Choice, self.0.id))
    }
    /// The answer as shown.
    async fn text(&self) -> &str {
        &self.0.text
    }
    /// The question this answers.
    async fn question(&self, ctx: &Context<'_>) -> Result<Question, AppError> {
        load(ctx, QuestionById(self.0.question_id))
            .await?
            .map(Question)
            .ok_or(AppError::NotFound("question"))
    }
    /// The tally: every vote on this choice, detached ones included.
    async fn vote_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        load_count(ctx, VoteCountOfChoice(self.0.id)).await
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
            .map(Choice)
            .ok_or(AppError::NotFound("choice"))
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
