//! The GraphQL object types. Each wraps a row from the store and resolves its
//! nested fields through the request's DataLoader.

mod audit;
mod group;
mod poll;
mod user;

pub use audit::AuditEntry;
pub use group::{Group, Permission};
pub use poll::{Choice, Question, Vote};
pub use user::{User, read_ahead, votes_of_user};
