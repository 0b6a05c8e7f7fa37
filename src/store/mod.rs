//! SQL, one module per table or aggregate. Nothing else in memberdesk writes SQL.
//!
//! Functions take any executor (`&PgPool`, `&mut PgConnection`, a transaction)
//! so the domain layer decides what runs in one transaction. All SQL is static
//! text or built with `QueryBuilder::push_bind`: user input is always a bind
//! parameter, never spliced into the statement.
//!
//! Why runtime-checked SQL (`sqlx::query_as` on strings) rather than the
//! compile-time-checked `sqlx::query!` macros:
//! - the statements that matter most are built, not written: the `users`
//!   page (filters and orders), the audit filters and the deletion registry's
//!   per-relation statements go through `QueryBuilder`, which the macros
//!   cannot check at all;
//! - the macros take only a string literal, so every statement reading a
//!   user would spell out the `user_columns!` list again (twenty columns,
//!   a dozen times): the drift the macro exists to prevent;
//! - a clean clone would need either PostgreSQL at build time or a committed
//!   `.sqlx/` cache kept fresh by `cargo sqlx prepare --check` in CI, which
//!   means building `sqlx-cli` (minutes on a two-core runner) for every
//!   landing;
//! - what the macros would catch, the tests catch: every statement here runs
//!   against a real PostgreSQL in `cargo test` (a fresh database per test),
//!   and `tests/statements.rs` counts the statements each request sends.
//!
//! Revisit if the static statements come to dominate, or sqlx's macros learn
//! to check `QueryBuilder` output.

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
