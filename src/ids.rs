//! Opaque ids and pagination cursors.
//!
//! Clients see ids as opaque strings that carry the kind of object they name,
//! so a group id passed where a user id is expected names nothing
//! (`NOT_FOUND`) instead of silently naming user 7. Internally every id is a
//! PostgreSQL `BIGINT`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike};

use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
    Permission,
    Question,
    Choice,
    Vote,
    AuditEntry,
    Webhook,
    WebhookDelivery,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
            Kind::Permission => "Permission",
            Kind::Question => "Question",
            Kind::Choice => "Choice",
            Kind::Vote => "Vote",
            Kind::AuditEntry => "AuditEntry",
            Kind::Webhook => "Webhook",
            Kind::WebhookDelivery => "WebhookDelivery",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Permission => "permission",
            Kind::Question => "question",
            Kind::Choice => "choice",
            Kind::Vote => "vote",
            Kind::AuditEntry => "audit entry",
            Kind::Webhook => "webhook",
            Kind::WebhookDelivery => "webhook delivery",
        }
    }

    /// Where a client finds ids of this kind, for an error message;
    /// `given` is what they sent instead (a username, often, for a user id).
    fn where_from(self, given: &str) -> String {
        match self {
            Kind::User if looks_like_username(given) => {
                format!("user(username: \"{given}\") {{ id }}")
            }
            Kind::User => "user(username: \"…\") { id }".into(),
            Kind::Group => "groups { id name }".into(),
            Kind::Permission => "permissions { id key }".into(),
            Kind::Question => "questions { id text }".into(),
            Kind::Choice => "question(id: …) { choices { id text } }".into(),
            Kind::Vote => "votes(userId: …) { edges { node { id } } }".into(),
            Kind::AuditEntry => "auditLog { edges { node { id } } }".into(),
            Kind::Webhook => "webhooks { id url }".into(),
            Kind::WebhookDelivery => {
                "webhookDeliveries(webhookId: …) { edges { node { id } } }".into()
            }
        }
    }
}

/// Whether `value` could be a username (Django's characters, short enough),
/// so an error may suggest looking the user up by it.
fn looks_like_username(value: &str) -> bool {
    (1..=150).contains(&value.chars().count())
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
}

pub fn encode(kind: Kind, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.tag()))
}

/// Decodes an id the API handed out. Garbage is `INVALID_INPUT` on `field`,
/// echoing (the start of) what was given and saying where such ids come from;
/// a well-formed id of another kind names nothing of this kind: `NOT_FOUND`.
pub fn decode(kind: Kind, value: &str, field: &str) -> Result<i64, AppError> {
    let malformed = || {
        AppError::invalid(
            field,
            format!(
                "{} is not a {} id: ids look like {}; get one from {}",
                echo(value),
                kind.noun(),
                encode(kind, 3),
                kind.where_from(value)
            ),
        )
    };
    if value.len() > 64 {
        return Err(malformed());
    }
    let raw = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| malformed())?;
    let text = std::str::from_utf8(&raw).map_err(|_| malformed())?;
    let (tag, number) = text.split_once(':').ok_or_else(malformed)?;
    let id: i64 = number.parse().map_err(|_| malformed())?;
    if tag != kind.tag() || id <= 0 {
        return Err(AppError::NotFound(kind.noun()));
    }
    Ok(id)
}

/// Every kind, for decoding an id whose kind is not known in advance.
const KINDS: [Kind; 9] = [
    Kind::User,
    Kind::Group,
    Kind::Permission,
    Kind::Question,
    Kind::Choice,
    Kind::Vote,
    Kind::AuditEntry,
    Kind::Webhook,
    Kind::WebhookDelivery,
];

/// Decodes an id that may name any of `kinds` (an argument taking several
/// kinds of record): its kind and number. Garbage is `INVALID_INPUT` on
/// `field`; a well-formed id of another kind names nothing here: `NOT_FOUND`.
pub fn decode_one_of(kinds: &[Kind], value: &str, field: &str) -> Result<(Kind, i64), AppError> {
    let nouns: Vec<&str> = kinds.iter().map(|k| k.noun()).collect();
    let malformed = || {
        AppError::invalid(
            field,
            format!(
                "{} is not an id: ids look like {}; pass the `id` of a {}",
                echo(value),
                encode(kinds[0], 3),
                nouns.join(", ")
            ),
        )
    };
    let (kind, id) = decode_kind(value).ok_or_else(malformed)?;
    if !kinds.contains(&kind) {
        return Err(AppError::NotFound("record"));
    }
    Ok((kind, id))
}

/// The kind and number of a well-formed id of any kind.
pub fn decode_kind(value: &str) -> Option<(Kind, i64)> {
    if value.len() > 64 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()?;
    let (tag, number) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let id: i64 = number.parse().ok().filter(|id| *id > 0)?;
    let kind = KINDS.into_iter().find(|k| k.tag() == tag)?;
    Some((kind, id))
}

/// The most characters of a client's value an error message repeats.
const ECHO_MAX: usize = 40;

/// A value the client sent, quoted for an error message: at most
/// [`ECHO_MAX`] characters (a huge value is not sent back whole) and control
/// characters escaped (so it cannot break the line it is shown on).
pub fn echo(value: &str) -> String {
    let mut shown: String = value
        .chars()
        .take(ECHO_MAX)
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_default())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect();
    if value.chars().nth(ECHO_MAX).is_some() {
        shown.push('…');
    }
    format!("'{shown}'")
}

/// A keyset cursor: the sort key of the last row seen and its id as a tiebreak.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// The sort key, as text (a username, or a timestamp in microseconds).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "i")]
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a cursor always serializes"))
    }

    pub fn decode(value: &str) -> Result<Cursor, AppError> {
        let bad = || AppError::invalid("after", "'after' is not a cursor this API returned");
        if value.len() > 1024 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(value).map_err(|_| bad())?;
        serde_json::from_slice(&raw).map_err(|_| bad())
    }

    /// Whether `key` is a timestamp as cursors carry them (RFC 3339) that
    /// PostgreSQL reads back as a `timestamptz`. Its text form has no year 0
    /// (1 BC is `0001 BC`), so a forged `0000-…` key must be refused here:
    /// in SQL it would be a database error, not an invalid cursor.
    pub fn is_timestamp_key(key: &str) -> bool {
        DateTime::parse_from_rfc3339(key).is_ok_and(|at| at.year() >= 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_their_kind() {
        let id = encode(Kind::User, 42);
        assert_eq!(decode(Kind::User, &id, "id").unwrap(), 42);
        assert!(matches!(
            decode(Kind::Group, &id, "id"),
            Err(AppError::NotFound("group"))
        ));
        assert!(matches!(
            decode(Kind::User, "nonsense!", "id"),
            Err(AppError::InvalidInput { .. })
        ));
        assert!(matches!(
            decode(Kind::User, &URL_SAFE_NO_PAD.encode("User:-1"), "id"),
            Err(AppError::NotFound(_))
        ));
        assert!(matches!(
            decode(Kind::User, "", "id"),
            Err(AppError::InvalidInput { .. })
        ));
    }

    #[test]
    fn a_malformed_id_is_echoed_with_where_ids_come_from() {
        let Err(AppError::InvalidInput { field, message }) = decode(Kind::User, "alice", "id")
        else {
            panic!("alice is no id");
        };
        assert_eq!(field, "id");
        assert_eq!(
            message,
            "'alice' is not a user id: ids look like VXNlcjoz; get one from user(username: \"alice\") { id }"
        );
        let long = "x".repeat(500);
        let Err(AppError::InvalidInput { message, .. }) = decode(Kind::Group, &long, "groupId")
        else {
            panic!("no id");
        };
        assert!(message.starts_with(&format!("'{}…' is not a group id", "x".repeat(40))));
        assert!(message.len() < 160, "{message}");
        assert_eq!(echo("a\nb"), "'a\\nb'");
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            key: Some("alice".into()),
            id: 9,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("%%%").is_err());
    }

    #[test]
    fn timestamp_keys_are_ones_postgresql_reads() {
        assert!(Cursor::is_timestamp_key("2026-12-01T08:00:00.000000Z"));
        assert!(Cursor::is_timestamp_key("0001-01-01T00:00:00+14:00"));
        for bad in [
            "0000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "x",
        ] {
            assert!(!Cursor::is_timestamp_key(bad), "{bad}");
        }
    }
}
