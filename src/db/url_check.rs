//! `DATABASE_URL`, checked before any connection is tried.
//!
//! Two values connect somewhere nobody meant: an empty one (which used to
//! fall back to the default database) and a URL without a database name
//! (PostgreSQL then picks the server's default database, `postgres`, and the
//! migrations would create memberdesk's tables there). Two more are not
//! PostgreSQL URLs at all although they look close: another database's URL
//! (`mysql://…`, which sqlx would otherwise try as PostgreSQL on that port)
//! and a libpq key/value string (`host=… dbname=…`, which sqlx does not
//! parse). Each is refused with a line saying what to write instead.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use super::StartupError;

/// Refuses a `DATABASE_URL` that is empty, not a PostgreSQL URL, or names
/// no database; anything else is left to sqlx's parser.
pub(super) fn check(url: &str) -> Result<(), StartupError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StartupError::EmptyUrl);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return match key_value_as_url(url) {
            Some(url) => Err(StartupError::KeyValueUrl { url }),
            // Not a URL at all: sqlx's parser says why.
            None => Ok(()),
        };
    };
    if !["postgres", "postgresql"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(StartupError::ForeignScheme {
            scheme: scheme.to_owned(),
        });
    }
    if names_database(rest) {
        return Ok(());
    }
    let example = match PgConnectOptions::from_str(url) {
        Ok(opts) => format!(
            "postgres://{}@{}:{}/memberdesk",
            opts.get_username(),
            opts.get_host(),
            opts.get_port()
        ),
        Err(_) => "postgres://USER@HOST:5432/memberdesk".to_owned(),
    };
    Err(StartupError::NoDatabaseName { example })
}

/// Whether the part of a URL after `scheme://` names a database: in its
/// path (`/memberdesk`) or as a `dbname=` parameter, as sqlx reads them.
/// `PGDATABASE` does not count: a variable left in a shell must not decide
/// where the tables go.
fn names_database(after_scheme: &str) -> bool {
    let after_authority = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |at| &after_scheme[at..]);
    let without_fragment = after_authority.split('#').next().unwrap_or("");
    let (path, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    !path.trim_start_matches('/').is_empty()
        || query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .any(|(key, value)| key == "dbname" && !value.is_empty())
}

/// The URL a libpq key/value string (`host=db port=5432 dbname=m`) stands
/// for, to show the operator how to write it; `None` when `value` is not one.
/// A password is never echoed: it becomes the placeholder `PASSWORD`.
fn key_value_as_url(value: &str) -> Option<String> {
    let pairs: Vec<(&str, &str)> = value
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim().trim_matches('\'')))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let get = |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, v)| *v);
    let user = match (get("user"), get("password")) {
        (Some(user), Some(_)) => format!("{user}:PASSWORD@"),
        (Some(user), None) => format!("{user}@"),
        (None, _) => String::new(),
    };
    let host = get("host").unwrap_or("localhost");
    let port = get("port").unwrap_or("5432");
    let database = get("dbname").unwrap_or("memberdesk");
    let mut url = format!("postgres://{user}{host}:{port}/{database}");
    let parameters: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| !["user", "password", "host", "port", "dbname"].contains(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if !parameters.is_empty() {
        url.push('?');
        url.push_str(&parameters.join("&"));
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_accepts, assert_refuses};

    fn refusal(url: &str) -> String {
        check(url).unwrap_err().to_string()
    }

    #[test]
    fn a_database_name_in_the_path_or_as_dbname_is_required() {
        assert_accepts(
            check,
            &[
                "postgres://u@h:5432/m",
                "postgresql://u@h/m?sslmode=require",
                "postgres:///m?host=/var/run/postgresql",
                "postgres://u@h:5432/?dbname=m",
                "POSTGRES://h/m",
            ],
        );
        let unnamed = [
            "postgres://u@h:5432/",
            "postgres://u@h:5432",
            "postgres://u:secret@h/?sslmode=require",
            "postgres://u@h/#m",
        ];
        for (url, err) in assert_refuses(check, &unnamed) {
            let message = err.to_string();
            assert!(
                message.starts_with("DATABASE_URL names no database"),
                "{url}: {message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
        assert_eq!(
            refusal("postgres://u@h:6543/"),
            "DATABASE_URL names no database, so memberdesk would put its tables in the server's default database: end it with the database's name, e.g. postgres://u@h:6543/memberdesk"
        );
    }

    #[test]
    fn key_value_strings_are_shown_as_the_url_they_mean() {
        assert_eq!(
            refusal(
                "host=db.example port=5433 user=alice password='s3cret' dbname=members sslmode=require"
            ),
            "DATABASE_URL is a libpq key/value string, but memberdesk takes a URL: write it as postgres://alice:PASSWORD@db.example:5433/members?sslmode=require"
        );
        assert_eq!(
            key_value_as_url("dbname=m").as_deref(),
            Some("postgres://localhost:5432/m")
        );
        assert!(check("not a url").is_ok(), "left to sqlx's parser");
    }

    #[test]
    fn other_schemes_and_empty_values_are_refused() {
        assert_eq!(
            refusal("mysql://root@localhost:3306/members"),
            "DATABASE_URL is a mysql:// URL, but memberdesk needs PostgreSQL: set it to a postgres:// URL, e.g. postgres://USER@HOST:5432/memberdesk"
        );
        assert!(refusal("  ").starts_with("DATABASE_URL is set but empty"));
    }
}
