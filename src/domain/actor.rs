//! Who is acting: a logged-in user, a provisioning service (a SCIM
//! client), or the system itself (the CLI).

use std::collections::BTreeSet;

use crate::store::scim_tokens::ScimTokenRow;
use crate::store::sessions::SessionUser;

#[derive(Debug, Clone)]
pub enum Actor {
    User(CurrentUser),
    /// The operator at the command line (`createsuperuser`, `seed-demo`).
    System,
    /// A provisioning client (an identity provider over SCIM), holding
    /// exactly its token's permissions and never a superuser's rights: it
    /// is held to the same rules, scope included, as a staff member
    /// holding those permissions.
    Service(ServiceActor),
}

/// A provisioning client as read for this request.
#[derive(Debug, Clone)]
pub struct ServiceActor {
    /// The token's row id: how the domain re-reads it under lock.
    pub token_id: i64,
    /// Whom the rules see acting: active staff holding exactly the token's
    /// permissions, never a superuser, named as the audit log names the
    /// client (`scim:NAME`). Made here once, so every rule, scope included,
    /// holds the client to what a staff member with those permissions may do.
    pub acts_as: CurrentUser,
}

impl From<ScimTokenRow> for ServiceActor {
    fn from(row: ScimTokenRow) -> Self {
        let acts_as = CurrentUser {
            id: 0,
            username: format!("scim:{}", row.name),
            session_id: 0,
            is_staff: true,
            is_superuser: false,
            permissions: row.permissions.into_iter().collect(),
        };
        ServiceActor {
            token_id: row.id,
            acts_as,
        }
    }
}

/// An authenticated, active user and their effective permissions, as read
/// for this request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub session_id: i64,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub permissions: BTreeSet<String>,
}

impl From<SessionUser> for CurrentUser {
    fn from(s: SessionUser) -> Self {
        CurrentUser {
            id: s.user_id,
            username: s.username,
            session_id: s.session_id,
            is_staff: s.is_staff,
            is_superuser: s.is_superuser,
            permissions: s.permissions.into_iter().collect(),
        }
    }
}

impl CurrentUser {
    pub fn has_perm(&self, key: &str) -> bool {
        self.is_superuser || self.permissions.contains(key)
    }
}

impl Actor {
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User(u) => Some(u.id),
            Actor::System | Actor::Service(_) => None,
        }
    }

    pub fn username(&self) -> &str {
        match self {
            Actor::User(u) => &u.username,
            Actor::System => "system",
            Actor::Service(s) => &s.acts_as.username,
        }
    }

    pub fn is_superuser(&self) -> bool {
        match self {
            Actor::User(u) => u.is_superuser,
            Actor::System => true,
            Actor::Service(_) => false,
        }
    }

    pub fn has_perm(&self, key: &str) -> bool {
        match self {
            Actor::User(u) => u.has_perm(key),
            Actor::System => true,
            Actor::Service(s) => s.acts_as.has_perm(key),
        }
    }
}
