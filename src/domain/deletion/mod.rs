//! Policy-aware deletion of any record (a user, a group, a question, a
//! choice), one or many at once, previewed before it is done.
//!
//! Django's admin decides a cascade once per model and, to show what a
//! deletion will take, loads every related object (minutes and gigabytes for
//! one user with a million votes). Here one registry ([`registry::EDGES`])
//! says what each policy does to every reference in the schema, a
//! deletion's policy is chosen per operation, and a plan counts the rows it
//! would delete, detach or be protected by with one aggregate statement,
//! never loading them.
//!
//! A plan's token names what it was made for (one record, or a selection)
//! and the policy, and digests the state it depends on and every count. A
//! deletion given a token re-plans inside its transaction with its records
//! locked and refuses with `PLAN_CHANGED` when the token differs, so what an
//! admin confirmed is what happens. Without a token, a SET_NULL or CASCADE
//! deletion does not count first: its own statements' row counts are the
//! plan it reports.
//!
//! - [`registry`]: the references and the walk over them;
//! - `run`: counting and carrying out the walk's steps (any kind, any set);
//! - `plan`: plans, their preview (`deletionPlan`) and the count-first rule;
//! - `token`: what a token is made for, and its digest;
//! - `user`, `group`, `poll`: each kind's own locks and rules;
//! - `bulk`: many users or questions at once, set-based.

mod bulk;
mod group;
mod plan;
mod poll;
pub mod registry;
mod run;
mod token;
mod user;

use async_graphql::Enum;
use serde::Serialize;
use serde_json::{Value, json};

pub use bulk::{
    BulkDelete, BulkDeletion, QuestionFilter, QuestionSelection, delete_questions, delete_users,
};
pub use group::delete_group;
pub use plan::{delete_one, plan};
pub use user::{DeleteUser, delete_user};

use super::Mode;
use super::access::{CHANGE_QUESTION, DELETE_GROUP, DELETE_QUESTION, DELETE_USER};
use super::validation::Reason;
use crate::ids::Kind;
use crate::store::groups::GroupRow;
use crate::store::polls::{ChoiceRow, QuestionRow};
use crate::store::users::UserRow;

/// A relation and how many rows it holds, as reported by
/// `DELETE_PROTECTED` and by deletion plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationCount {
    pub relation: String,
    pub count: i64,
}

/// What a deletion does to the rows that reference what it deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum DeletePolicy {
    /// Refuse (`DELETE_PROTECTED`) while protecting rows exist: a user's
    /// votes and questions, a group's members, a question's or a choice's votes.
    #[default]
    Protect,
    /// Keep a user's contributions, detached (votes show `Deleted user`);
    /// remove a group's links. Meaningless for questions and choices.
    SetNull,
    /// Delete what cannot stand alone: a user's votes (questions stay,
    /// detached), a group's links, a question's choices and votes, a choice's votes.
    Cascade,
}

impl DeletePolicy {
    /// The name the schema gives the policy (`SET_NULL`), as tokens and
    /// audit details spell it.
    pub fn as_str(self) -> &'static str {
        super::schema_name(self)
    }

    fn parse(name: &str) -> Option<Self> {
        use async_graphql::resolver_utils::EnumType;
        Self::items()
            .iter()
            .find(|item| item.name == name)
            .map(|item| item.value)
    }
}

/// What a policy does to one relation's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Refuses the deletion while rows exist.
    Protect,
    /// The rows are deleted too.
    Delete,
    /// The rows stay; their reference becomes NULL (or, kept in an array,
    /// names nothing any more).
    Detach,
    /// The policy means nothing for these rows (they cannot exist
    /// detached): asking for it is `INVALID_INPUT` on `policy`.
    Invalid,
}

/// The kinds of record that can be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "DeletionTargetKind")]
pub enum TargetKind {
    User,
    Group,
    Question,
    Choice,
}

impl TargetKind {
    /// The kind of the API's ids of these records.
    pub fn id_kind(self) -> Kind {
        match self {
            TargetKind::User => Kind::User,
            TargetKind::Group => Kind::Group,
            TargetKind::Question => Kind::Question,
            TargetKind::Choice => Kind::Choice,
        }
    }

    /// The deletable kind an API id names, if it names one.
    pub fn of_id_kind(kind: Kind) -> Option<Self> {
        match kind {
            Kind::User => Some(TargetKind::User),
            Kind::Group => Some(TargetKind::Group),
            Kind::Question => Some(TargetKind::Question),
            Kind::Choice => Some(TargetKind::Choice),
            _ => None,
        }
    }

    /// The permission deleting a record of this kind needs (a choice:
    /// changing its question).
    fn permission(self) -> &'static str {
        match self {
            TargetKind::User => DELETE_USER,
            TargetKind::Group => DELETE_GROUP,
            TargetKind::Question => DELETE_QUESTION,
            TargetKind::Choice => CHANGE_QUESTION,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            TargetKind::User => "user",
            TargetKind::Group => "group",
            TargetKind::Question => "question",
            TargetKind::Choice => "choice",
        }
    }
}

/// One record a deletion is about, as read (and locked) before it.
#[derive(Debug, Clone)]
pub enum Target {
    User(UserRow),
    Group(GroupRow),
    Question(QuestionRow),
    Choice(ChoiceRow),
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::User(_) => TargetKind::User,
            Target::Group(_) => TargetKind::Group,
            Target::Question(_) => TargetKind::Question,
            Target::Choice(_) => TargetKind::Choice,
        }
    }

    pub fn id(&self) -> i64 {
        match self {
            Target::User(u) => u.id,
            Target::Group(g) => g.id,
            Target::Question(q) => q.id,
            Target::Choice(c) => c.id,
        }
    }

    /// What a plan depends on besides the counts: who or what the record is
    /// (a user promoted or renamed since the preview is another plan).
    fn state(&self) -> Value {
        match self {
            Target::User(u) => json!([
                u.id,
                u.username,
                u.is_active,
                u.is_staff,
                u.is_superuser,
                u.anonymized_at
            ]),
            Target::Group(g) => json!([g.id, g.name]),
            Target::Question(q) => json!([q.id, q.text, q.created_by]),
            Target::Choice(c) => json!([c.id, c.question_id, c.text]),
        }
    }
}

/// What a plan is for: one record, or a bulk selection of `count` records.
#[derive(Debug, Clone)]
pub enum Planned {
    One(Target),
    Many { kind: TargetKind, count: usize },
}

/// The preview of a deletion: counts per relation, grouped by effect.
#[derive(Debug, Clone)]
pub struct DeletionPlan {
    pub target: Planned,
    pub policy: DeletePolicy,
    /// False when PROTECT finds protecting rows (a bulk plan skips those
    /// records instead, so it is always allowed).
    pub allowed: bool,
    pub effects: Effects,
    pub token: String,
}

/// A plan's counts, sorted by what the policy does to each relation.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub protected: Vec<RelationCount>,
    pub deleted: Vec<RelationCount>,
    pub detached: Vec<RelationCount>,
}

impl DeletionPlan {
    pub fn kind(&self) -> TargetKind {
        match &self.target {
            Planned::One(target) => target.kind(),
            Planned::Many { kind, .. } => *kind,
        }
    }

    /// The user a single user's plan is for.
    pub fn user(&self) -> Option<&UserRow> {
        match &self.target {
            Planned::One(Target::User(user)) => Some(user),
            _ => None,
        }
    }

    /// How many records the plan deletes.
    pub fn target_count(&self) -> usize {
        match &self.target {
            Planned::One(_) => 1,
            Planned::Many { count, .. } => *count,
        }
    }

    /// What the audit entry of a deletion records of its plan.
    fn audit_details(&self) -> Value {
        json!({
            "policy": self.policy.as_str(),
            "deleted": self.effects.deleted,
            "detached": self.effects.detached,
        })
    }
}

#[derive(Debug)]
pub struct DeleteOutcome {
    pub plan: DeletionPlan,
    pub deleted: bool,
    /// The erasure's receipt, when a user's deletion also erased them
    /// ([`Erase::Scrub`](crate::domain::erasure::Erase)); `None` otherwise.
    pub receipt: Option<crate::domain::erasure::Receipt>,
}

impl DeleteOutcome {
    /// A preview: the plan, nothing deleted.
    pub(crate) fn previewed(plan: DeletionPlan) -> Self {
        DeleteOutcome {
            plan,
            deleted: false,
            receipt: None,
        }
    }

    /// The plan carried out, with the erasure's receipt if there was one.
    pub(crate) fn carried_out(
        plan: DeletionPlan,
        receipt: Option<crate::domain::erasure::Receipt>,
    ) -> Self {
        DeleteOutcome {
            plan,
            deleted: true,
            receipt,
        }
    }
}

/// What a caller asks of [`delete_one`] (a group, a question or a choice).
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    pub id: i64,
    pub policy: DeletePolicy,
    /// [`Mode::Preview`] only plans the deletion.
    pub mode: Mode,
    /// The `token` of a reviewed plan: the deletion happens only if the plan
    /// is still that one (`PLAN_CHANGED` otherwise).
    pub plan_token: Option<String>,
    pub reason: Reason,
}
