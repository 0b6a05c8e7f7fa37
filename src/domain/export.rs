//! The data export for an access or erasure request (GDPR articles 15 and
//! 20): everything memberdesk holds about one person, in one document, to
//! hand over before an erasure takes it away.
//!
//! Every export is audited (`USER_DATA_EXPORTED`) with the SHA-256 of the
//! document in its canonical form ([`canonical_json`]). That digest is what
//! the erasure's receipt names (`domain::erasure`): memberdesk keeps no copy
//! of what it handed over, yet the person (or an auditor) can later show
//! that a document is exactly what was held, by hashing it.
//!
//! [`SECTIONS`] names the table behind each part of the document; a test
//! compares it with PostgreSQL's catalog of foreign keys to `users`, so a
//! new table holding something about a person cannot be left out.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::audit::{AuditAction, AuditEntry, Target};
use super::{Actor, authority};
use crate::error::{AppResult, OrNotFound};
use crate::store::{export, users};

/// One part of the export and the foreign key to `users` it follows.
#[derive(Debug)]
pub struct Section {
    /// The document's key for it.
    pub key: &'static str,
    pub table: &'static str,
    pub column: &'static str,
}

const fn section(key: &'static str, table: &'static str, column: &'static str) -> Section {
    Section { key, table, column }
}

/// Every foreign key to `users`, and where the export shows its rows. The
/// `users` row itself is `profile`.
pub const SECTIONS: &[Section] = &[
    section("groups", "user_groups", "user_id"),
    section("permissions", "user_permissions", "user_id"),
    section("votes", "votes", "user_id"),
    section("questionsCreated", "questions", "created_by"),
    section("deactivations", "deactivations", "user_id"),
    section("sessions", "sessions", "user_id"),
    section("auditEntries", "audit_entries", "actor_id"),
    section("auditEntries", "audit_entries", "target_user_id"),
];

/// The export shows everything about the person, so it follows the scope
/// rule like any action on their account. The document is read and the
/// export audited in one transaction: an export nobody can account for
/// does not happen.
pub async fn export_user_data(pool: &PgPool, actor: &Actor, user_id: i64) -> AppResult<Value> {
    let mut tx = pool.begin().await?;
    let user = users::find(&mut *tx, user_id).await.or_not_found("user")?;
    authority::ensure_scope(&mut tx, actor, &user).await?;
    let document = export::user_data(&mut *tx, user_id)
        .await
        .or_not_found("user")?;
    let details = json!({ "sha256": sha256_hex(&document), "format": CANONICAL_FORM });
    AuditEntry::new(AuditAction::UserDataExported, Target::User(&user))
        .by(actor)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(document)
}

/// How a document is written before it is hashed, as the audit entry and
/// the receipt say it.
pub const CANONICAL_FORM: &str = "JSON with object keys sorted, no whitespace, UTF-8 (RFC 8785)";

/// The SHA-256 of `document`'s canonical form, as lower-case hex.
pub fn sha256_hex(document: &Value) -> String {
    let digest = Sha256::digest(canonical_json(document).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` as JSON text with every object's keys sorted and no whitespace:
/// the same text for the same document, whoever writes it (RFC 8785's form
/// for the strings, integers and keys memberdesk's documents hold), so a
/// client can recompute the digest from the document it received.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // RFC 8785 sorts by UTF-16 code units; keys here are ASCII, where
            // that is byte order.
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level_and_drops_whitespace() {
        let doc: Value =
            serde_json::from_str(r#"{ "b": [ {"z": 1, "a": "é\n"} ], "a": null }"#).unwrap();
        assert_eq!(
            canonical_json(&doc),
            r#"{"a":null,"b":[{"a":"é\n","z":1}]}"#
        );
        assert_eq!(
            sha256_hex(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
