//! DataLoaders for nested fields: one SQL statement per kind of field per
//! batch, so a page of 100 users with their groups, permissions and vote
//! counts costs the same few statements as a page of 2.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sqlx::PgPool;

use crate::store::groups::{self, GroupRow};
use crate::store::permissions::{self, PermissionRow};
use crate::store::polls::{self, ChoiceRow, QuestionRow, VotesOf};
use crate::store::user_facts::{self, Fact};
use crate::store::users::{self, UserRow};

pub struct Loaders {
    pool: PgPool,
}

impl Loaders {
    pub fn new(pool: PgPool) -> Self {
        Loaders { pool }
    }
}

pub type LoadError = Arc<sqlx::Error>;

macro_rules! key {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $( $(#[$doc])* #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)] pub struct $name(pub i64); )*
    };
}

key! {
    UserById,
    QuestionById,
    ChoiceById,
    /// A user's direct grants.
    DirectPermissionsOfUser,
    PermissionsOfGroup,
    MemberCountOfGroup,
    ChoicesOfQuestion,
    VoteCountOfChoice,
}

fn batch_ids<K: Copy>(keys: &[K], id: impl Fn(K) -> i64) -> Vec<i64> {
    keys.iter().map(|k| id(*k)).collect()
}

/// Groups `(owner, value)` rows by owner, giving every requested key an entry
/// (an empty list when it owns nothing).
fn grouped<K: Copy + Eq + std::hash::Hash, V>(
    keys: &[K],
    wrap: impl Fn(i64) -> K,
    rows: Vec<(i64, V)>,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for (owner, value) in rows {
        map.entry(wrap(owner)).or_default().push(value);
    }
    map
}

/// Counts per owner, zero for keys with no rows.
fn counted<K: Copy + Eq + std::hash::Hash>(
    keys: &[K],
    wrap: impl Fn(i64) -> K,
    rows: Vec<(i64, i64)>,
) -> HashMap<K, i64> {
    let mut map: HashMap<K, i64> = keys.iter().map(|k| (*k, 0)).collect();
    map.extend(rows.into_iter().map(|(owner, n)| (wrap(owner), n)));
    map
}

/// Writes `impl Loader<$key> for Loaders`: one statement, `$fetch`, reads
/// the rows of the whole batch (its ids as `$ids`, on `$pool`), answered per
/// key as the first word says: `by_id`, a row per id, keyed by its own `id`;
/// `lists`, `(owner, value)` rows grouped by owner (an empty list for a key
/// that owns nothing); `counts`, `(owner, n)` rows (zero for a key with none).
macro_rules! loader {
    (by_id $key:ident => $row:ty, |$pool:ident, $ids:ident| $fetch:expr) => {
        loader!(@impl $key => $row, |keys, $pool, $ids| {
            let rows = $fetch.await?;
            Ok(rows.into_iter().map(|row| ($key(row.id), row)).collect())
        });
    };
    (lists $key:ident => $value:ty, |$pool:ident, $ids:ident| $fetch:expr) => {
        loader!(@impl $key => Vec<$value>, |keys, $pool, $ids| {
            Ok(grouped(keys, $key, $fetch.await?))
        });
    };
    (counts $key:ident, |$pool:ident, $ids:ident| $fetch:expr) => {
        loader!(@impl $key => i64, |keys, $pool, $ids| {
            Ok(counted(keys, $key, $fetch.await?))
        });
    };
    (@impl $key:ident => $value:ty, |$keys:ident, $pool:ident, $ids:ident| $body:block) => {
        impl Loader<$key> for Loaders {
            type Value = $value;
            type Error = LoadError;
            async fn load(&self, $keys: &[$key]) -> Result<HashMap<$key, $value>, LoadError> {
                let $pool = &self.pool;
                let $ids = &batch_ids($keys, |k| k.0);
                $body
            }
        }
    };
}

loader!(by_id UserById => UserRow, |pool, ids| users::find_many(pool, ids));
loader!(by_id QuestionById => QuestionRow, |pool, ids| polls::find_questions(pool, ids));
loader!(by_id ChoiceById => ChoiceRow, |pool, ids| polls::find_choices(pool, ids));
loader!(lists DirectPermissionsOfUser => PermissionRow, |pool, ids| {
    permissions::direct_for_users(pool, ids)
});
loader!(lists PermissionsOfGroup => PermissionRow, |pool, ids| permissions::for_groups(pool, ids));
loader!(counts MemberCountOfGroup, |pool, ids| groups::member_counts(pool, ids));
loader!(counts VoteCountOfChoice, |pool, ids| polls::vote_counts(pool, VotesOf::Choice, ids));

/// One fact about one user. The groups, effective permissions and vote
/// count of a page's users are all keys of this one loader, so a batch costs
/// one statement whichever of them the page asks for (see
/// [`crate::store::user_facts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FactOfUser(pub i64, pub Fact);

/// The value of a [`FactOfUser`], of the kind its key names.
#[derive(Debug, Clone)]
pub enum FactValue {
    Groups(Vec<GroupRow>),
    PermissionKeys(Vec<String>),
    VoteCount(i64),
}

impl Loader<FactOfUser> for Loaders {
    type Value = FactValue;
    type Error = LoadError;
    async fn load(&self, keys: &[FactOfUser]) -> Result<HashMap<FactOfUser, FactValue>, LoadError> {
        let wanted: HashSet<Fact> = keys.iter().map(|k| k.1).collect();
        let mut users = batch_ids(keys, |k| k.0);
        users.sort_unstable();
        users.dedup();
        let facts = user_facts::of_users(&self.pool, &users, &wanted).await?;
        let mut groups = grouped(&users, |id| id, facts.groups);
        let mut keys_of = grouped(&users, |id| id, facts.permission_keys);
        let votes = counted(&users, |id| id, facts.vote_counts);
        // Each key is asked once per batch, so its list is moved, not copied.
        let mut value = |FactOfUser(id, fact): FactOfUser| match fact {
            Fact::Groups => FactValue::Groups(groups.remove(&id).unwrap_or_default()),
            Fact::PermissionKeys => {
                FactValue::PermissionKeys(keys_of.remove(&id).unwrap_or_default())
            }
            Fact::VoteCount => FactValue::VoteCount(votes.get(&id).copied().unwrap_or(0)),
        };
        Ok(keys.iter().map(|k| (*k, value(*k))).collect())
    }
}

impl Loader<ChoicesOfQuestion> for Loaders {
    type Value = Vec<ChoiceRow>;
    type Error = LoadError;
    async fn load(
        &self,
        keys: &[ChoicesOfQuestion],
    ) -> Result<HashMap<ChoicesOfQuestion, Vec<ChoiceRow>>, LoadError> {
        let rows = polls::choices_of_questions(&self.pool, &batch_ids(keys, |k| k.0)).await?;
        Ok(grouped(
            keys,
            ChoicesOfQuestion,
            rows.into_iter().map(|c| (c.question_id, c)).collect(),
        ))
    }
}
