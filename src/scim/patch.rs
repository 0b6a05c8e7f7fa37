//! SCIM PATCH (RFC 7644 §3.5.2), applied to a resource's JSON.
//!
//! A PATCH is worked out on the resource as the client sees it, and the
//! result is then handled as a PUT would be: memberdesk compares it with
//! what it holds and runs the domain operations the differences call for
//! (`updateUser`, `deactivateUser`, a membership change). So there is one
//! path from "what the client wants" to "what memberdesk does", and PATCH
//! cannot reach anything PUT could not.
//!
//! Identity providers' dialects are accepted: Entra ID's capitalised ops
//! (`"Replace"`) and `"False"` strings (read in `resources`), a `replace` on
//! `emails[type eq "work"].value` that creates the work address when there
//! is none, and an op without `path` whose keys are themselves paths
//! (`{"name.givenName": "Ann"}`).

use serde_json::{Map, Value};

use super::ScimError;
use super::filter::{self, Filter, PatchPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Remove,
    Replace,
}

/// Applies every operation of a PatchOp request body to `resource`.
pub fn apply(resource: &mut Value, request: &Value) -> Result<(), ScimError> {
    let ops = super::resources::get_ci(request, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH needs an 'Operations' list"))?;
    for op in ops {
        let kind = match super::resources::get_ci(op, "op").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("add") => OpKind::Add,
            Some(s) if s.eq_ignore_ascii_case("remove") => OpKind::Remove,
            Some(s) if s.eq_ignore_ascii_case("replace") => OpKind::Replace,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown PATCH op {other:?}: use add, remove or replace"
                )));
            }
        };
        let value = super::resources::get_ci(op, "value").cloned();
        match super::resources::get_ci(op, "path").and_then(Value::as_str) {
            Some(path) => {
                let path = filter::parse_patch_path(path)
                    .map_err(|e| ScimError::new(400, Some("invalidPath"), e.0))?;
                apply_at(resource, kind, &path, value)?;
            }
            None => apply_without_path(resource, kind, value)?,
        }
    }
    Ok(())
}

/// An op with no `path`: the value is an object of attributes (or paths).
fn apply_without_path(
    resource: &mut Value,
    kind: OpKind,
    value: Option<Value>,
) -> Result<(), ScimError> {
    if kind == OpKind::Remove {
        return Err(ScimError::new(
            400,
            Some("noTarget"),
            "a remove needs a path",
        ));
    }
    let Some(Value::Object(attributes)) = value else {
        return Err(ScimError::invalid_value(
            "an add or replace without a path takes an object of attributes",
        ));
    };
    for (key, value) in attributes {
        let path = filter::parse_patch_path(&key)
            .map_err(|e| ScimError::new(400, Some("invalidPath"), e.0))?;
        apply_at(resource, kind, &path, Some(value))?;
    }
    Ok(())
}

fn apply_at(
    resource: &mut Value,
    kind: OpKind,
    path: &PatchPath,
    value: Option<Value>,
) -> Result<(), ScimError> {
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value("add and replace need a value"));
    }
    let attribute = path.attribute.0.as_str();
    let (key, sub) = match attribute.split_once('.') {
        Some((key, sub)) if path.selector.is_none() => (key, Some(sub.to_owned())),
        _ => (attribute, path.sub_attribute.clone()),
    };
    let object = resource.as_object_mut().expect("a resource is an object");
    let key = existing_key(object, key);
    match &path.selector {
        Some(selector) => {
            let list = object
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()));
            apply_selected(list, kind, selector, sub.as_deref(), value)
        }
        None => {
            apply_plain(object, &key, kind, sub.as_deref(), value);
            Ok(())
        }
    }
}

/// The resource's own spelling of `key` (attribute names are case-insensitive).
fn existing_key(object: &Map<String, Value>, key: &str) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| canonical(key))
}

/// The schema's spelling of an attribute the resource does not show yet.
fn canonical(lower: &str) -> String {
    const NAMES: [&str; 10] = [
        "userName",
        "displayName",
        "name",
        "emails",
        "active",
        "members",
        "givenName",
        "familyName",
        "externalId",
        "groups",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(lower))
        .map_or_else(|| lower.to_owned(), |n| (*n).to_owned())
}

fn apply_plain(
    object: &mut Map<String, Value>,
    key: &str,
    kind: OpKind,
    sub: Option<&str>,
    value: Option<Value>,
) {
    if let Some(sub) = sub {
        let parent = object
            .entry(key.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !parent.is_object() {
            *parent = Value::Object(Map::new());
        }
        let parent = parent.as_object_mut().expect("an object");
        let sub = existing_key(parent, sub);
        apply_plain(parent, &sub, kind, None, value);
        return;
    }
    match (kind, value) {
        (OpKind::Remove, _) => {
            object.remove(key);
        }
        (OpKind::Add, Some(Value::Array(new))) => match object.get_mut(key) {
            Some(Value::Array(list)) => {
                for item in new {
                    if !list.iter().any(|v| same_value(v, &item)) {
                        list.push(item);
                    }
                }
            }
            _ => {
                object.insert(key.to_owned(), Value::Array(new));
            }
        },
        (OpKind::Add, Some(Value::Object(new))) => match object.get_mut(key) {
            Some(Value::Object(existing)) => existing.extend(new),
            _ => {
                object.insert(key.to_owned(), Value::Object(new));
            }
        },
        (_, Some(value)) => {
            object.insert(key.to_owned(), value);
        }
        (_, None) => {}
    }
}

/// Two elements of a multi-valued attribute are the same when their `value`s are.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// An op on the elements of a multi-valued attribute that `selector` picks.
fn apply_selected(
    list: &mut Value,
    kind: OpKind,
    selector: &Filter,
    sub: Option<&str>,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let Value::Array(items) = list else {
        return Err(ScimError::new(
            400,
            Some("invalidPath"),
            "a filter applies only to a multi-valued attribute",
        ));
    };
    let picked: Vec<usize> = (0..items.len())
        .filter(|i| filter::matches(selector, &items[*i]))
        .collect();
    match (kind, sub) {
        (OpKind::Remove, None) => {
            let mut index = 0;
            items.retain(|_| {
                index += 1;
                !picked.contains(&(index - 1))
            });
        }
        (OpKind::Remove, Some(sub)) => {
            for i in &picked {
                if let Some(map) = items[*i].as_object_mut() {
                    map.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                }
            }
        }
        (_, _) if picked.is_empty() => items.push(new_element(selector, sub, value)?),
        (_, Some(sub)) => {
            for i in &picked {
                if let Some(map) = items[*i].as_object_mut() {
                    let key = existing_key(map, sub);
                    map.insert(key, value.clone().unwrap_or(Value::Null));
                }
            }
        }
        (_, None) => {
            for i in &picked {
                match (&mut items[*i], value.clone()) {
                    (Value::Object(map), Some(Value::Object(new))) if kind == OpKind::Add => {
                        map.extend(new)
                    }
                    (slot, Some(new)) => *slot = new,
                    (_, None) => {}
                }
            }
        }
    }
    Ok(())
}

/// The element an add or replace through a filter creates when none
/// matches: the filter's `eq` tests (`type eq "work"`) and the value.
fn new_element(
    selector: &Filter,
    sub: Option<&str>,
    value: Option<Value>,
) -> Result<Value, ScimError> {
    let mut element = Map::new();
    collect_equalities(selector, &mut element);
    match (sub, value) {
        (Some(sub), Some(value)) => {
            element.insert(sub.to_owned(), value);
        }
        (None, Some(Value::Object(map))) => element.extend(map),
        _ => {
            return Err(ScimError::new(
                400,
                Some("noTarget"),
                "the filter matches nothing",
            ));
        }
    }
    Ok(Value::Object(element))
}

fn collect_equalities(filter: &Filter, into: &mut Map<String, Value>) {
    match filter {
        Filter::Compare(path, filter::CompareOp::Eq, value) => {
            into.insert(path.0.clone(), value.clone());
        }
        Filter::And(a, b) => {
            collect_equalities(a, into);
            collect_equalities(b, into);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

    fn patched(mut resource: Value, ops: Value) -> Value {
        apply(
            &mut resource,
            &json!({ "schemas": [PATCH_SCHEMA], "Operations": ops }),
        )
        .unwrap();
        resource
    }

    #[test]
    fn entra_replace_of_active_without_path() {
        let user = json!({"userName": "a", "active": true});
        let out = patched(
            user,
            json!([{"op": "Replace", "value": {"active": "False"}}]),
        );
        assert_eq!(out["active"], "False");
    }

    #[test]
    fn okta_replace_with_path() {
        let out = patched(
            json!({"userName": "a", "active": true}),
            json!([{"op": "replace", "path": "active", "value": false}]),
        );
        assert_eq!(out["active"], false);
    }

    #[test]
    fn sub_attributes_and_filtered_paths() {
        let user = json!({"userName": "a", "emails": [{"value": "old@x", "type": "work"}]});
        let out = patched(
            user,
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@x"},
                {"op": "add", "path": "name.givenName", "value": "Ann"},
                {"op": "replace", "value": {"name.familyName": "Lee"}},
            ]),
        );
        assert_eq!(out["emails"], json!([{"value": "new@x", "type": "work"}]));
        assert_eq!(
            out["name"],
            json!({"givenName": "Ann", "familyName": "Lee"})
        );
        let created = patched(
            json!({"userName": "a"}),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@x"}]),
        );
        assert_eq!(created["emails"], json!([{"type": "work", "value": "w@x"}]));
    }

    #[test]
    fn members_added_and_removed() {
        let group = json!({"displayName": "g", "members": [{"value": "1"}, {"value": "2"}]});
        let out = patched(
            group,
            json!([
                {"op": "add", "path": "members", "value": [{"value": "3"}, {"value": "1"}]},
                {"op": "remove", "path": "members[value eq \"2\"]"},
            ]),
        );
        assert_eq!(out["members"], json!([{"value": "1"}, {"value": "3"}]));
        let cleared = patched(out, json!([{"op": "remove", "path": "members"}]));
        assert!(cleared.get("members").is_none());
    }

    #[test]
    fn malformed_patches_are_refused() {
        let mut r = json!({"userName": "a"});
        for bad in [
            json!({}),
            json!({"Operations": [{"op": "move", "path": "userName"}]}),
            json!({"Operations": [{"op": "remove"}]}),
            json!({"Operations": [{"op": "replace", "path": "userName"}]}),
            json!({"Operations": [{"op": "replace", "value": "x"}]}),
            json!({"Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]}),
        ] {
            assert!(apply(&mut r, &bad).is_err(), "{bad}");
        }
    }
}
