//! Who may act, and on whom.
//!
//! [`Rule`] is what an operation asks of its caller (staff, a permission, a
//! superuser). The GraphQL layer declares it as the guard on each field, so
//! a reader sees at the resolver who may call it; the domain applies the same
//! rule again inside the transaction that uses it, to the caller's rights as
//! they stand at that moment ([`super::authority`]).
//!
//! The rules below it depend on the target: nobody acts on themselves, and
//! nobody acts on an account holding more than they do (the scope rule).
//! Without the scope rule, a staff member allowed to change users could take
//! over a better-endowed account (set its password, log in as it) and so get
//! round the no-escalation rule.

use super::Actor;
use super::actor::CurrentUser;
use crate::error::AppError;
use crate::store::users::UserRow;

// The seeded permission catalog (migration 0001), as `app.codename` keys.
// Guards and rules name these constants, never string literals: a typo in a
// literal compiles and silently forbids everyone. `CATALOG` is checked
// against the seeded rows by `tests/api/guards.rs`.
pub const VIEW_USER: &str = "auth.view_user";
pub const ADD_USER: &str = "auth.add_user";
pub const CHANGE_USER: &str = "auth.change_user";
pub const DELETE_USER: &str = "auth.delete_user";
pub const VIEW_GROUP: &str = "auth.view_group";
pub const ADD_GROUP: &str = "auth.add_group";
pub const CHANGE_GROUP: &str = "auth.change_group";
pub const DELETE_GROUP: &str = "auth.delete_group";
pub const VIEW_QUESTION: &str = "polls.view_question";
pub const ADD_QUESTION: &str = "polls.add_question";
pub const CHANGE_QUESTION: &str = "polls.change_question";
pub const DELETE_QUESTION: &str = "polls.delete_question";
pub const VIEW_VOTE: &str = "polls.view_vote";
pub const VIEW_LOGENTRY: &str = "admin.view_logentry";

/// Every permission memberdesk seeds.
pub const CATALOG: [&str; 14] = [
    VIEW_USER,
    ADD_USER,
    CHANGE_USER,
    DELETE_USER,
    VIEW_GROUP,
    ADD_GROUP,
    CHANGE_GROUP,
    DELETE_GROUP,
    VIEW_QUESTION,
    ADD_QUESTION,
    CHANGE_QUESTION,
    DELETE_QUESTION,
    VIEW_VOTE,
    VIEW_LOGENTRY,
];

/// What an operation asks of its caller.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Any active, logged-in user.
    Authenticated,
    /// Active staff, whatever their permissions.
    Staff,
    /// Active staff holding this `app.codename` permission.
    Permission(&'static str),
    /// Active staff holding at least one of these (e.g. view or change).
    AnyPermission(&'static [&'static str]),
    /// Active staff holding every one of these.
    AllPermissions(&'static [&'static str]),
    /// An active superuser.
    Superuser,
}

impl Rule {
    /// Every permission rule also requires active staff: the contract lets
    /// only active staff call admin operations, whatever permissions a
    /// non-staff user may have been granted.
    pub fn check(&self, user: &CurrentUser) -> Result<(), AppError> {
        let staff_only = || AppError::forbidden("only active staff may do this");
        let needs = |key: &str| AppError::forbidden(format!("this needs the '{key}' permission"));
        match self {
            Rule::Authenticated => Ok(()),
            Rule::Staff if user.is_staff => Ok(()),
            Rule::Staff => Err(staff_only()),
            Rule::Superuser if user.is_superuser => Ok(()),
            Rule::Superuser => Err(AppError::forbidden("only a superuser may do this")),
            _ if !user.is_staff => Err(staff_only()),
            Rule::Permission(key) if user.has_perm(key) => Ok(()),
            Rule::Permission(key) => Err(needs(key)),
            Rule::AnyPermission(keys) if keys.iter().any(|key| user.has_perm(key)) => Ok(()),
            Rule::AnyPermission(keys) => Err(needs(keys[0])),
            Rule::AllPermissions(keys) => match keys.iter().find(|key| !user.has_perm(key)) {
                Some(key) => Err(needs(key)),
                None => Ok(()),
            },
        }
    }

    /// The rule applied to any actor: the system (the CLI) passes every
    /// rule; a provisioning service is held to it as active staff holding
    /// its token's permissions, never as a superuser.
    pub fn check_actor(&self, actor: &Actor) -> Result<(), AppError> {
        match actor {
            Actor::User(user) => self.check(user),
            Actor::System => Ok(()),
            Actor::Service(service) => self.check(&service.acts_as),
        }
    }
}

/// The scope rule: the actor may act on `target` when the actor is a
/// superuser, or the target is not a superuser and every permission the
/// target holds or may get back (`target_scope`: direct, through groups,
/// and kept by an open deactivation) is one the actor holds.
pub fn ensure_in_scope(
    actor: &Actor,
    target: &UserRow,
    target_scope: &[String],
) -> Result<(), AppError> {
    if actor.is_superuser() {
        return Ok(());
    }
    if target.is_superuser {
        return Err(AppError::forbidden(
            "only a superuser may change a superuser's account",
        ));
    }
    match target_scope.iter().find(|key| !actor.has_perm(key)) {
        Some(key) => Err(AppError::forbidden(format!(
            "you cannot act on this account: it holds '{key}', which you do not"
        ))),
        None => Ok(()),
    }
}

/// Never on yourself (`verb` names the action in the refusal).
pub fn ensure_not_self(
    actor: &Actor,
    target: &UserRow,
    verb: &'static str,
) -> Result<(), AppError> {
    if actor.user_id() == Some(target.id) {
        return Err(AppError::SelfAction(verb));
    }
    Ok(())
}

/// Only a superuser may set the staff or superuser flags.
pub fn ensure_may_set_flags(actor: &Actor) -> Result<(), AppError> {
    if !actor.is_superuser() {
        return Err(AppError::forbidden(
            "only a superuser may set isStaff or isSuperuser",
        ));
    }
    Ok(())
}

/// No escalation: nobody grants a permission they do not hold themselves,
/// directly or through a group (adding a member to a group grants all the
/// group's permissions).
pub fn ensure_holds_all(actor: &Actor, keys: &[String]) -> Result<(), AppError> {
    match keys.iter().find(|key| !actor.has_perm(key)) {
        Some(key) => Err(AppError::forbidden(format!(
            "you cannot grant '{key}': you do not hold it yourself"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn staff(perms: &[&str]) -> Actor {
        Actor::User(CurrentUser {
            id: 1,
            username: "staff".into(),
            session_id: 1,
            is_staff: true,
            is_superuser: false,
            permissions: perms.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>(),
        })
    }

    fn target(is_superuser: bool) -> UserRow {
        UserRow {
            id: 2,
            username: "target".into(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: true,
            is_superuser,
            date_joined: chrono::Utc::now(),
            last_login: None,
            deactivated_at: None,
            deactivation_reason: None,
            anonymized_at: None,
            erasure_due_at: None,
        }
    }

    #[test]
    fn no_escalation() {
        let actor = staff(&["auth.change_user", "auth.view_user"]);
        assert!(ensure_holds_all(&actor, &["auth.view_user".into()]).is_ok());
        assert!(matches!(
            ensure_holds_all(&actor, &["auth.delete_user".into()]),
            Err(AppError::Forbidden(_))
        ));
        assert!(ensure_holds_all(&Actor::System, &["auth.delete_user".into()]).is_ok());
        assert!(matches!(
            ensure_may_set_flags(&actor),
            Err(AppError::Forbidden(_))
        ));
    }

    #[test]
    fn scope_is_a_subset_of_the_actors_permissions() {
        let actor = staff(&["auth.change_user", "auth.view_user"]);
        let narrower = ["auth.view_user".to_string()];
        let equal = ["auth.change_user".to_string(), "auth.view_user".to_string()];
        let wider = [
            "auth.change_user".to_string(),
            "auth.delete_user".to_string(),
        ];
        assert!(ensure_in_scope(&actor, &target(false), &narrower).is_ok());
        assert!(ensure_in_scope(&actor, &target(false), &equal).is_ok());
        assert!(ensure_in_scope(&actor, &target(false), &wider).is_err());
        assert!(ensure_in_scope(&actor, &target(true), &[]).is_err());
        assert!(ensure_in_scope(&Actor::System, &target(true), &wider).is_ok());
    }

    #[test]
    fn permission_rules_need_active_staff() {
        let Actor::User(mut user) = staff(&["auth.change_user"]) else {
            unreachable!()
        };
        assert!(Rule::Permission(CHANGE_USER).check(&user).is_ok());
        assert!(Rule::Permission(DELETE_USER).check(&user).is_err());
        user.is_staff = false;
        assert!(Rule::Permission(CHANGE_USER).check(&user).is_err());
        assert!(Rule::Authenticated.check(&user).is_ok());
    }
}
