//! Directory queries: users and groups selected by a condition tree and
//! paged by offset, as a provisioning client (SCIM) asks for them.
//!
//! The tree is neutral ([`Condition`] over [`UserColumn`] or
//! [`GroupColumn`]): the SCIM layer maps its filter grammar onto it, and
//! this module alone turns it into SQL, every value a bind parameter.
//! Anonymized users are never listed: to a directory they are gone.

use sqlx::{PgExecutor, Postgres, QueryBuilder};

/// How a test compares a column with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Contains,
    StartsWith,
    EndsWith,
    /// Has a value (not empty).
    Present,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A value a column is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Bool(bool),
    Null,
}

/// A condition on rows whose columns are `C`.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition<C> {
    Test { column: C, op: Op, value: Value },
    And(Box<Condition<C>>, Box<Condition<C>>),
    Or(Box<Condition<C>>, Box<Condition<C>>),
    Not(Box<Condition<C>>),
}

/// What a column is in SQL, and how its values compare.
pub trait Column: Copy {
    fn expression(self) -> &'static str;
    fn kind(self) -> Kind;
}

/// How a column's values compare: text case-insensitively (SCIM's
/// `caseExact: false`), text exactly, or as booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    TextIgnoringCase,
    TextExact,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserColumn {
    Id,
    Username,
    Email,
    GivenName,
    FamilyName,
    /// Given and family name, as one.
    DisplayName,
    Active,
    ExternalId,
}

impl Column for UserColumn {
    fn expression(self) -> &'static str {
        match self {
            UserColumn::Id => "id::text",
            UserColumn::Username => "username",
            UserColumn::Email => "email",
            UserColumn::GivenName => "first_name",
            UserColumn::FamilyName => "last_name",
            UserColumn::DisplayName => "btrim(first_name || ' ' || last_name)",
            UserColumn::Active => "is_active",
            UserColumn::ExternalId => "coalesce(scim_external_id, '')",
        }
    }

    fn kind(self) -> Kind {
        match self {
            UserColumn::Id | UserColumn::ExternalId => Kind::TextExact,
            UserColumn::Active => Kind::Bool,
            _ => Kind::TextIgnoringCase,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupColumn {
    Id,
    DisplayName,
    /// The id of a member (`members.value`).
    MemberId,
    ExternalId,
}

impl Column for GroupColumn {
    fn expression(self) -> &'static str {
        match self {
            GroupColumn::Id => "id::text",
            GroupColumn::DisplayName => "name",
            GroupColumn::ExternalId => "coalesce(scim_external_id, '')",
            GroupColumn::MemberId => {
                "ARRAY(SELECT user_id::text FROM user_groups WHERE group_id = groups.id)"
            }
        }
    }

    fn kind(self) -> Kind {
        match self {
            GroupColumn::DisplayName => Kind::TextIgnoringCase,
            _ => Kind::TextExact,
        }
    }
}

/// Why a condition cannot be run: a value of the wrong type for its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrunnable(pub String);

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn push_condition<C: Column>(
    qb: &mut QueryBuilder<Postgres>,
    condition: &Condition<C>,
) -> Result<(), Unrunnable> {
    match condition {
        Condition::And(a, b) | Condition::Or(a, b) => {
            let joiner = match condition {
                Condition::And(..) => " AND ",
                _ => " OR ",
            };
            qb.push("(");
            push_condition(qb, a)?;
            qb.push(joiner);
            push_condition(qb, b)?;
            qb.push(")");
        }
        Condition::Not(inner) => {
            qb.push("NOT (");
            push_condition(qb, inner)?;
            qb.push(")");
        }
        Condition::Test { column, op, value } => push_test(qb, *column, *op, value)?,
    }
    Ok(())
}

fn push_test<C: Column>(
    qb: &mut QueryBuilder<Postgres>,
    column: C,
    op: Op,
    value: &Value,
) -> Result<(), Unrunnable> {
    let expression = column.expression();
    let is_array = expression.starts_with("ARRAY(");
    match (column.kind(), op, value) {
        (_, Op::Present, _) if is_array => {
            qb.push("cardinality(").push(expression).push(") > 0");
        }
        (Kind::Bool, Op::Present, _) => {
            qb.push("TRUE");
        }
        (_, Op::Present, _) => {
            qb.push(expression).push(" <> ''");
        }
        (Kind::Bool, Op::Eq | Op::Ne, Value::Bool(b)) => {
            let cmp = if op == Op::Eq { " = " } else { " <> " };
            qb.push(expression).push(cmp).push_bind(*b);
        }
        (Kind::Bool, _, _) => {
            return Err(Unrunnable(
                "a boolean compares only with eq or ne to true or false".into(),
            ));
        }
        (_, Op::Eq, Value::Text(text)) if is_array => {
            qb.push_bind(text.clone())
                .push(" = ANY(")
                .push(expression)
                .push(")");
        }
        (_, _, _) if is_array => {
            return Err(Unrunnable("members compare only with eq".into()));
        }
        (kind, op, Value::Text(text)) => push_text_test(qb, expression, kind, op, text),
        (_, _, Value::Null | Value::Bool(_)) => {
            return Err(Unrunnable("this attribute compares with a string".into()));
        }
    }
    Ok(())
}

fn push_text_test(
    qb: &mut QueryBuilder<Postgres>,
    expression: &str,
    kind: Kind,
    op: Op,
    text: &str,
) {
    let folded = kind == Kind::TextIgnoringCase;
    let (like, pattern) = match op {
        Op::Contains => (true, format!("%{}%", escape_like(text))),
        Op::StartsWith => (true, format!("{}%", escape_like(text))),
        Op::EndsWith => (true, format!("%{}", escape_like(text))),
        _ => (false, text.to_owned()),
    };
    if like {
        let like_op = if folded { " ILIKE " } else { " LIKE " };
        qb.push(expression).push(like_op).push_bind(pattern);
        return;
    }
    let cmp = match op {
        Op::Ne => " <> ",
        Op::Gt => " > ",
        Op::Ge => " >= ",
        Op::Lt => " < ",
        Op::Le => " <= ",
        _ => " = ",
    };
    if folded {
        qb.push("lower(")
            .push(expression)
            .push(")")
            .push(cmp)
            .push("lower(")
            .push_bind(pattern)
            .push(")");
    } else {
        qb.push(expression).push(cmp).push_bind(pattern);
    }
}

/// A page of a directory listing: 1-based `start`, at most `count` rows.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: i64,
    pub count: i64,
}

/// A listing ready to run: its count and its page, both built.
pub struct Listing {
    count: QueryBuilder<Postgres>,
    page: QueryBuilder<Postgres>,
}

/// Users (never anonymized ones) matching `condition`, in id order.
pub fn users(
    condition: Option<&Condition<UserColumn>>,
    window: Window,
) -> Result<Listing, Unrunnable> {
    let base = " FROM users WHERE anonymized_at IS NULL";
    Listing::new(super::users::COLUMNS, base, condition, window)
}

/// Groups matching `condition`, in id order.
pub fn groups(
    condition: Option<&Condition<GroupColumn>>,
    window: Window,
) -> Result<Listing, Unrunnable> {
    Listing::new("id, name", " FROM groups WHERE TRUE", condition, window)
}

impl Listing {
    fn new<C: Column>(
        columns: &str,
        base: &str,
        condition: Option<&Condition<C>>,
        window: Window,
    ) -> Result<Listing, Unrunnable> {
        let filtered = |mut qb: QueryBuilder<Postgres>| -> Result<_, Unrunnable> {
            qb.push(base);
            if let Some(condition) = condition {
                qb.push(" AND ");
                push_condition(&mut qb, condition)?;
            }
            Ok(qb)
        };
        let count = filtered(QueryBuilder::new("SELECT count(*)"))?;
        let mut page = filtered(QueryBuilder::new(format!("SELECT {columns}")))?;
        page.push(" ORDER BY id OFFSET ")
            .push_bind(window.start.max(1) - 1)
            .push(" LIMIT ")
            .push_bind(window.count.max(0));
        Ok(Listing { count, page })
    }

    /// The page's rows and how many rows match in all.
    pub async fn run<T>(mut self, conn: &mut sqlx::PgConnection) -> sqlx::Result<(Vec<T>, i64)>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let total: i64 = self
            .count
            .build_query_scalar()
            .fetch_one(&mut *conn)
            .await?;
        let rows = self.page.build_query_as().fetch_all(&mut *conn).await?;
        Ok((rows, total))
    }
}

/// The members of each of `group_ids`: (group id, user id).
pub async fn members(ex: impl PgExecutor<'_>, group_ids: &[i64]) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(
        "SELECT group_id, user_id FROM user_groups WHERE group_id = ANY($1) ORDER BY user_id",
    )
    .bind(group_ids)
    .fetch_all(ex)
    .await
}

/// Which table an `externalId` belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    User,
    Group,
}

/// The statements on a table's `externalId` column: the same two for
/// users and groups, each table's spelled out once.
struct ExternalIdSql {
    /// The `(id, externalId)` of each row of the ids bound as `$1` that has one.
    read: &'static str,
    /// Sets row `$1`'s to `$2`, touching the row only if that changes it.
    write: &'static str,
}

impl Resource {
    fn external_id_sql(self) -> ExternalIdSql {
        match self {
            Resource::User => ExternalIdSql {
                read: "SELECT id, scim_external_id FROM users WHERE id = ANY($1) AND scim_external_id IS NOT NULL",
                write: "UPDATE users SET scim_external_id = $2 WHERE id = $1 AND scim_external_id IS DISTINCT FROM $2",
            },
            Resource::Group => ExternalIdSql {
                read: "SELECT id, scim_external_id FROM groups WHERE id = ANY($1) AND scim_external_id IS NOT NULL",
                write: "UPDATE groups SET scim_external_id = $2 WHERE id = $1 AND scim_external_id IS DISTINCT FROM $2",
            },
        }
    }
}

/// The `externalId` of each of `ids` that has one.
pub async fn external_ids(
    ex: impl PgExecutor<'_>,
    resource: Resource,
    ids: &[i64],
) -> sqlx::Result<Vec<(i64, String)>> {
    super::rows_for_ids(ex, resource.external_id_sql().read, ids).await
}

/// Sets (or with `None` clears) a row's `externalId`; whether it changed.
pub async fn set_external_id(
    ex: impl PgExecutor<'_>,
    resource: Resource,
    id: i64,
    external_id: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(resource.external_id_sql().write)
        .bind(id)
        .bind(external_id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}
