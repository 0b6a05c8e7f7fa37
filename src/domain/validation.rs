//! Input validation: every text that reaches the database passes through here
//! first, so bad input is an `INVALID_INPUT` naming the field, never a
//! database error.

use chrono::{DateTime, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::Mode;
use crate::config::{PasswordPolicy, ReasonPolicy};
use crate::error::AppError;

pub const MAX_USERNAME: usize = 150;
pub const MAX_NAME: usize = 150;
pub const MAX_EMAIL: usize = 254;
/// Long enough for any passphrase, short enough that hashing stays cheap.
pub const MAX_PASSWORD: usize = 1024;
pub const MAX_TEXT: usize = 2000;

pub use super::username::{PSEUDONYM_PREFIX, Username, username, username_fold, username_key};

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

/// The `reason` of an operation that removes access or data (a deletion,
/// an anonymization, a deactivation, an archiving): its form checked as
/// [`reason`] does, and present where the organisation requires one
/// ([`ReasonPolicy::Required`]).
///
/// Those operations take a `Reason`, not a string, and a caller's text
/// becomes one only through [`Reason::given`], which applies the policy:
/// an operation added later cannot pass a client's reason through unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(Option<String>);

impl Reason {
    /// A caller's `reason` under `policy`. Blank counts as missing. A
    /// preview ([`Mode::Preview`]) needs none, required or not: it writes
    /// nothing, so there is nothing to explain.
    pub fn given(raw: Option<&str>, policy: ReasonPolicy, mode: Mode) -> Result<Reason, AppError> {
        let text = reason("reason", raw)?;
        if text.is_none() && policy == ReasonPolicy::Required && mode == Mode::Execute {
            return Err(AppError::invalid(
                "reason",
                "a reason is required here (MEMBERDESK_REQUIRE_REASON): say why, for the audit log",
            ));
        }
        Ok(Reason(text))
    }

    /// A reason memberdesk writes itself (`dormant for more than 365 days`).
    pub fn system(text: impl Into<String>) -> Reason {
        Reason(Some(text.into()))
    }

    /// No reason, for memberdesk's own calls that have none to give (demo
    /// data, tests); a caller's missing reason goes through [`Reason::given`].
    pub fn none() -> Reason {
        Reason(None)
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// Passwords are judged on at most this many characters: zxcvbn's cost
/// grows steeply with length (seconds for some 100-character inputs in an
/// unoptimized build), and if a prefix is hard to guess, so is the whole.
pub const JUDGED_PASSWORD_CHARS: usize = 64;

/// zxcvbn's score 3 ("safely unguessable") begins at 10^8 guesses.
const SCORE_3_GUESSES: f64 = 1e8;

/// OWASP ASVS level 2: at least `policy.min_length` characters and hard to
/// guess by zxcvbn's estimate (score 3 or more), with the person's own
/// username, email and names counted as the first words an attacker tries.
/// No composition rules (ASVS 2.1.9). The refusal carries zxcvbn's advice.
///
/// CPU-heavy (see [`JUDGED_PASSWORD_CHARS`]): call it off the async
/// workers, as `auth::password::check_strength` does.
pub fn password(
    field: &str,
    password: &SecretString,
    policy: &PasswordPolicy,
    user_inputs: &[&str],
) -> Result<(), AppError> {
    let pw = password.expose_secret();
    let chars = pw.chars().count();
    if chars < policy.min_length {
        let min = policy.min_length;
        return Err(AppError::invalid(
            field,
            format!(
                "password must be at least {min} characters; a few unrelated words make a good one"
            ),
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
    let judged: String = pw.chars().take(JUDGED_PASSWORD_CHARS).collect();
    let inputs = personal_words(user_inputs);
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let estimate = zxcvbn::zxcvbn(&judged, &inputs);
    if u8::from(estimate.score()) < 3 {
        return Err(AppError::invalid(field, too_guessable(&estimate)));
    }
    if guesses_by_parts(estimate.sequence()) < SCORE_3_GUESSES {
        return Err(AppError::invalid(
            field,
            "password is too easy to guess: a common word with a year, digits or symbols \
             added is among the first guesses. Add another word or two. Uncommon words are better.",
        ));
    }
    Ok(())
}

/// The user inputs for zxcvbn: each given text, and an email's local part
/// on its own (`rani` of `rani@example.org`), which is what gets reused.
fn personal_words(user_inputs: &[&str]) -> Vec<String> {
    let mut words = Vec::new();
    for input in user_inputs
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
    {
        words.push(input.to_owned());
        if let Some((local, _)) = input.split_once('@') {
            words.push(local.to_owned());
        }
    }
    words
}

/// zxcvbn's estimate without its allowance for the number of parts.
///
/// zxcvbn multiplies the parts' guesses by 10^4 for each part after the
/// first, for an attacker who does not know how the password is built. A
/// rule-based cracker does know the common recipe (word + year + symbols):
/// `Summer2026!!` scores 3 only through that allowance, while its parts
/// take about 10^6 guesses together.
fn guesses_by_parts(sequence: &[zxcvbn::Match]) -> f64 {
    let orderings: f64 = (1..=sequence.len()).map(|n| n as f64).product();
    sequence
        .iter()
        .map(|part| part.guesses.unwrap_or(1) as f64)
        .product::<f64>()
        * orderings
}

/// zxcvbn's warning and suggestions as one line.
fn too_guessable(estimate: &zxcvbn::Entropy) -> String {
    let mut message = String::from("password is too easy to guess:");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push_str(&format!(" {warning}"));
        }
        for suggestion in feedback.suggestions() {
            message.push_str(&format!(" {suggestion}"));
        }
    }
    if message.ends_with(':') {
        message.push_str(" Add another word or two. Uncommon words are better.");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_accepts, assert_refuses};

    #[test]
    fn emails() {
        assert_eq!(email("email", " a@b.org ").unwrap(), "a@b.org");
        assert_eq!(email("email", "").unwrap(), "");
        assert_refuses(
            |raw| email("email", raw),
            &[
                "nope",
                "a@b",
                "@b.org",
                "a@.org",
                "a b@c.org",
                "a@b..org",
                "a\0@b.org",
            ],
        );
    }

    #[test]
    fn passwords_must_be_long_and_hard_to_guess() {
        let policy = PasswordPolicy::default();
        let check = |pw: &str| {
            password(
                "password",
                &SecretString::from(pw),
                &policy,
                &["rani", "rani@example.org"],
            )
        };
        assert_accepts(
            check,
            &[
                "correct horse battery staple",
                "memberdesk-demo",
                "orbit tulip canyon whisper",
            ],
        );
        let refused = [
            "short",
            "Password123!",
            "qwertyuiop12",
            "Summer2026!!",
            "Winter2025!!",
            "ranirani2026",
            &"a".repeat(16),
        ];
        for (bad, err) in assert_refuses(check, &refused) {
            assert!(
                matches!(&err, AppError::InvalidInput { field, .. } if field == "password"),
                "{bad}"
            );
        }
        assert!(check(&"a".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(check("correct horse\0battery staple").is_err());
        let longer = PasswordPolicy { min_length: 40 };
        assert!(
            password(
                "password",
                &SecretString::from("correct horse battery staple"),
                &longer,
                &[]
            )
            .is_err()
        );
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
    fn a_required_reason_must_be_given_except_for_a_preview() {
        use ReasonPolicy::{Optional, Required};
        let given = |raw, policy, mode| Reason::given(raw, policy, mode);
        for missing in [None, Some(""), Some("  \n ")] {
            match given(missing, Required, Mode::Execute) {
                Err(AppError::InvalidInput { field, .. }) => assert_eq!(field, "reason"),
                other => panic!("{missing:?}: {other:?}"),
            }
            assert_eq!(
                given(missing, Required, Mode::Preview).unwrap(),
                Reason::none()
            );
            assert_eq!(
                given(missing, Optional, Mode::Execute).unwrap(),
                Reason::none()
            );
        }
        let kept = given(Some(" spam "), Required, Mode::Execute).unwrap();
        assert_eq!(kept.as_deref(), Some("spam"));
        assert!(given(Some("x\0"), Optional, Mode::Preview).is_err());
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
