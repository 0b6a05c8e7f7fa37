//! The GraphQL object types, made from rows of the store; nested fields
//! resolve through the request's DataLoader. A type whose plain fields (the
//! row's columns) come first holds them (`SimpleObject`, built by `From`),
//! with the store ids its nested fields load by. The others wrap their row:
//! `User`, whose fields go through the personal-fields rule, and `Vote` and
//! `AuditEntry`, whose plain fields come between loaded ones (a
//! `SimpleObject`'s fields always precede its resolved ones in the schema).

mod audit;
mod group;
mod poll;
mod user;

pub use audit::AuditEntry;
pub use group::{Group, Permission};
pub use poll::{Choice, Question, Vote};
pub use user::{User, read_ahead, votes_of_user};
