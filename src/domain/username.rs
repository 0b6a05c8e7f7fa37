//! Usernames: how they are written, and the key under which they are unique
//! and looked up. A [`Username`] carries both, computed once, so no caller
//! can store a name under a key computed from another spelling, and no
//! caller has to remember to compute the key at all.

use unicode_normalization::UnicodeNormalization;

use super::validation::MAX_USERNAME;
use crate::error::AppError;

/// A username as stored (NFKC-normalized) with its lookup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    name: String,
    key: String,
}

impl Username {
    /// Whatever was typed, unchecked, with its key: for looking someone up
    /// (a login, the demo's accounts), never for storing.
    pub fn typed(raw: &str) -> Username {
        Username {
            name: raw.to_owned(),
            key: username_key(raw),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The key it is unique under (see [`username_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The key under which usernames are unique and looked up: NFKC-normalized
/// and lower-cased (so `Admin`, `admin` and `ＡＤＭＩＮ` are one username),
/// then reduced to its Unicode TR39 confusables skeleton, so names that look
/// alike (`admin` with a Cyrillic `а`, `rn` for `m`, `1` for `l`) are one
/// username too. Not meant to be read: `admin`'s key is `adrnin`.
pub fn username_key(username: &str) -> String {
    // A skeleton can hold capitals (`0` becomes `O`), which folding changes
    // again; a few rounds reach the fixed point, so a key is its own key.
    let mut key = username_fold(username);
    for _ in 0..4 {
        let next = username_fold(&unicode_security::skeleton(&key).collect::<String>());
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// The key as it was before confusables were folded in (NFKC and lower
/// case only). Accounts whose look-alike already existed keep it; see
/// `db::username_keys`.
pub fn username_fold(username: &str) -> String {
    username.nfkc().collect::<String>().to_lowercase()
}

/// Usernames nobody may take: the audit log's actor for the command line
/// and cron jobs.
const RESERVED_USERNAMES: &[&str] = &["system"];
/// What anonymization renames people to (`deleted-user-<n>`).
pub const PSEUDONYM_PREFIX: &str = "deleted-user-";

/// A valid username as stored: NFKC-normalized, 1 to 150 letters, digits and
/// `@.+-_` (Django's rule), not reserved and not an anonymized user's
/// pseudonym (or a look-alike of either).
pub fn username(field: &str, raw: &str) -> Result<Username, AppError> {
    let name = username_shape(field, raw)?;
    let key = username_key(&name);
    if RESERVED_USERNAMES.iter().any(|r| key == username_key(r)) {
        return Err(AppError::invalid(field, "that username is reserved"));
    }
    if key.starts_with(&username_key(PSEUDONYM_PREFIX)) {
        return Err(AppError::invalid(
            field,
            format!(
                "usernames starting with '{PSEUDONYM_PREFIX}' are reserved for anonymized users"
            ),
        ));
    }
    Ok(Username { name, key })
}

fn username_shape(field: &str, raw: &str) -> Result<String, AppError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_unique_across_case_and_width() {
        assert_eq!(username_key("Admin"), username_key("admin"));
        assert_eq!(username_key("ＡＤＭＩＮ"), username_key("admin"));
        assert_eq!(
            username_key("\u{430}dmin"),
            username_key("admin"),
            "Cyrillic a"
        );
        assert_ne!(username_key("admin"), username_key("admln"));
        assert_eq!(username_fold("ＡＤＭＩＮ"), "admin");
        for reserved in [
            "system",
            "SYSTEM",
            "\u{455}ystem",
            "deleted-user-7",
            "Deleted-User-x",
            "de1eted-user-1",
        ] {
            assert!(username("username", reserved).is_err(), "{reserved}");
        }
        assert!(username("username", "systems").is_ok());
        assert!(username("username", "deleted-users").is_ok());
        assert_eq!(
            username("username", "ＡＤＭＩＮ").unwrap().as_str(),
            "ADMIN"
        );
        assert!(username("username", "").is_err());
        assert!(username("username", "a b").is_err());
        assert!(username("username", "nul\0byte").is_err());
        assert!(username("username", &"x".repeat(151)).is_err());
        assert!(username("username", "rani-editor").is_ok());
    }
}
