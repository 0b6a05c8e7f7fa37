//! The `users` table.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};

use crate::domain::filters::{UserFlagFilter, UserLifecycleFilter};
// Declared in the domain, as the API's enum too; what each order means in
// SQL is here.
pub use crate::domain::filters::UserOrder;
use crate::domain::username::Username;
use crate::ids::Cursor;

/// A user as the API shows it. The password hash is deliberately not here:
/// it is read only by [`find_credentials`], so it cannot leak into a response.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub deactivation_reason: Option<String>,
    pub anonymized_at: Option<DateTime<Utc>>,
    /// When a requested erasure falls due (`requestErasure`); `None` when
    /// none is pending.
    pub erasure_due_at: Option<DateTime<Utc>>,
}

macro_rules! user_columns {
    () => {
        "id, username, email, first_name, last_name, is_active, is_staff, is_superuser, \
         date_joined, last_login, deactivated_at, deactivation_reason, anonymized_at, erasure_due_at"
    };
}

/// The columns of a [`UserRow`], for statements built elsewhere in the store.
pub(super) const COLUMNS: &str = user_columns!();

/// The `SELECT` of a [`UserRow`] from `users` where `$condition` holds (with
/// any order or lock clause after it), as one literal for `sqlx`.
macro_rules! users_where {
    ($condition:expr) => {
        concat!("SELECT ", user_columns!(), " FROM users WHERE ", $condition)
    };
}

pub async fn find(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    super::row_by_key(ex, users_where!("id = $1"), id).await
}

/// Reads the user and locks the row until the transaction ends.
pub async fn find_for_update(ex: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    super::row_by_key(ex, users_where!("id = $1 FOR UPDATE"), id).await
}

pub async fn find_many(ex: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<UserRow>> {
    super::rows_for_ids(ex, users_where!("id = ANY($1)"), ids).await
}

pub async fn find_by_username_key(
    ex: impl PgExecutor<'_>,
    key: &str,
) -> sqlx::Result<Option<UserRow>> {
    super::row_by_key(ex, users_where!("username_key = $1"), key).await
}

/// What `login` needs to decide: the row id, whether it may log in, and the hash.
#[derive(FromRow)]
pub struct Credentials {
    pub id: i64,
    pub is_active: bool,
    pub password_hash: Option<String>,
}

/// The keys `login` finds an account by: its `key`, unless the name as
/// typed (`fold`: `validation::username_fold`) is exactly an account's
/// older-style key, plain or `grandfathered` (`db::username_keys`).
#[derive(Debug, Clone, Copy)]
pub struct LoginKeys<'a> {
    pub key: &'a str,
    pub fold: &'a str,
    pub grandfathered: &'a str,
}

/// The condition on `users` that picks the account for [`LoginKeys`] bound
/// as `$1` to `$3`: the key itself over an older-style one.
macro_rules! login_match {
    () => {
        "username_key IN ($1, $2, $3) ORDER BY username_key = $1 LIMIT 1"
    };
}

impl LoginKeys<'_> {
    /// The row `sql`, a statement ending in `login_match!()`, reads for
    /// these keys.
    async fn find<T: super::Row>(
        self,
        ex: impl PgExecutor<'_>,
        sql: &'static str,
    ) -> sqlx::Result<Option<T>> {
        sqlx::query_as(sql)
            .bind(self.key)
            .bind(self.fold)
            .bind(self.grandfathered)
            .fetch_optional(ex)
            .await
    }
}

/// A user by name as `login` finds them (see [`find_credentials`]).
pub async fn find_by_username(
    ex: impl PgExecutor<'_>,
    keys: LoginKeys<'_>,
) -> sqlx::Result<Option<UserRow>> {
    keys.find(ex, users_where!(login_match!())).await
}

/// The account `login` checks.
pub async fn find_credentials(
    ex: impl PgExecutor<'_>,
    keys: LoginKeys<'_>,
) -> sqlx::Result<Option<Credentials>> {
    let sql = concat!(
        "SELECT id, is_active, password_hash FROM users WHERE ",
        login_match!()
    );
    keys.find(ex, sql).await
}

/// The profile fields of a user as written: at creation, and after an edit
/// (the caller fills every field). Only a checked [`Username`] is written;
/// `Profile<str>` is the same fields as typed, before the name is checked.
pub struct Profile<'a, Name: ?Sized = Username> {
    pub username: &'a Name,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub is_staff: bool,
    pub is_superuser: bool,
}

pub const USERNAME_UNIQUE: &str = "users_username_key_unique";

/// Binds a profile's fields as `$1` to `$7`, in the order of [`Profile`]
/// (the username twice: as shown, and as its lookup key).
fn bind_profile<'q>(
    query: QueryAs<'q, Postgres, UserRow, PgArguments>,
    p: &Profile<'q>,
) -> QueryAs<'q, Postgres, UserRow, PgArguments> {
    query
        .bind(p.username.as_str())
        .bind(p.username.key())
        .bind(p.email)
        .bind(p.first_name)
        .bind(p.last_name)
        .bind(p.is_staff)
        .bind(p.is_superuser)
}

pub async fn insert(
    ex: impl PgExecutor<'_>,
    profile: &Profile<'_>,
    password_hash: Option<&str>,
) -> sqlx::Result<UserRow> {
    let sql = concat!(
        "INSERT INTO users (username, username_key, email, first_name, last_name, is_staff, is_superuser, \
         password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
        user_columns!()
    );
    bind_profile(sqlx::query_as(sql), profile)
        .bind(password_hash)
        .fetch_one(ex)
        .await
}

pub async fn update_profile(
    ex: impl PgExecutor<'_>,
    id: i64,
    profile: &Profile<'_>,
) -> sqlx::Result<UserRow> {
    let sql = concat!(
        "UPDATE users SET username = $1, username_key = $2, email = $3, first_name = $4, last_name = $5, \
         is_staff = $6, is_superuser = $7 WHERE id = $8 RETURNING ",
        user_columns!()
    );
    bind_profile(sqlx::query_as(sql), profile)
        .bind(id)
        .fetch_one(ex)
        .await
}

pub async fn set_password_hash(ex: impl PgExecutor<'_>, id: i64, hash: &str) -> sqlx::Result<()> {
    let sql = "UPDATE users SET password_hash = $2 WHERE id = $1";
    super::update_by_id(ex, sql, id, hash).await
}

pub async fn touch_last_login(
    ex: impl PgExecutor<'_>,
    id: i64,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    super::update_by_id(ex, "UPDATE users SET last_login = $2 WHERE id = $1", id, at).await
}

/// The filters of the `users` query. `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFilter {
    pub flags: UserFlagFilter,
    /// Substring of username, email, first or last name, case-insensitive.
    pub search: Option<String>,
    pub group_id: Option<i64>,
    pub last_login_before: Option<DateTime<Utc>>,
    pub lifecycle: UserLifecycleFilter,
}

impl UserFilter {
    /// Whether the filter matches every user. `search` is expected trimmed,
    /// a blank one already made `None` (the GraphQL conversion does both).
    pub fn is_empty(&self) -> bool {
        // The derived comparison reads every field, so a new one cannot be
        // left out here.
        *self == Self::default()
    }
}

impl UserOrder {
    /// The sort column (as SQL) and whether it is descending. `last_login`
    /// sorts never-logged-in users first, as the oldest possible login.
    fn column(self) -> (&'static str, bool) {
        match self {
            UserOrder::IdAsc => ("id", false),
            UserOrder::IdDesc => ("id", true),
            UserOrder::UsernameAsc => ("username", false),
            UserOrder::UsernameDesc => ("username", true),
            UserOrder::DateJoinedAsc => ("date_joined", false),
            UserOrder::DateJoinedDesc => ("date_joined", true),
            UserOrder::LastLoginAsc => ("COALESCE(last_login, '-infinity')", false),
            UserOrder::LastLoginDesc => ("COALESCE(last_login, '-infinity')", true),
        }
    }

    /// The cursor key of a row under this order.
    pub fn key_of(self, user: &UserRow) -> Option<String> {
        match self {
            UserOrder::IdAsc | UserOrder::IdDesc => None,
            UserOrder::UsernameAsc | UserOrder::UsernameDesc => Some(user.username.clone()),
            UserOrder::DateJoinedAsc | UserOrder::DateJoinedDesc => {
                Some(timestamp_key(user.date_joined))
            }
            UserOrder::LastLoginAsc | UserOrder::LastLoginDesc => Some(
                user.last_login
                    .map(timestamp_key)
                    .unwrap_or_else(|| NEVER.to_owned()),
            ),
        }
    }

    /// Whether `cursor` could have come from a page in this order; anything
    /// else must be refused before it reaches SQL.
    pub fn accepts(self, cursor: &Cursor) -> bool {
        match (self, &cursor.key) {
            (UserOrder::IdAsc | UserOrder::IdDesc, None) => true,
            (UserOrder::UsernameAsc | UserOrder::UsernameDesc, Some(_)) => true,
            (UserOrder::DateJoinedAsc | UserOrder::DateJoinedDesc, Some(key)) => {
                Cursor::is_timestamp_key(key)
            }
            (UserOrder::LastLoginAsc | UserOrder::LastLoginDesc, Some(key)) => {
                key == NEVER || Cursor::is_timestamp_key(key)
            }
            _ => false,
        }
    }
}

/// The cursor key of "never logged in"; PostgreSQL reads it as a timestamp.
const NEVER: &str = "-infinity";

fn timestamp_key(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &UserFilter) {
    qb.push(" WHERE TRUE");
    for (test, value) in [
        (" AND is_active = ", f.flags.is_active),
        (" AND is_staff = ", f.flags.is_staff),
        (" AND is_superuser = ", f.flags.is_superuser),
    ] {
        if let Some(v) = value {
            qb.push(test).push_bind(v);
        }
    }
    if let Some(search) = &f.search {
        let pattern = format!("%{}%", escape_like(search));
        qb.push(" AND (username ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR email ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR first_name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR last_name ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(group_id) = f.group_id {
        qb.push(" AND id IN (SELECT user_id FROM user_groups WHERE group_id = ")
            .push_bind(group_id)
            .push(")");
    }
    if let Some(before) = f.last_login_before {
        qb.push(" AND COALESCE(last_login, date_joined) < ")
            .push_bind(before);
    }
    super::push_is_set(qb, "deactivated_at", f.lifecycle.deactivated);
    super::push_is_set(qb, "anonymized_at", f.lifecycle.anonymized);
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of users after `after` (already checked with [`UserOrder::accepts`]), in `order`. Keyset pagination: the cost
/// of a page does not grow with how deep into the list it is.
pub async fn page(
    ex: impl PgExecutor<'_>,
    filter: &UserFilter,
    order: UserOrder,
    after: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<UserRow>> {
    let (column, desc) = order.column();
    let mut qb = QueryBuilder::new(concat!("SELECT ", user_columns!(), " FROM users"));
    push_filter(&mut qb, filter);
    if let Some(cursor) = after {
        let cmp = if desc { " < " } else { " > " };
        match (order, &cursor.key) {
            (UserOrder::IdAsc | UserOrder::IdDesc, _) | (_, None) => {
                qb.push(" AND id").push(cmp).push_bind(cursor.id);
            }
            (UserOrder::UsernameAsc | UserOrder::UsernameDesc, Some(key)) => {
                qb.push(" AND (username, id)")
                    .push(cmp)
                    .push("(")
                    .push_bind(key.clone())
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(")");
            }
            (_, Some(key)) => {
                qb.push(" AND (")
                    .push(column)
                    .push(", id)")
                    .push(cmp)
                    .push("(")
                    .push_bind(key.clone())
                    .push("::timestamptz, ")
                    .push_bind(cursor.id)
                    .push(")");
            }
        }
    }
    let dir = if desc { " DESC" } else { " ASC" };
    if column == "id" {
        qb.push(" ORDER BY id").push(dir);
    } else {
        qb.push(" ORDER BY ")
            .push(column)
            .push(dir)
            .push(", id")
            .push(dir);
    }
    qb.push(" LIMIT ").push_bind(limit);
    qb.build_query_as().fetch_all(ex).await
}

pub async fn count(ex: impl PgExecutor<'_>, filter: &UserFilter) -> sqlx::Result<i64> {
    let mut qb = QueryBuilder::new("SELECT count(*) FROM users");
    push_filter(&mut qb, filter);
    qb.build_query_scalar().fetch_one(ex).await
}

/// Ids of every user matching `filter`, locked, for a bulk operation.
pub async fn lock_matching(
    ex: impl PgExecutor<'_>,
    filter: &UserFilter,
) -> sqlx::Result<Vec<UserRow>> {
    let mut qb = QueryBuilder::new(concat!("SELECT ", user_columns!(), " FROM users"));
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY id FOR UPDATE");
    qb.build_query_as().fetch_all(ex).await
}

/// The users with these ids, locked, in id order (a fixed order, so two
/// bulk operations cannot deadlock on each other).
pub async fn lock_many(ex: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<UserRow>> {
    super::rows_for_ids(ex, users_where!("id = ANY($1) ORDER BY id FOR UPDATE"), ids).await
}

/// Serializes every change that could remove an active superuser: a
/// transaction-scoped advisory lock (re-entrant; released at commit or
/// rollback), so two superusers acting on each other at the same instant run
/// one after the other and the second sees the first's result.
pub async fn lock_superuser_changes(ex: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(7263001)")
        .execute(ex)
        .await?;
    Ok(())
}

/// Takes [`lock_superuser_changes`], then counts the active superusers other
/// than `except`.
pub async fn lock_superusers_and_count_others(
    ex: &mut sqlx::PgConnection,
    except: &[i64],
) -> sqlx::Result<i64> {
    lock_superuser_changes(&mut *ex).await?;
    count_other_active_superusers(ex, except).await
}

/// Active superusers other than `except`; meaningful only under
/// [`lock_superuser_changes`], taken earlier in the same transaction.
pub async fn count_other_active_superusers(
    ex: &mut sqlx::PgConnection,
    except: &[i64],
) -> sqlx::Result<i64> {
    let sql = "SELECT count(*) FROM users WHERE is_active AND is_superuser AND NOT id = ANY($1)";
    super::count_by_key(ex, sql, except).await
}

/// What [`anonymize`] took away, counted for the erasure's receipt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymized {
    pub sessions_revoked: i64,
    pub group_memberships: i64,
    pub user_permissions: i64,
    /// The failed-login counter of the old username (a digest; see
    /// `store::login_failures`).
    pub login_counters: i64,
}

/// Erases everything that identifies the user and the access they held,
/// and ends a pending erasure request. The row and its id stay; the audit
/// entries naming the user are redacted separately (`store::erasure`).
///
/// The pseudonym's key cannot be taken: only an anonymized row may hold a
/// key starting with `deleted-user-` (a constraint, migration 0006), and
/// this row's id is its own.
pub async fn anonymize(ex: &mut sqlx::PgConnection, id: i64) -> sqlx::Result<Anonymized> {
    let old_key: String = sqlx::query_scalar(
        "UPDATE users u SET username = 'deleted-user-' || u.id, username_key = 'deleted-user-' || u.id,
             email = '', first_name = '', last_name = '', password_hash = NULL,
             is_active = false, is_staff = false, is_superuser = false,
             deactivation_reason = NULL, anonymized_at = now(), erasure_due_at = NULL,
             scim_external_id = NULL
         FROM users old WHERE u.id = $1 AND old.id = u.id
         RETURNING old.username_key",
    )
    .bind(id)
    .fetch_one(&mut *ex)
    .await?;
    let mut counts = [0i64; 2];
    for (sql, count) in [
        "DELETE FROM user_groups WHERE user_id = $1",
        "DELETE FROM user_permissions WHERE user_id = $1",
    ]
    .into_iter()
    .zip(counts.iter_mut())
    {
        *count = sqlx::query(sql)
            .bind(id)
            .execute(&mut *ex)
            .await?
            .rows_affected() as i64;
    }
    sqlx::query(
        "UPDATE deactivations SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .execute(&mut *ex)
    .await?;
    let login_counters =
        crate::store::login_failures::forget_username(&mut *ex, &old_key).await? as i64;
    let sessions_revoked = crate::store::sessions::revoke_all_for_user(&mut *ex, id, None).await?;
    Ok(Anonymized {
        sessions_revoked,
        group_memberships: counts[0],
        user_permissions: counts[1],
        login_counters,
    })
}

/// Ids of users matching `filter` with an id above `after`, in id order: the
/// batches of a long bulk run.
pub async fn matching_ids(
    ex: impl PgExecutor<'_>,
    filter: &UserFilter,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<i64>> {
    let mut qb = QueryBuilder::new("SELECT id FROM users");
    push_filter(&mut qb, filter);
    qb.push(" AND id > ").push_bind(after);
    qb.push(" ORDER BY id LIMIT ").push_bind(limit);
    qb.build_query_scalar().fetch_all(ex).await
}

/// Users whose username key is none of `keys`, anonymized accounts aside
/// (they identify nobody and cannot log in): how many, and the first
/// `sample` usernames by id.
pub async fn others_than(
    ex: &mut sqlx::PgConnection,
    keys: &[String],
    sample: i64,
) -> sqlx::Result<(i64, Vec<String>)> {
    let count = super::count_by_key(
        &mut *ex,
        "SELECT count(*) FROM users WHERE username_key <> ALL($1) AND anonymized_at IS NULL",
        keys,
    )
    .await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT username FROM users WHERE username_key <> ALL($1) AND anonymized_at IS NULL \
         ORDER BY id LIMIT $2",
    )
    .bind(keys)
    .bind(sample)
    .fetch_all(&mut *ex)
    .await?;
    Ok((count, names))
}

/// Sets when a user joined and last logged in (the demo's dormant account).
pub async fn set_history(
    ex: impl PgExecutor<'_>,
    id: i64,
    joined: DateTime<Utc>,
    last_login: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET date_joined = $2, last_login = $3 WHERE id = $1")
        .bind(id)
        .bind(joined)
        .bind(last_login)
        .execute(ex)
        .await?;
    Ok(())
}
