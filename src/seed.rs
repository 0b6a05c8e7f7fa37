//! Demo data for the playground: the tutorial's team. Idempotent: running it
//! again adds only what is missing. Everything goes through the domain layer
//! (and so into the audit log, with `system` as the actor), except votes,
//! which are cast as the seeded members themselves.

use secrecy::SecretString;
use sqlx::PgPool;

use crate::config::PasswordPolicy;
use crate::domain::{Actor, accounts, groups, polls, validation};
use crate::error::{AppError, AppResult};
use crate::store::{self, users::UserRow};

/// The demo accounts' password. The demo is for a local playground only;
/// it meets the default password policy (zxcvbn score 4, 15 characters).
pub const DEMO_PASSWORD: &str = "memberdesk-demo";
pub const DEMO_LOGIN_HINT: &str = "mutation { login(username: \"admin\", password: \"memberdesk-demo\") { token } } — then put {\"Authorization\": \"Bearer <token>\"} in the Headers tab";

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

async fn ensure_user(
    pool: &PgPool,
    policy: &PasswordPolicy,
    demo: &DemoUser,
    created: &mut Vec<String>,
) -> AppResult<UserRow> {
    if let Some(user) =
        store::users::find_by_username_key(pool, &validation::username_key(demo.username)).await?
    {
        return Ok(user);
    }
    let input = accounts::NewUserInput {
        username: demo.username.to_owned(),
        email: format!("{}@example.org", demo.username),
        password: SecretString::from(DEMO_PASSWORD),
        first_name: demo.first_name.to_owned(),
        last_name: demo.last_name.to_owned(),
        is_staff: demo.staff,
        is_superuser: demo.superuser,
    };
    let user = accounts::create_user(pool, &Actor::System, input, policy).await?;
    created.push(user.username.clone());
    Ok(user)
}

pub async fn seed_demo(pool: &PgPool, policy: &PasswordPolicy) -> AppResult<String> {
    let system = Actor::System;
    let mut created = Vec::new();
    let mut people = Vec::new();
    for demo in USERS {
        people.push(ensure_user(pool, policy, demo, &mut created).await?);
    }
    let find = |name: &str| {
        people
            .iter()
            .find(|u| u.username == name)
            .expect("seeded above")
    };

    let editors = match store::groups::find_by_name(pool, "Editors").await? {
        Some(group) => group,
        None => {
            let perms: Vec<String> = EDITOR_PERMISSIONS.iter().map(|p| p.to_string()).collect();
            groups::create_group(pool, &system, "Editors", &perms).await?
        }
    };
    groups::add_user_to_group(pool, &system, find("rani-editor").id, editors.id).await?;

    let existing = store::polls::questions(pool).await?;
    let mut questions = Vec::new();
    for (text, choices) in QUESTIONS {
        let question = match existing.iter().find(|q| q.text == *text) {
            Some(q) => q.clone(),
            None => {
                let choices: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                polls::create_question(pool, &system, text, &choices).await?
            }
        };
        questions.push(question);
    }
    let mut votes = 0;
    for (voter, question, choice) in VOTES {
        let choices = store::polls::choices_of_questions(pool, &[questions[*question].id]).await?;
        let voter = find(voter);
        match store::polls::insert_vote(pool, &choices[*choice], voter.id).await {
            Ok(_) => votes += 1,
            Err(sqlx::Error::Database(db))
                if db.constraint() == Some(store::polls::ONE_VOTE_PER_QUESTION) => {}
            Err(e) => return Err(AppError::from(e)),
        }
    }
    Ok(format!(
        "demo data ready: {} new users{}, group Editors, {} questions, {} new votes; every demo account's password is '{}'",
        created.len(),
        if created.is_empty() {
            String::new()
        } else {
            format!(" ({})", created.join(", "))
        },
        questions.len(),
        votes,
        DEMO_PASSWORD
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
