//! What a listing of users or audit entries may ask for, declared once for
//! the API and the store (see the layering note in `domain`): the API's
//! `UserFilter`, `UserOrderBy` and `AuditFilter` are built from these types,
//! and the store reads the same fields, so a criterion cannot be added to
//! one and forgotten in the other.
//!
//! Checking stays with the API (`graphql::query`), after the input is
//! parsed: an id that names nothing or an overlong name is the resolver's
//! `NOT_FOUND` or `INVALID_INPUT`, not an input-parse error.

use async_graphql::{Enum, ID, InputObject, InputType};
use chrono::{DateTime, Utc};

use super::audit::AuditAction;

/// The three account flags a user filter may test; each left out matches
/// both values.
#[derive(InputObject, Debug, Clone, Copy, Default, PartialEq)]
pub struct UserFlagFilter {
    /// True: active users only; false: inactive ones only.
    pub is_active: Option<bool>,
    /// True: staff only; false: non-staff only.
    pub is_staff: Option<bool>,
    /// True: superusers only; false: the others.
    pub is_superuser: Option<bool>,
}

/// Where in its lifecycle a user filter asks the account to be: both
/// states are kept as the instant they began; each left out matches both.
#[derive(InputObject, Debug, Clone, Copy, Default, PartialEq)]
pub struct UserLifecycleFilter {
    /// True: users deactivated (and not reactivated since); false: the others.
    pub deactivated: Option<bool>,
    /// True: anonymized users only; false: the others.
    pub anonymized: Option<bool>,
}

// The derive makes this very enum the API's `UserOrderBy`; what each order
// means in SQL, and in a cursor, stays with the statements (`store::users`).
/// The order of a `users` page.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "UserOrderBy")]
pub enum UserOrder {
    #[default]
    IdAsc,
    IdDesc,
    UsernameAsc,
    UsernameDesc,
    DateJoinedAsc,
    DateJoinedDesc,
    /// Never-logged-in users first.
    LastLoginAsc,
    /// Never-logged-in users last.
    LastLoginDesc,
}

// `Id` is what names a user: the client's opaque `ID` in the API's input,
// the decoded row id once checked (the default, what the store reads).
/// Which audit entries to list; every field left out matches everything.
#[derive(InputObject, Debug, Clone, Default)]
#[graphql(concrete(name = "AuditFilter", params(ID)))]
pub struct AuditFilter<Id: InputType = i64> {
    /// Entries by this user, also once the user is deleted (the id is kept).
    pub actor_id: Option<Id>,
    /// Entries about this user, also once the user is deleted (the id is kept).
    pub target_user_id: Option<Id>,
    /// Entries by whoever had this username when they acted (the snapshot;
    /// matched regardless of case and width, as at login). `system` for the
    /// command line.
    pub actor_username: Option<String>,
    /// Entries about whoever had this username then (the snapshot; matched
    /// regardless of case and width): finds a deleted user's entries by name.
    pub target_username: Option<String>,
    /// Entries of this action only.
    pub action: Option<AuditAction>,
    /// Entries at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this instant.
    pub until: Option<DateTime<Utc>>,
}
