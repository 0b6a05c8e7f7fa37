//! The business rules of memberdesk, independent of GraphQL and HTTP.
//!
//! Every operation takes the [`Actor`] performing it, checks the rules that
//! depend on who acts on whom (the per-operation permission is checked by the
//! guard declared on the GraphQL field, and again here where the rule depends
//! on the target), runs in one transaction and writes its audit entry in that
//! same transaction: it happens completely, audited, or not at all.
//!
//! It knows nothing of how GraphQL runs: no `Context`, no resolver, no
//! request. A few of its value types are also the API's shapes
//! ([`audit::AuditAction`], [`deletion::DeletePolicy`],
//! [`accounts::UserPatch`], the criteria in [`filters`]): they derive async-graphql's `Enum` or
//! `InputObject` here, once, so that the names the API shows, the names the
//! audit log stores and the rules that use them cannot drift apart. A
//! second, hand-copied type in `graphql/` would be the drift waiting to
//! happen.

pub mod access;
pub mod accounts;
pub mod actor;
pub mod archive;
pub mod audit;
pub mod authority;
pub mod deletion;
pub mod erasure;
pub mod export;
pub mod filters;
pub mod groups;
pub mod lifecycle;
pub mod polls;
pub mod provisioning;
pub mod username;
pub mod validation;
pub mod webhooks;

pub use actor::Actor;

/// Whether an operation only reports what it would do (`dryRun: true`:
/// change nothing, audit nothing) or does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Preview,
    Execute,
}

impl Mode {
    /// The mode a `dryRun` argument asks for (absent means execute).
    pub fn from_dry_run(dry_run: Option<bool>) -> Self {
        match dry_run {
            Some(true) => Mode::Preview,
            _ => Mode::Execute,
        }
    }
}

/// The name the GraphQL schema gives an enum value (`SET_NULL`,
/// `USER_DEACTIVATED`): how the database and audit details spell it too.
fn schema_name<E>(value: E) -> &'static str
where
    E: async_graphql::resolver_utils::EnumType + PartialEq + Copy,
{
    E::items()
        .iter()
        .find(|item| item.value == value)
        .map(|item| item.name)
        .expect("every variant is an item")
}
