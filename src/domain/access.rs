//! Who may act on whom. The guards on the GraphQL fields check that the caller
//! is active staff holding the operation's permission; these rules depend on
//! the target, so they live here, next to the operations that need them.

use super::Actor;
use crate::error::AppError;
use crate::store::users::UserRow;

/// Only a superuser may touch a superuser's account.
pub fn ensure_may_manage(actor: &Actor, target: &UserRow) -> Result<(), AppError> {
    if target.is_superuser && !actor.is_superuser() {
        return Err(AppError::forbidden(
            "only a superuser may change a superuser's account",
        ));
    }
    Ok(())
}

/// The rules every action on another account follows: never on yourself
/// (`verb` names the action in the refusal), and a superuser's account only
/// by a superuser.
pub fn ensure_may_act_on(
    actor: &Actor,
    target: &UserRow,
    verb: &'static str,
) -> Result<(), AppError> {
    if actor.user_id() == Some(target.id) {
        return Err(AppError::SelfAction(verb));
    }
    ensure_may_manage(actor, target)
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
    use crate::domain::actor::CurrentUser;

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
}
