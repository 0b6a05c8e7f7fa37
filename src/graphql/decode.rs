//! Ids arriving as arguments, decoded in one place: each names the argument
//! it came from, so a bad id is refused as `INVALID_INPUT` on that field.

use async_graphql::ID;

use crate::error::AppError;
use crate::ids::{self, Kind};

pub fn user_id(id: &ID, field: &str) -> Result<i64, AppError> {
    ids::decode(Kind::User, id, field)
}

pub fn group_id(id: &ID, field: &str) -> Result<i64, AppError> {
    ids::decode(Kind::Group, id, field)
}
