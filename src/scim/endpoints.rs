//! The SCIM operations, one function per method and resource (a listing,
//! the same for users and groups, is one function over [`Shown`]): each
//! reads the request, calls `domain::provisioning`, and renders the outcome.
//! PATCH is applied to the resource as the client sees it and then handled
//! as a PUT of the result (see `patch`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::PgPool;

use super::filter::{self, AttrPath, CompareOp, Filter};
use super::resources::{self, LIST_SCHEMA, Projection};
use super::{Answer, Call, ScimError, discovery, patch};
use crate::config::Settings;
use crate::domain::Actor;
use crate::domain::provisioning::{self, Resource};
use crate::error::AppResult;
use crate::store::directory::{self, Condition, GroupColumn, Op, UserColumn, Window};
use crate::store::groups::GroupRow;
use crate::store::users::UserRow;

pub async fn dispatch(
    pool: &PgPool,
    settings: &Settings,
    method: &str,
    segments: &[&str],
    call: Call,
) -> Result<Answer, ScimError> {
    match (method, segments) {
        ("GET", ["ServiceProviderConfig"]) => {
            Ok(Answer::ok(discovery::service_provider_config(&call.base)))
        }
        ("GET", ["ResourceTypes"]) => Ok(Answer::ok(discovery::list(discovery::resource_types(
            &call.base,
        )))),
        ("GET", ["ResourceTypes", id]) => one_of(discovery::resource_types(&call.base), id),
        ("GET", ["Schemas"]) => Ok(Answer::ok(discovery::list(discovery::schemas(&call.base)))),
        ("GET", ["Schemas", id]) => one_of(discovery::schemas(&call.base), id),
        ("GET", ["Users"]) => list::<UserRow>(pool, &call).await,
        ("POST", [".search"]) => Err(ScimError::new(
            501,
            None,
            "searching several resource types at once is not supported: POST /Users/.search or /Groups/.search",
        )),
        ("POST", ["Users", ".search"]) => list::<UserRow>(pool, &searched(call)?).await,
        ("POST", ["Groups", ".search"]) => list::<GroupRow>(pool, &searched(call)?).await,
        ("POST", ["Users"]) => create_user(pool, settings, &call).await,
        ("GET", ["Users", id]) => show::<UserRow>(pool, &call, parse_id(id)?).await,
        ("PUT" | "PATCH", ["Users", id]) => change_user(pool, &call, Edit::of(method, id)?).await,
        ("DELETE", ["Users", id]) => delete_user(pool, settings, &call, parse_id(id)?).await,
        ("GET", ["Groups"]) => list::<GroupRow>(pool, &call).await,
        ("POST", ["Groups"]) => create_group(pool, &call).await,
        ("GET", ["Groups", id]) => show::<GroupRow>(pool, &call, parse_id(id)?).await,
        ("PUT" | "PATCH", ["Groups", id]) => change_group(pool, &call, Edit::of(method, id)?).await,
        ("DELETE", ["Groups", id]) => delete_group(pool, &call, parse_id(id)?).await,
        (
            _,
            [
                "ServiceProviderConfig" | "ResourceTypes" | "Schemas" | "Users" | "Groups",
                ..,
            ],
        ) => Err(ScimError::new(
            405,
            None,
            format!("{method} is not supported here"),
        )),
        _ => Err(ScimError::not_found()),
    }
}

/// Whether `method` is served at `segments` at all: checked before the
/// body is read, so a wrong method is 405 whatever its body.
pub fn allows(method: &str, segments: &[&str]) -> bool {
    match segments {
        ["ServiceProviderConfig" | "ResourceTypes" | "Schemas", ..] => method == "GET",
        ["Users" | "Groups", ".search"] | [".search"] => method == "POST",
        ["Users" | "Groups"] => matches!(method, "GET" | "POST"),
        ["Users" | "Groups", _] => matches!(method, "GET" | "PUT" | "PATCH" | "DELETE"),
        _ => true,
    }
}

/// A `POST /.search` (RFC 7644 §3.4.3): the query is in the body.
fn searched(call: Call) -> Result<Call, ScimError> {
    let mut body = call.body.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("schemas");
    }
    let query: super::ListQuery = serde_json::from_value(body)
        .map_err(|e| ScimError::invalid_value(format!("invalid search request: {e}")))?;
    Ok(Call { query, ..call })
}

/// A resource id as memberdesk issues them; anything else names nothing.
fn parse_id(raw: &str) -> Result<i64, ScimError> {
    raw.parse::<i64>().map_err(|_| ScimError::not_found())
}

fn one_of(all: Vec<Value>, id: &str) -> Result<Answer, ScimError> {
    all.into_iter()
        .find(|r| r["id"] == id)
        .map(Answer::ok)
        .ok_or_else(ScimError::not_found)
}

fn projection(call: &Call) -> Projection {
    Projection::new(
        call.query.attributes.as_deref(),
        call.query.excluded_attributes.as_deref(),
    )
}

/// `startIndex` (1-based, at least 1) and `count` (0 to the maximum).
fn window(call: &Call) -> Window {
    Window {
        start: call.query.start_index.unwrap_or(1).max(1),
        count: call
            .query
            .count
            .unwrap_or(100)
            .clamp(0, discovery::MAX_RESULTS),
    }
}

fn list_response(resources: Vec<Value>, total: i64, window: Window) -> Answer {
    Answer::ok(json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": window.start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    }))
}

/// Refuses (412) a change whose `If-Match` names another version than the
/// resource's current one.
fn check_if_match(call: &Call, current: &Value) -> Result<(), ScimError> {
    let Some(wanted) = &call.if_match else {
        return Ok(());
    };
    let version = resources::version(current);
    let matches = wanted
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == version);
    match matches {
        true => Ok(()),
        false => Err(ScimError::new(
            412,
            None,
            "the resource changed since that version (If-Match): read it again",
        )),
    }
}

/// The filter of a list, as a condition on `C` (`None`: every row).
fn condition<C: Copy>(
    call: &Call,
    column: fn(&AttrPath) -> Option<C>,
) -> Result<Option<Condition<C>>, ScimError> {
    let Some(raw) = call
        .query
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
    else {
        return Ok(None);
    };
    let invalid = |detail: String| ScimError::new(400, Some("invalidFilter"), detail);
    let parsed = filter::parse(raw).map_err(|e| invalid(e.0))?;
    to_condition(&parsed, column).map(Some).map_err(invalid)
}

fn to_condition<C: Copy>(
    filter: &Filter,
    column: fn(&AttrPath) -> Option<C>,
) -> Result<Condition<C>, String> {
    let both = |a: &Filter, b: &Filter| -> Result<_, String> {
        Ok((
            Box::new(to_condition(a, column)?),
            Box::new(to_condition(b, column)?),
        ))
    };
    let known =
        |path: &AttrPath| column(path).ok_or_else(|| format!("cannot filter on '{}'", path.0));
    Ok(match filter {
        Filter::And(a, b) => {
            let (a, b) = both(a, b)?;
            Condition::And(a, b)
        }
        Filter::Or(a, b) => {
            let (a, b) = both(a, b)?;
            Condition::Or(a, b)
        }
        Filter::Not(a) => Condition::Not(Box::new(to_condition(a, column)?)),
        Filter::Present(path) => Condition::Test {
            column: known(path)?,
            op: Op::Present,
            value: directory::Value::Null,
        },
        Filter::Compare(path, op, value) => Condition::Test {
            column: known(path)?,
            op: store_op(*op),
            value: match value {
                Value::Bool(b) => directory::Value::Bool(*b),
                Value::String(s) => directory::Value::Text(s.clone()),
                Value::Null => directory::Value::Null,
                other => directory::Value::Text(other.to_string()),
            },
        },
    })
}

fn store_op(op: CompareOp) -> Op {
    match op {
        CompareOp::Eq => Op::Eq,
        CompareOp::Ne => Op::Ne,
        CompareOp::Co => Op::Contains,
        CompareOp::Sw => Op::StartsWith,
        CompareOp::Ew => Op::EndsWith,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    }
}

/// A resource as SCIM shows it: the attribute paths a filter may name,
/// how rows are rendered and how one is found. Users and groups are
/// listed, read, created and changed through the same functions over it.
trait Shown: provisioning::Listed<Column: Common> {
    /// The column a filter on one of the resource's own attributes tests
    /// (the common ones are [`filtered_column`]'s).
    fn column(path: &AttrPath) -> Option<Self::Column>;

    async fn render(pool: &PgPool, call: &Call, rows: &[Self]) -> Result<Vec<Value>, ScimError>;

    /// The row, if the caller may see it.
    async fn find(pool: &PgPool, actor: &Actor, id: i64) -> AppResult<Self>;
}

/// The attributes every resource has (RFC 7643 §3.1), as a column of each
/// resource's listing.
trait Common {
    const ID: Self;
    const EXTERNAL_ID: Self;
}

impl Common for UserColumn {
    const ID: Self = UserColumn::Id;
    const EXTERNAL_ID: Self = UserColumn::ExternalId;
}

impl Common for GroupColumn {
    const ID: Self = GroupColumn::Id;
    const EXTERNAL_ID: Self = GroupColumn::ExternalId;
}

/// The column a filter on `path` tests, `None` for an attribute no
/// filter may name.
fn filtered_column<R: Shown>(path: &AttrPath) -> Option<R::Column> {
    match path.0.as_str() {
        "id" => Some(Common::ID),
        "externalid" => Some(Common::EXTERNAL_ID),
        _ => R::column(path),
    }
}

impl Shown for UserRow {
    fn column(path: &AttrPath) -> Option<UserColumn> {
        Some(match path.0.as_str() {
            "username" => UserColumn::Username,
            "emails" | "emails.value" => UserColumn::Email,
            "name.givenname" => UserColumn::GivenName,
            "name.familyname" => UserColumn::FamilyName,
            "displayname" | "name.formatted" => UserColumn::DisplayName,
            "active" => UserColumn::Active,
            _ => return None,
        })
    }

    /// Users as SCIM resources, each with its groups.
    async fn render(pool: &PgPool, call: &Call, rows: &[Self]) -> Result<Vec<Value>, ScimError> {
        let ids: Vec<i64> = rows.iter().map(|u| u.id).collect();
        let mut groups: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
        for (user_id, group) in provisioning::groups_of(pool, &call.actor, &ids).await? {
            groups
                .entry(user_id)
                .or_default()
                .push((group.id, group.name));
        }
        let external = provisioning::external_ids(pool, Resource::User, &ids).await?;
        Ok(rows
            .iter()
            .map(|u| {
                let own = groups.get(&u.id).map_or(&[][..], Vec::as_slice);
                resources::user(&call.base, u, external.get(&u.id), own)
            })
            .collect())
    }

    async fn find(pool: &PgPool, actor: &Actor, id: i64) -> AppResult<Self> {
        provisioning::find_user(pool, actor, id).await
    }
}

impl Shown for GroupRow {
    fn column(path: &AttrPath) -> Option<GroupColumn> {
        Some(match path.0.as_str() {
            "displayname" => GroupColumn::DisplayName,
            "members" | "members.value" => GroupColumn::MemberId,
            _ => return None,
        })
    }

    async fn render(pool: &PgPool, call: &Call, rows: &[Self]) -> Result<Vec<Value>, ScimError> {
        let ids: Vec<i64> = rows.iter().map(|g| g.id).collect();
        let members = provisioning::members_of(pool, &ids).await?;
        let external = provisioning::external_ids(pool, Resource::Group, &ids).await?;
        Ok(rows
            .iter()
            .map(|g| {
                let own: Vec<&provisioning::Member> =
                    members.iter().filter(|m| m.group_id == g.id).collect();
                resources::group(&call.base, g, external.get(&g.id), &own)
            })
            .collect())
    }

    async fn find(pool: &PgPool, actor: &Actor, id: i64) -> AppResult<Self> {
        provisioning::find_group(pool, actor, id).await
    }
}

/// A list response: the page of resources the filter selects, projected.
async fn list<R: Shown>(pool: &PgPool, call: &Call) -> Result<Answer, ScimError> {
    let condition = condition(call, filtered_column::<R>)?;
    let window = window(call);
    let (rows, total) =
        provisioning::list::<R>(pool, &call.actor, condition.as_ref(), window).await?;
    let projection = projection(call);
    let shown = R::render(pool, call, &rows).await?;
    let shown = shown.into_iter().map(|r| projection.apply(r)).collect();
    Ok(list_response(shown, total, window))
}

async fn render_one<R: Shown>(pool: &PgPool, call: &Call, row: R) -> Result<Value, ScimError> {
    let mut shown = R::render(pool, call, &[row]).await?;
    Ok(shown.remove(0))
}

async fn resource<R: Shown>(pool: &PgPool, call: &Call, id: i64) -> Result<Value, ScimError> {
    let row = R::find(pool, &call.actor, id).await?;
    render_one(pool, call, row).await
}

/// A read of one resource, projected.
async fn show<R: Shown>(pool: &PgPool, call: &Call, id: i64) -> Result<Answer, ScimError> {
    let shown = resource::<R>(pool, call, id).await?;
    Ok(Answer::ok(projection(call).apply(shown)))
}

/// The resource as shown now, which a change or a deletion is about:
/// refused (412) when `If-Match` names another version of it.
async fn current<R: Shown>(pool: &PgPool, call: &Call, id: i64) -> Result<Value, ScimError> {
    let current = resource::<R>(pool, call, id).await?;
    check_if_match(call, &current)?;
    Ok(current)
}

/// Passwords are set at creation only: people sign in at their identity
/// provider, and memberdesk's password changes have their own rules.
fn refuse_password(body: &Value) -> Result<(), ScimError> {
    match resources::get_ci(body, "password") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(ScimError::new(
            400,
            Some("mutability"),
            "a password is set only when the user is created (changePassword is not supported)",
        )),
    }
}

async fn create_user(pool: &PgPool, settings: &Settings, call: &Call) -> Result<Answer, ScimError> {
    let person = resources::person(&call.body)?;
    let password = match resources::get_ci(&call.body, "password") {
        Some(Value::String(p)) => Some(secrecy::SecretString::from(p.clone())),
        None | Some(Value::Null) => None,
        Some(_) => return Err(ScimError::invalid_value("password must be a string")),
    };
    let policy = &settings.password_policy;
    let user = provisioning::provision_user(pool, &call.actor, &person, password, policy).await?;
    created::<UserRow>(pool, call, user.id).await
}

/// The answer to a creation (201): the new resource, with the `externalId`
/// the body names set first.
async fn created<R: Shown>(pool: &PgPool, call: &Call, id: i64) -> Result<Answer, ScimError> {
    if let Some(external_id) = resources::external_id(&call.body)? {
        provisioning::set_external_id(pool, &call.actor, R::RESOURCE, id, Some(&external_id))
            .await?;
    }
    Ok(Answer::created(resource::<R>(pool, call, id).await?))
}

/// A PUT or a PATCH of the resource `id`: PUT replaces the resource with
/// the body; PATCH applies its operations to the resource as shown and
/// replaces the resource with the result.
#[derive(Clone, Copy)]
struct Edit<'a> {
    method: &'a str,
    id: i64,
}

impl<'a> Edit<'a> {
    fn of(method: &'a str, id: &str) -> Result<Self, ScimError> {
        Ok(Edit {
            method,
            id: parse_id(id)?,
        })
    }

    /// The resource as shown now (refused, 412, when `If-Match` names
    /// another version) and as the client wants it.
    async fn read<R: Shown>(self, pool: &PgPool, call: &Call) -> Result<(Value, Value), ScimError> {
        let current = current::<R>(pool, call, self.id).await?;
        let wanted = match self.method {
            "PATCH" => {
                let mut edited = current.clone();
                patch::apply(&mut edited, &call.body)?;
                edited
            }
            _ => call.body.clone(),
        };
        Ok((current, wanted))
    }

    /// Sets the `externalId` the client wants when it is not the one shown
    /// (none wanted: cleared).
    async fn set_external_id<R: Shown>(
        self,
        pool: &PgPool,
        call: &Call,
        current: &Value,
        wanted: &Value,
    ) -> Result<(), ScimError> {
        let external_id = resources::external_id(wanted)?;
        if external_id != resources::external_id(current)? {
            let external_id = external_id.as_deref();
            provisioning::set_external_id(pool, &call.actor, R::RESOURCE, self.id, external_id)
                .await?;
        }
        Ok(())
    }
}

async fn change_user(pool: &PgPool, call: &Call, edit: Edit<'_>) -> Result<Answer, ScimError> {
    let (current, wanted) = edit.read::<UserRow>(pool, call).await?;
    refuse_password(&wanted)?;
    let person = resources::person(&wanted)?;
    edit.set_external_id::<UserRow>(pool, call, &current, &wanted)
        .await?;
    let user = provisioning::update_user(pool, &call.actor, edit.id, &person).await?;
    let shown = render_one(pool, call, user).await?;
    Ok(Answer::ok(projection(call).apply(shown)))
}

async fn delete_user(
    pool: &PgPool,
    settings: &Settings,
    call: &Call,
    id: i64,
) -> Result<Answer, ScimError> {
    current::<UserRow>(pool, call, id).await?;
    provisioning::remove_user(pool, &call.actor, id, settings.scim_delete).await?;
    Ok(Answer::no_content())
}

async fn create_group(pool: &PgPool, call: &Call) -> Result<Answer, ScimError> {
    let (name, members) = resources::group_parts(&call.body)?;
    let group = provisioning::provision_group(pool, &call.actor, &name, &members).await?;
    created::<GroupRow>(pool, call, group.id).await
}

async fn change_group(pool: &PgPool, call: &Call, edit: Edit<'_>) -> Result<Answer, ScimError> {
    let (current, wanted) = edit.read::<GroupRow>(pool, call).await?;
    let (name, members) = resources::group_parts(&wanted)?;
    if name != current["displayName"] {
        provisioning::rename_group(pool, &call.actor, edit.id, &name).await?;
    }
    edit.set_external_id::<GroupRow>(pool, call, &current, &wanted)
        .await?;
    provisioning::set_members(pool, &call.actor, edit.id, &members).await?;
    show::<GroupRow>(pool, call, edit.id).await
}

async fn delete_group(pool: &PgPool, call: &Call, id: i64) -> Result<Answer, ScimError> {
    current::<GroupRow>(pool, call, id).await?;
    provisioning::remove_group(pool, &call.actor, id).await?;
    Ok(Answer::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_attributes_are_filtered_alike_and_own_ones_per_resource() {
        let user = |p: &str| filtered_column::<UserRow>(&AttrPath(p.into()));
        let group = |p: &str| filtered_column::<GroupRow>(&AttrPath(p.into()));
        let ids = (user("id"), group("id"));
        assert_eq!(ids, (Some(UserColumn::Id), Some(GroupColumn::Id)));
        let external = (user("externalid"), group("externalid"));
        assert_eq!(
            external,
            (Some(UserColumn::ExternalId), Some(GroupColumn::ExternalId))
        );
        assert_eq!(user("emails.value"), Some(UserColumn::Email));
        assert_eq!(group("members.value"), Some(GroupColumn::MemberId));
        assert_eq!((group("username"), user("members")), (None, None));
    }
}
