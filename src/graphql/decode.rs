//! Ids arriving as arguments, decoded in one place: each names the argument
//! it came from, so a bad id is refused as `INVALID_INPUT` on that field.

use async_graphql::ID;

use crate::domain::deletion::TargetKind;
use crate::error::{AppError, OrNotFound};
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

/// What a bulk operation names: its `ids`, decoded, or its `filter`.
pub enum IdsOrFilter<F> {
    Ids(Vec<i64>),
    Filter(F),
}

/// The `ids` or the `filter` of a bulk operation, exactly one
/// (`INVALID_INPUT` on `ids` otherwise); each id decoded by `decode_id`.
pub fn ids_or_filter<F>(
    ids: Option<Vec<ID>>,
    filter: Option<F>,
    decode_id: fn(&ID, &str) -> Result<i64, AppError>,
) -> Result<IdsOrFilter<F>, AppError> {
    match (ids, filter) {
        (Some(ids), None) => Ok(IdsOrFilter::Ids(
            ids.iter()
                .map(|id| decode_id(id, "ids"))
                .collect::<Result<_, _>>()?,
        )),
        (None, Some(filter)) => Ok(IdsOrFilter::Filter(filter)),
        _ => Err(AppError::invalid(
            "ids",
            "give exactly one of ids and filter",
        )),
    }
}

/// The id of any record that can be deleted: its kind and number. An id of
/// another kind (a vote, a permission) names nothing deletable: `NOT_FOUND`.
pub fn deletable(id: &ID, field: &str) -> Result<(TargetKind, i64), AppError> {
    const DELETABLE: [Kind; 4] = [Kind::User, Kind::Group, Kind::Question, Kind::Choice];
    let (kind, id) = ids::decode_one_of(&DELETABLE, id, field)?;
    let kind = TargetKind::of_id_kind(kind).or_not_found("record")?;
    Ok((kind, id))
}
