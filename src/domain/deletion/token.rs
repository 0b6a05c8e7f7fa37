//! Plan tokens: `dp1.<made for>.<POLICY>.<digest>`.
//!
//! A token says in the clear what it was made for (one record's id, or a
//! digest of a bulk selection) and under which policy, so a token passed for
//! the wrong record, selection or policy is told apart (`INVALID_INPUT`,
//! field `planToken`) from a plan the data moved under (`PLAN_CHANGED`). The
//! digest covers those too, so editing them only makes a token that matches
//! no plan, and everything the deletion depends on: the records' state and
//! every count (for a bulk plan, also which records it deletes and skips).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{DeletePolicy, TargetKind, registry};
use crate::error::{AppError, AppResult};
use crate::ids;

/// Marks (and versions) a plan token.
const PREFIX: &str = "dp1";
const FIELD: &str = "planToken";

/// What a plan is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MadeFor {
    /// One record.
    One(TargetKind, i64),
    /// A bulk selection (ids or a filter) of records of a kind, by digest.
    Selection(TargetKind, String),
}

impl MadeFor {
    /// A bulk selection, described by `canonical` (its ids sorted, or its filter).
    pub(super) fn selection(kind: TargetKind, canonical: &Value) -> Self {
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        MadeFor::Selection(kind, URL_SAFE_NO_PAD.encode(&digest[..9]))
    }

    fn encode(&self) -> String {
        match self {
            MadeFor::One(kind, id) => ids::encode(kind.id_kind(), *id),
            MadeFor::Selection(kind, digest) => {
                format!("{}~{digest}", registry::table(*kind))
            }
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if let Some((table, digest)) = text.split_once('~') {
            let kind = KINDS.into_iter().find(|k| registry::table(*k) == table)?;
            return (!digest.is_empty()).then(|| MadeFor::Selection(kind, digest.to_owned()));
        }
        let (kind, id) = ids::decode_kind(text)?;
        Some(MadeFor::One(TargetKind::of_id_kind(kind)?, id))
    }

    fn kind(&self) -> TargetKind {
        match self {
            MadeFor::One(kind, _) | MadeFor::Selection(kind, _) => *kind,
        }
    }

    /// How a refusal names it: `another user (VXNlcjoz)`, `a group (…)`.
    fn describe(&self, same_kind: bool) -> String {
        let article = if same_kind { "another" } else { "a" };
        match self {
            MadeFor::One(kind, _) => format!("{article} {} ({})", kind.noun(), self.encode()),
            MadeFor::Selection(kind, _) => {
                format!("{article} bulk selection of {}", registry::table(*kind))
            }
        }
    }

    /// What to do instead, in a refusal.
    fn how_to_preview(&self) -> String {
        match self {
            MadeFor::One(kind, _) => format!(
                "preview this {}'s deletion with deletionPlan and pass its token",
                kind.noun()
            ),
            MadeFor::Selection(..) => {
                "preview this selection with dryRun: true and pass its token".into()
            }
        }
    }
}

const KINDS: [TargetKind; 4] = [
    TargetKind::User,
    TargetKind::Group,
    TargetKind::Question,
    TargetKind::Choice,
];

/// The token of a plan made for `made_for` under `policy`, digesting
/// `state` (what the deletion depends on, counts included).
pub(super) fn token(made_for: &MadeFor, policy: DeletePolicy, state: Value) -> String {
    let digested = json!([made_for.encode(), policy.as_str(), state]);
    let digest = Sha256::digest(digested.to_string().as_bytes());
    format!(
        "{PREFIX}.{}.{}.{}",
        made_for.encode(),
        policy.as_str(),
        URL_SAFE_NO_PAD.encode(&digest[..18])
    )
}

/// Refuses a `planToken` that is not a plan token, or was made for another
/// record or selection or under another policy than this deletion's
/// (`INVALID_INPUT`, field `planToken`, saying which). Whether the plan still
/// holds is checked later, against the data (`PLAN_CHANGED`).
pub(super) fn ensure_fits(token: &str, expected: &MadeFor, policy: DeletePolicy) -> AppResult<()> {
    let not_a_token = || {
        AppError::invalid(
            FIELD,
            format!(
                "{} is not a plan token: pass the `token` that deletionPlan (or a delete with dryRun) returned, unchanged",
                ids::echo(token)
            ),
        )
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [prefix, made_for, made_under, digest] = parts[..] else {
        return Err(not_a_token());
    };
    if prefix != PREFIX || digest.is_empty() {
        return Err(not_a_token());
    }
    let made_for = MadeFor::parse(made_for).ok_or_else(not_a_token)?;
    let made_under = DeletePolicy::parse(made_under).ok_or_else(not_a_token)?;
    if made_for != *expected {
        return Err(made_for_another(&made_for, expected));
    }
    if made_under != policy {
        return Err(AppError::invalid(
            FIELD,
            format!(
                "this plan token was made under policy {}, not {}: pass policy: {} or preview again under {}",
                made_under.as_str(),
                policy.as_str(),
                made_under.as_str(),
                policy.as_str()
            ),
        ));
    }
    Ok(())
}

fn made_for_another(made_for: &MadeFor, expected: &MadeFor) -> AppError {
    let same_shape = std::mem::discriminant(made_for) == std::mem::discriminant(expected)
        && made_for.kind() == expected.kind();
    let what = made_for.describe(same_shape);
    let message = match same_shape {
        true => format!(
            "this plan token was made for {what}: {}",
            expected.how_to_preview()
        ),
        false => format!(
            "this plan token was made for {what}, not {}: {}",
            expected.describe(false),
            expected.how_to_preview()
        ),
    };
    AppError::invalid(FIELD, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: AppResult<()>) -> String {
        match result {
            Err(AppError::InvalidInput { field, message }) if field == FIELD => message,
            other => panic!("expected INVALID_INPUT on planToken: {other:?}"),
        }
    }

    #[test]
    fn a_token_fits_only_what_it_was_made_for() {
        let user = MadeFor::One(TargetKind::User, 7);
        let t = token(&user, DeletePolicy::Cascade, json!([1, 2]));
        assert!(t.starts_with("dp1.") && t.contains(".CASCADE."), "{t}");
        assert!(ensure_fits(&t, &user, DeletePolicy::Cascade).is_ok());
        let other_user = MadeFor::One(TargetKind::User, 8);
        assert!(
            message(ensure_fits(&t, &other_user, DeletePolicy::Cascade))
                .starts_with("this plan token was made for another user (")
        );
        let group = MadeFor::One(TargetKind::Group, 7);
        let m = message(ensure_fits(&t, &group, DeletePolicy::Cascade));
        assert!(
            m.contains("made for a user (") && m.contains("not a group"),
            "{m}"
        );
        assert!(message(ensure_fits(&t, &user, DeletePolicy::SetNull)).contains("policy CASCADE"));
    }

    #[test]
    fn a_selection_token_names_its_selection() {
        let ids = MadeFor::selection(TargetKind::User, &json!([1, 2, 3]));
        assert_eq!(ids, MadeFor::selection(TargetKind::User, &json!([1, 2, 3])));
        let t = token(&ids, DeletePolicy::Protect, json!([]));
        assert!(ensure_fits(&t, &ids, DeletePolicy::Protect).is_ok());
        let others = MadeFor::selection(TargetKind::User, &json!([1, 2]));
        assert!(
            message(ensure_fits(&t, &others, DeletePolicy::Protect))
                .contains("another bulk selection of users")
        );
        let one = MadeFor::One(TargetKind::User, 1);
        assert!(
            message(ensure_fits(&t, &one, DeletePolicy::Protect))
                .contains("a bulk selection of users, not a user")
        );
        for garbage in [
            "",
            "yes please",
            "dp1.x~.PROTECT.abc",
            "dp1.nope.PROTECT.abc",
        ] {
            assert!(
                message(ensure_fits(garbage, &ids, DeletePolicy::Protect))
                    .contains("is not a plan token"),
                "{garbage}"
            );
        }
    }
}
