//! Demo data for the playground: the tutorial's team, shaped so that every
//! step of the README's "Removing a member safely" has something to show:
//! `alice` is in Editors, holds a direct permission and is logged in
//! somewhere (so deactivating her removes groups and permissions and revokes
//! a session, and `restoreAccess` brings them back); `dave` last logged in
//! in 2024 (dormant); `bob` and `carol` have voted (deletion plan, erasure);
//! `mia-manager` is staff in `User managers`, the least a staff member needs
//! to deactivate and reactivate members.
//!
//! Idempotent: running it again adds only what is missing. Everything goes
//! through the domain layer (and so into the audit log, with `system` as the
//! actor, and alice's session through `login`), except votes, which are cast
//! as the seeded members themselves, and dave's past, which is set directly.
//!
//! The demo publishes a superuser password, so it refuses a database holding
//! anyone else (see [`refusal`]).

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::config::{PasswordPolicy, Settings};
use crate::domain::groups::{Access, Change};
use crate::domain::username::Username;
use crate::domain::{Actor, accounts, groups, polls};
use crate::error::{AppError, AppResult};
use crate::store::{self, groups::GroupRow, users::UserRow};

/// The demo accounts' password. The demo is for a local playground only;
/// it meets the default password policy (zxcvbn score 4, 15 characters).
pub const DEMO_PASSWORD: &str = "memberdesk-demo";
pub const DEMO_LOGIN_HINT: &str = "mutation { login(username: \"admin\", password: \"memberdesk-demo\") { token } } — the playground keeps the token for its browser tab (other clients send {\"Authorization\": \"Bearer <token>\"}); log out with mutation { logout } or by closing the tab";

struct DemoUser {
    username: &'static str,
    first_name: &'static str,
    last_name: &'static str,
    staff: bool,
    superuser: bool,
}

const USERS: &[DemoUser] = &[
    DemoUser {
        username: "admin",
        first_name: "Ada",
        last_name: "Admin",
        staff: true,
        superuser: true,
    },
    DemoUser {
        username: "rani-editor",
        first_name: "Rani",
        last_name: "Editor",
        staff: true,
        superuser: false,
    },
    DemoUser {
        username: "alice",
        first_name: "Alice",
        last_name: "Member",
        staff: false,
        superuser: false,
    },
    DemoUser {
        username: "bob",
        first_name: "Bob",
        last_name: "Member",
        staff: false,
        superuser: false,
    },
    DemoUser {
        username: "carol",
        first_name: "Carol",
        last_name: "Member",
        staff: false,
        superuser: false,
    },
    DemoUser {
        username: DORMANT,
        first_name: "Dave",
        last_name: "Dormant",
        staff: false,
        superuser: false,
    },
    DemoUser {
        username: "mia-manager",
        first_name: "Mia",
        last_name: "Manager",
        staff: true,
        superuser: false,
    },
];

/// The account nobody has used since 2024: `deactivate-dormant --days 365`
/// and the README's `lastLoginBefore: "2025-01-01T00:00:00Z"` both find it.
const DORMANT: &str = "dave";
const DORMANT_JOINED: &str = "2023-09-01T09:00:00Z";
const DORMANT_LAST_LOGIN: &str = "2024-03-01T09:00:00Z";

/// A direct permission of alice's (besides what Editors gives her), so that
/// her deactivation has one to remove and her reactivation one to restore.
const ALICE_DIRECT_PERMISSION: &str = "polls.change_question";

/// The `User managers` role: what a staff member needs to find, deactivate
/// and reactivate members (`user`, `users`, `deactivateUser(s)`,
/// `reactivateUser`). The scope rule still applies: they act only on users
/// whose every permission they hold, so on plain members, not on Editors.
const USER_MANAGER_PERMISSIONS: &[&str] = &["auth.change_user"];

/// Every group the demo creates, with its permissions and members.
const GROUPS: &[(&str, &[&str], &[&str])] = &[
    ("Editors", EDITOR_PERMISSIONS, &["rani-editor", "alice"]),
    ("User managers", USER_MANAGER_PERMISSIONS, &["mia-manager"]),
];

const EDITOR_PERMISSIONS: &[&str] = &[
    "auth.view_user",
    "auth.change_user",
    "auth.view_group",
    "polls.view_question",
    "polls.add_question",
    "polls.view_vote",
];

const QUESTIONS: &[(&str, &[&str])] = &[
    ("What's up?", &["Not much", "The sky", "Just hacking again"]),
    (
        "Which release should we ship first?",
        &["Deactivation", "Policy-aware delete", "Anonymization"],
    ),
];

/// Who votes for which choice (by position) of each question.
const VOTES: &[(&str, usize, usize)] = &[
    ("alice", 0, 2),
    ("bob", 0, 0),
    ("carol", 0, 2),
    ("rani-editor", 0, 1),
    ("alice", 1, 0),
    ("bob", 1, 2),
];

fn demo_email(username: &str) -> String {
    format!("{username}@example.org")
}

async fn ensure_user(
    pool: &PgPool,
    policy: &PasswordPolicy,
    demo: &DemoUser,
    created: &mut Vec<String>,
) -> AppResult<UserRow> {
    if let Some(user) =
        store::users::find_by_username_key(pool, Username::typed(demo.username).key()).await?
    {
        return Ok(user);
    }
    let input = accounts::NewUserInput {
        username: demo.username.to_owned(),
        email: demo_email(demo.username),
        password: SecretString::from(DEMO_PASSWORD),
        first_name: demo.first_name.to_owned(),
        last_name: demo.last_name.to_owned(),
        is_staff: demo.staff,
        is_superuser: demo.superuser,
    };
    let user = accounts::create_user(pool, &Actor::System, input, policy).await?;
    if demo.username == DORMANT {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("a valid constant");
        store::users::set_history(pool, user.id, at(DORMANT_JOINED), at(DORMANT_LAST_LOGIN))
            .await?;
    }
    created.push(user.username.clone());
    Ok(user)
}

/// Why the demo must not be loaded into this database, if it must not: it
/// holds users other than the demo's (anonymized ones aside), and the demo
/// would add a superuser whose password is published. One line.
pub async fn refusal(pool: &PgPool) -> AppResult<Option<String>> {
    let keys: Vec<String> = USERS
        .iter()
        .map(|demo| Username::typed(demo.username).key().to_owned())
        .collect();
    let mut conn = pool.acquire().await?;
    let (count, sample) = store::users::others_than(&mut conn, &keys, 3).await?;
    if count == 0 {
        return Ok(None);
    }
    let more = if count > sample.len() as i64 {
        ", …"
    } else {
        ""
    };
    Ok(Some(format!(
        "this database holds {count} user(s) that are not demo users ({}{more}): the demo adds the superuser 'admin' with the published password '{DEMO_PASSWORD}'. Point DATABASE_URL at a new database, or pass --force-demo to add it anyway",
        sample.join(", ")
    )))
}

async fn ensure_group(pool: &PgPool, name: &str, permissions: &[&str]) -> AppResult<GroupRow> {
    if let Some(group) = store::groups::find_by_name(pool, name).await? {
        return Ok(group);
    }
    let perms: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
    groups::create_group(pool, &Actor::System, name, &perms).await
}

/// Groups, their members, and alice's direct permission: each added only
/// when missing (the domain audits only what changes).
async fn ensure_access(pool: &PgPool, people: &[UserRow]) -> AppResult<()> {
    let find = |name: &str| people.iter().find(|u| u.username == name);
    for (name, permissions, members) in GROUPS {
        let group = ensure_group(pool, name, permissions).await?;
        // A deactivated member keeps what her deactivation remembers: adding
        // her back here would pre-empt `restoreAccess`.
        for member in members
            .iter()
            .filter_map(|m| find(m))
            .filter(|m| m.is_active)
        {
            let access = Access::Group(group.id);
            groups::change_access(pool, &Actor::System, member.id, access, Change::Give).await?;
        }
    }
    if let Some(alice) = find("alice").filter(|a| a.is_active) {
        let access = Access::Permission(ALICE_DIRECT_PERMISSION);
        groups::change_access(pool, &Actor::System, alice.id, access, Change::Give).await?;
    }
    Ok(())
}

/// alice logs in (as her browser would) unless she already has a session:
/// her deactivation then has one to revoke. The token is not kept. Only the
/// demo's alice (her demo address): a real `alice` in a database the demo
/// was forced into must not collect a failed login.
async fn ensure_alice_session(
    pool: &PgPool,
    settings: &Settings,
    alice: &UserRow,
) -> AppResult<bool> {
    let demo_account = alice.email == demo_email(&alice.username);
    if !demo_account
        || !alice.is_active
        || store::sessions::count_unexpired_for_user(pool, alice.id).await? > 0
    {
        return Ok(false);
    }
    let credentials = accounts::Credentials {
        username: &alice.username,
        password: SecretString::from(DEMO_PASSWORD),
    };
    accounts::login(pool, settings, credentials, None).await?;
    Ok(true)
}

async fn ensure_polls(pool: &PgPool, people: &[UserRow]) -> AppResult<(usize, usize)> {
    // An archived demo question is still there: it is not created twice.
    let existing = store::polls::questions(pool, store::polls::Listing::WithArchived).await?;
    let mut questions = Vec::new();
    for (text, choices) in QUESTIONS {
        let question = match existing.iter().find(|q| q.text == *text) {
            Some(q) => q.clone(),
            None => {
                let choices: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                polls::create_question(pool, &Actor::System, text, &choices).await?
            }
        };
        questions.push(question);
    }
    let mut votes = 0;
    for (voter, question, choice) in VOTES {
        let choices = store::polls::choices_of_questions(pool, &[questions[*question].id]).await?;
        let voter = people
            .iter()
            .find(|u| u.username == *voter)
            .expect("seeded above");
        match store::polls::insert_vote(pool, &choices[*choice], voter.id).await {
            Ok(_) => votes += 1,
            Err(sqlx::Error::Database(db))
                if db.constraint() == Some(store::polls::ONE_VOTE_PER_QUESTION) => {}
            Err(e) => return Err(AppError::from(e)),
        }
    }
    Ok((questions.len(), votes))
}

/// Loads what is missing of the demo data; says what it did in one line.
/// Call [`refusal`] first unless the operator forced it.
pub async fn seed_demo(pool: &PgPool, settings: &Settings) -> AppResult<String> {
    let mut created = Vec::new();
    let mut people = Vec::new();
    for demo in USERS {
        people.push(ensure_user(pool, &settings.password_policy, demo, &mut created).await?);
    }
    ensure_access(pool, &people).await?;
    let alice = people
        .iter()
        .find(|u| u.username == "alice")
        .expect("seeded above");
    let logged_in = ensure_alice_session(pool, settings, alice).await?;
    let (questions, votes) = ensure_polls(pool, &people).await?;
    let groups: Vec<&str> = GROUPS.iter().map(|(name, _, _)| *name).collect();
    Ok(format!(
        "demo data ready: {} new users{}, groups {}, {questions} questions, {votes} new votes{}; every demo account's password is '{DEMO_PASSWORD}'",
        created.len(),
        if created.is_empty() {
            String::new()
        } else {
            format!(" ({})", created.join(", "))
        },
        groups.join(" and "),
        if logged_in { ", alice logged in" } else { "" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation;

    /// `seed-demo` and the README's demo login depend on it.
    #[test]
    fn the_demo_password_meets_the_default_policy_for_every_demo_user() {
        for demo in USERS {
            let email = format!("{}@example.org", demo.username);
            let personal = [demo.username, &email, demo.first_name, demo.last_name];
            let checked = validation::password(
                "password",
                &SecretString::from(DEMO_PASSWORD),
                &PasswordPolicy::default(),
                &personal,
            );
            assert!(checked.is_ok(), "{}", demo.username);
        }
    }
}
