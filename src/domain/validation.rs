//! Input validation: every text that reaches the database passes through here
//! first, so bad input is an `INVALID_INPUT` naming the field, never a
//! database error.

use chrono::{DateTime, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use crate::error::AppError;

pub const MAX_USERNAME: usize = 150;
pub const MAX_NAME: usize = 150;
pub const MAX_EMAIL: usize = 254;
pub const MIN_PASSWORD: usize = 8;
/// Long enough for any passphrase, short enough that hashing stays cheap.
pub const MAX_PASSWORD: usize = 1024;
pub const MAX_TEXT: usize = 2000;

/// The key under which usernames are unique and looked up: NFKC-normalized
/// and lower-cased, so `Admin`, `admin` and `ＡＤＭＩＮ` are one username.
pub fn username_key(username: &str) -> String {
    username.nfkc().collect::<String>().to_lowercase()
}

/// A valid username as stored: NFKC-normalized, 1 to 150 letters, digits and
/// `@.+-_` (Django's rule).
pub fn username(field: &str, raw: &str) -> Result<String, AppError> {
    let name: String = raw.nfkc().collect();
    if name.is_empty() {
        return Err(AppError::invalid(field, "username must not be empty"));
    }
    if name.chars().count() > MAX_USERNAME {
        return Err(AppError::invalid(
            field,
            format!("username must be at most {MAX_USERNAME} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        return Err(AppError::invalid(
            field,
            "username may contain only letters, digits and @ . + - _",
        ));
    }
    Ok(name)
}

/// An email address: empty (none), or one plausible address.
pub fn email(field: &str, raw: &str) -> Result<String, AppError> {
    let email = raw.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let bad = || AppError::invalid(field, "email must be a valid address like name@example.org");
    if email.chars().count() > MAX_EMAIL
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.contains('@') || !domain_ok {
        return Err(bad());
    }
    Ok(email.to_owned())
}

/// The earliest instant PostgreSQL's `timestamptz` holds: 24 November 4714 BC
/// (year -4713 counted astronomically), midnight UTC. Its latest, in 294276 AD,
/// lies past anything chrono represents (year 262143), so it needs no check.
fn earliest_timestamptz() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(-4713, 11, 24)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// An instant a client gave for `field`, checked against what PostgreSQL can
/// compare with: earlier ones would be a database error, not a filter.
pub fn instant(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
    if at < earliest_timestamptz() {
        return Err(AppError::invalid(
            field,
            format!("{field} must be from 4713 BC to 294276 AD"),
        ));
    }
    Ok(at)
}

/// A single-line text such as a first name: trimmed, at most `max` characters,
/// no control characters (NUL included).
pub fn line(field: &str, raw: &str, max: usize, required: bool) -> Result<String, AppError> {
    let value = raw.trim();
    if required && value.is_empty() {
        return Err(AppError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An optional free-text reason (multi-line allowed, no NUL or other controls).
pub fn reason(field: &str, raw: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let value = raw.trim();
    if value.chars().count() > MAX_TEXT {
        return Err(AppError::invalid(
            field,
            format!("{field} must be at most {MAX_TEXT} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(if value.is_empty() {
        None
    } else {
        Some(value.to_owned())
    })
}

/// Django-style password rules: long enough, not too common, not all digits,
/// not the username.
pub fn password(field: &str, password: &SecretString, username: &str) -> Result<(), AppError> {
    let pw = password.expose_secret();
    let chars = pw.chars().count();
    if chars < MIN_PASSWORD {
        return Err(AppError::invalid(
            field,
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if chars > MAX_PASSWORD {
        return Err(AppError::invalid(
            field,
            format!("password must be at most {MAX_PASSWORD} characters"),
        ));
    }
    if pw.contains('\0') {
        return Err(AppError::invalid(
            field,
            "password must not contain NUL bytes",
        ));
    }
    if pw.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::invalid(
            field,
            "password must not be entirely numeric",
        ));
    }
    let lowered = pw.to_lowercase();
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err(AppError::invalid(field, "password is too common"));
    }
    if !username.is_empty() && username_key(pw) == username_key(username) {
        return Err(AppError::invalid(
            field,
            "password is too similar to the username",
        ));
    }
    Ok(())
}

/// The most common passwords of at least eight characters (from public breach lists).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "abc12345",
    "admin123",
    "administrator",
    "letmein1",
    "trustno1",
    "superman",
    "michelle",
    "passw0rd",
    "p@ssw0rd",
    "changeme",
    "11111111",
    "00000000",
    "88888888",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "qwertyui",
    "asdfghjkl",
    "starwars",
    "whatever",
    "dragon123",
    "monkey123",
    "master123",
    "computer",
    "internet",
    "jennifer",
    "corvette",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_unique_across_case_and_width() {
        assert_eq!(username_key("Admin"), "admin");
        assert_eq!(username_key("ＡＤＭＩＮ"), "admin");
        assert_eq!(username("username", "ＡＤＭＩＮ").unwrap(), "ADMIN");
        assert!(username("username", "").is_err());
        assert!(username("username", "a b").is_err());
        assert!(username("username", "nul\0byte").is_err());
        assert!(username("username", &"x".repeat(151)).is_err());
        assert!(username("username", "rani-editor").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(email("email", " a@b.org ").unwrap(), "a@b.org");
        assert_eq!(email("email", "").unwrap(), "");
        for bad in [
            "nope",
            "a@b",
            "@b.org",
            "a@.org",
            "a b@c.org",
            "a@b..org",
            "a\0@b.org",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        let ok = SecretString::from("a long passphrase");
        assert!(password("password", &ok, "rani").is_ok());
        for bad in ["short", "12345678901", "Password123", "ranirani"] {
            assert!(
                password("password", &SecretString::from(bad), "ranirani").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn lines_and_reasons() {
        assert_eq!(line("firstName", "  Rani ", 150, false).unwrap(), "Rani");
        assert!(line("firstName", "a\0b", 150, false).is_err());
        assert!(line("name", "", 150, true).is_err());
        assert_eq!(reason("reason", Some("  ")).unwrap(), None);
        assert!(reason("reason", Some("x\0")).is_err());
    }

    #[test]
    fn instants_postgresql_cannot_hold_are_refused() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let earliest = at("-4713-11-24T00:00:00Z");
        // PostgreSQL's own lower bound, in its microseconds since 2000.
        let pg_epoch = at("2000-01-01T00:00:00Z");
        assert_eq!(
            (earliest - pg_epoch).num_microseconds(),
            Some(-211_813_488_000_000_000)
        );
        assert!(instant("since", earliest).is_ok());
        assert!(instant("since", at("2026-01-01T00:00:00Z")).is_ok());
        assert!(instant("since", DateTime::<Utc>::MAX_UTC).is_ok());
        for bad in ["-4713-11-23T23:59:59Z", "-10000-01-01T00:00:00Z"] {
            match instant("since", at(bad)) {
                Err(AppError::InvalidInput { field, .. }) => assert_eq!(field, "since"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
