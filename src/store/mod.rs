//! SQL, one module per table or aggregate. Nothing else in memberdesk writes SQL.
//!
//! Functions take any executor (`&PgPool`, `&mut PgConnection`, a transaction)
//! so the domain layer decides what runs in one transaction. All SQL is static
//! text or built with `QueryBuilder::push_bind`: user input is always a bind
//! parameter, never spliced into the statement.

pub mod audit;
pub mod deactivations;
pub mod deletion;
pub mod erasure;
pub mod export;
pub mod groups;
pub mod login_failures;
pub mod permissions;
pub mod polls;
pub mod sessions;
pub mod users;
