//! Ids arriving as arguments, decoded in one place: each names the argument
//! it came from, so a bad id is refused as `INVALID_INPUT` on that field.

use async_graphql::ID;

use crate::domain::deletion::TargetKind;
use crate::error::AppError;
use crate::ids::{self, Kind};

pub fn user_id(id: &ID, field: &str) -> Result<i64, AppError> {
    ids::decode(Kind::User, id, field)
}

pub fn group_id(id: &ID, field: &str) -> Result<i64, AppError> {
    ids::decode(Kind::Group, id, field)
}

pub fn question_id(id: &ID, field: &str) -> Result<i64, AppError> {
    ids::decode(Kind::Question, id, field)
}

pub fn choice_id(id: &ID, field: &str) -> Result<i64, AppError> {
    ids::decode(Kind::Choice, id, field)
}

/// The id of any record that can be deleted: its kind and number. An id of
/// another kind (a vote, a permission) names nothing deletable: `NOT_FOUND`.
pub fn deletable(id: &ID, field: &str) -> Result<(TargetKind, i64), AppError> {
    const DELETABLE: [Kind; 4] = [Kind::User, Kind::Group, Kind::Question, Kind::Choice];
    let (kind, id) = ids::decode_one_of(&DELETABLE, id, field)?;
    let kind = TargetKind::of_id_kind(kind).ok_or(AppError::NotFound("record"))?;
    Ok((kind, id))
}
