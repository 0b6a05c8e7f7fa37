//! Runtime settings, with the defaults a fresh install should have.

use std::time::Duration;

/// The database memberdesk uses when `DATABASE_URL` is unset (user from the
/// environment, as libpq does).
pub const DEFAULT_DATABASE_URL: &str = "postgres://localhost/memberdesk";
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a session token from `login` stays valid.
    pub session_ttl: chrono::Duration,
    pub login_limit: LoginLimit,
    /// Largest request body accepted on `/graphql`.
    pub max_body_bytes: usize,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
}

/// Failed logins allowed per username and per client address within `window`.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimit {
    pub per_username: i32,
    pub per_address: i32,
    pub window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_ttl: chrono::Duration::hours(12),
            login_limit: LoginLimit {
                per_username: 5,
                per_address: 50,
                window: Duration::from_secs(15 * 60),
            },
            max_body_bytes: 256 * 1024,
            max_query_depth: 16,
            max_query_complexity: 2_000,
        }
    }
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            // libpq takes the user from the environment; a shell without
            // one (cron, containers) would otherwise log in as "anonymous".
            let has_user = ["PGUSER", "USER"]
                .iter()
                .any(|v| std::env::var(v).is_ok_and(|u| !u.is_empty()));
            if has_user {
                DEFAULT_DATABASE_URL.to_owned()
            } else {
                "postgres://postgres@localhost/memberdesk".to_owned()
            }
        })
}
