//! SCIM resources as JSON: memberdesk's users and groups shown in the core
//! User and Group schemas (RFC 7643), read back from what a client sends,
//! and cut down to the attributes a client asked for.
//!
//! A resource's `meta.version` is a digest of what it shows, so it changes
//! exactly when the resource does, with no version column to keep.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::ScimError;
use super::filter::AttrPath;
use crate::domain::provisioning::{Member, Person};
use crate::store::groups::GroupRow;
use crate::store::users::UserRow;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A user as a SCIM User. `groups` are (id, name) pairs.
pub fn user(
    base: &str,
    row: &UserRow,
    external_id: Option<&String>,
    groups: &[(i64, String)],
) -> Value {
    let display = format!("{} {}", row.first_name, row.last_name);
    let display = display.trim();
    let mut body = json!({
        "schemas": [USER_SCHEMA],
        "id": row.id.to_string(),
        "userName": row.username,
        "displayName": if display.is_empty() { row.username.as_str() } else { display },
        "active": row.is_active,
    });
    let object = body.as_object_mut().expect("an object");
    let mut name = Map::new();
    if !row.first_name.is_empty() {
        name.insert("givenName".into(), json!(row.first_name));
    }
    if !row.last_name.is_empty() {
        name.insert("familyName".into(), json!(row.last_name));
    }
    if !name.is_empty() {
        object.insert("name".into(), Value::Object(name));
    }
    if !row.email.is_empty() {
        object.insert("emails".into(), json!([{ "value": row.email }]));
    }
    if let Some(external_id) = external_id {
        object.insert("externalId".into(), json!(external_id));
    }
    if !groups.is_empty() {
        let list: Vec<Value> = groups
            .iter()
            .map(|(id, name)| json!({ "value": id.to_string(), "display": name, "$ref": format!("{base}/Groups/{id}"), "type": "direct" }))
            .collect();
        object.insert("groups".into(), Value::Array(list));
    }
    let modified = row
        .deactivated_at
        .unwrap_or(row.date_joined)
        .max(row.date_joined);
    with_meta(
        body,
        "User",
        format!("{base}/Users/{}", row.id),
        row.date_joined,
        modified,
    )
}

/// A group as a SCIM Group.
pub fn group(
    base: &str,
    row: &GroupRow,
    external_id: Option<&String>,
    members: &[&Member],
) -> Value {
    let list: Vec<Value> = members
        .iter()
        .map(|m| json!({ "value": m.user_id.to_string(), "$ref": format!("{base}/Users/{}", m.user_id) }))
        .collect();
    let mut body = json!({
        "schemas": [GROUP_SCHEMA],
        "id": row.id.to_string(),
        "displayName": row.name,
        "members": list,
    });
    if let Some(external_id) = external_id {
        body["externalId"] = json!(external_id);
    }
    let epoch = chrono::DateTime::UNIX_EPOCH;
    with_meta(
        body,
        "Group",
        format!("{base}/Groups/{}", row.id),
        epoch,
        epoch,
    )
}

fn with_meta(
    mut body: Value,
    resource_type: &str,
    location: String,
    created: chrono::DateTime<chrono::Utc>,
    modified: chrono::DateTime<chrono::Utc>,
) -> Value {
    let version = version_of(&body);
    body["meta"] = json!({
        "resourceType": resource_type,
        "created": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "lastModified": modified.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "location": location,
        "version": version,
    });
    body
}

/// A weak ETag over what the resource shows (its `meta` aside).
fn version_of(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// The version a rendered resource carries.
pub fn version(resource: &Value) -> &str {
    resource["meta"]["version"].as_str().unwrap_or_default()
}

/// The attribute of `object` named `name` in any case.
pub fn get_ci<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(object: &Value, name: &str) -> Result<String, ScimError> {
    match get_ci(object, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// `active` as Entra ID sends it too: a boolean, or "True"/"False".
fn active(object: &Value) -> Result<bool, ScimError> {
    match get_ci(object, "active") {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ScimError::invalid_value("active must be true or false")),
    }
}

/// The address memberdesk keeps: the primary email, else the work one,
/// else the first.
fn email(object: &Value) -> Result<String, ScimError> {
    let Some(emails) = get_ci(object, "emails").filter(|v| !v.is_null()) else {
        return Ok(String::new());
    };
    let list = emails
        .as_array()
        .ok_or_else(|| ScimError::invalid_value("emails must be a list"))?;
    // memberdesk shows its one address without a type, so an Entra ID
    // update of `emails[type eq "work"].value` arrives as a second, typed
    // entry: it wins over the untyped one.
    let is_work = |e: &&Value| get_ci(e, "type").and_then(Value::as_str) == Some("work");
    let primary = list
        .iter()
        .find(|e| get_ci(e, "primary").is_some_and(is_true))
        .or_else(|| list.iter().find(is_work))
        .or_else(|| list.first());
    match primary {
        Some(entry) => text(entry, "value"),
        None => Ok(String::new()),
    }
}

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// The person a User resource describes; `userName` is required.
pub fn person(body: &Value) -> Result<Person, ScimError> {
    let username = text(body, "userName")?;
    if username.trim().is_empty() {
        return Err(ScimError::invalid_value("userName is required"));
    }
    let name = get_ci(body, "name").cloned().unwrap_or(Value::Null);
    Ok(Person {
        username,
        email: email(body)?,
        first_name: text(&name, "givenName")?,
        last_name: text(&name, "familyName")?,
        active: active(body)?,
    })
}

/// The `externalId` a resource carries (none when absent or blank).
pub fn external_id(body: &Value) -> Result<Option<String>, ScimError> {
    let id = text(body, "externalId")?;
    Ok(Some(id).filter(|i| !i.trim().is_empty()))
}

/// A Group resource's name and member ids.
pub fn group_parts(body: &Value) -> Result<(String, Vec<i64>), ScimError> {
    let name = text(body, "displayName")?;
    if name.trim().is_empty() {
        return Err(ScimError::invalid_value("displayName is required"));
    }
    let members = match get_ci(body, "members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| {
                let id = text(m, "value")?;
                id.parse::<i64>()
                    .map_err(|_| ScimError::invalid_value(format!("no user has the id '{id}'")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ScimError::invalid_value("members must be a list")),
    };
    let mut members: Vec<i64> = members;
    members.sort_unstable();
    members.dedup();
    Ok((name, members))
}

/// Which attributes a response carries (`attributes` / `excludedAttributes`).
#[derive(Debug, Default, Clone)]
pub struct Projection {
    only: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

/// Attributes returned whatever is asked (RFC 7643 `returned: always`).
const ALWAYS: [&str; 2] = ["id", "schemas"];

impl Projection {
    pub fn new(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        let list = |raw: Option<&str>| -> Vec<AttrPath> {
            raw.unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(AttrPath::parse)
                .collect()
        };
        Projection {
            only: list(attributes),
            excluded: list(excluded),
        }
    }

    pub fn apply(&self, mut resource: Value) -> Value {
        let Some(object) = resource.as_object_mut() else {
            return resource;
        };
        if !self.only.is_empty() {
            let wanted = |key: &str| {
                let key = key.to_ascii_lowercase();
                ALWAYS.contains(&key.as_str())
                    || self
                        .only
                        .iter()
                        .any(|p| p.0 == key || p.0.starts_with(&format!("{key}.")))
            };
            object.retain(|k, _| wanted(k));
            for (key, value) in object.iter_mut() {
                let subs: Vec<&str> = self
                    .only
                    .iter()
                    .filter_map(|p| p.0.strip_prefix(&format!("{}.", key.to_ascii_lowercase())))
                    .collect();
                if !subs.is_empty() && !self.only.iter().any(|p| p.0.eq_ignore_ascii_case(key)) {
                    keep_subs(value, &subs);
                }
            }
        }
        for path in &self.excluded {
            if ALWAYS.contains(&path.0.as_str()) {
                continue;
            }
            match path.0.split_once('.') {
                None => object.retain(|k, _| !k.eq_ignore_ascii_case(&path.0)),
                Some((key, sub)) => {
                    for (_, value) in object
                        .iter_mut()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                    {
                        drop_sub(value, sub);
                    }
                }
            }
        }
        resource
    }
}

/// Keeps only the sub-attributes `subs` of a complex value (or of each element).
fn keep_subs(value: &mut Value, subs: &[&str]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| keep_subs(v, subs)),
        Value::Object(map) => map.retain(|k, _| subs.iter().any(|s| k.eq_ignore_ascii_case(s))),
        _ => {}
    }
}

fn drop_sub(value: &mut Value, sub: &str) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| drop_sub(v, sub)),
        Value::Object(map) => map.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_keep_what_is_asked_and_always_the_id() {
        let user = json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "name": {"givenName": "A", "familyName": "B"}, "emails": [{"value": "a@x", "type": "work"}], "meta": {}});
        let only = Projection::new(Some("userName,name.givenName"), None).apply(user.clone());
        assert_eq!(
            only,
            json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "name": {"givenName": "A"}})
        );
        let without = Projection::new(None, Some("emails.type,meta,id")).apply(user);
        assert_eq!(without["emails"], json!([{"value": "a@x"}]));
        assert!(without.get("meta").is_none());
        assert_eq!(without["id"], "1");
    }

    #[test]
    fn entra_sends_active_as_a_string() {
        let body = json!({"userName": "a", "active": "False", "emails": [{"value": "w@x"}, {"value": "p@x", "primary": "true"}]});
        let person = person(&body).unwrap();
        assert!(!person.active);
        assert_eq!(person.email, "p@x");
        assert!(super::person(&json!({"userName": "a", "active": "maybe"})).is_err());
        assert!(super::person(&json!({"active": true})).is_err());
    }
}
