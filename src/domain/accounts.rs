//! Accounts: logging in and out, and creating and editing users.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::access::{ADD_USER, CHANGE_USER, Rule, ensure_may_set_flags};
use super::actor::CurrentUser;
use super::audit::{AuditAction, AuditActor, AuditEntry, Target};
use super::authority::{self, Acting};
use super::username::Username;
use super::{Actor, validation};
use crate::auth::{password, token};
use crate::config::{LoginLimit, PasswordPolicy, Settings};
use crate::error::{AppError, AppResult, OnConstraint, OrNotFound};
use crate::store::login_failures::{self, Counter, Limit, Scope};
use crate::store::sessions;
use crate::store::users::{self, LoginKeys, UserRow};

/// What a person types to log in.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: SecretString,
}

pub struct LoginOutcome {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserRow,
}

/// Checks a username and password and starts a session.
///
/// Unknown usernames and wrong passwords give the same error after the same
/// amount of work (one argon2 verification). Failures are counted in
/// PostgreSQL per username from this client address, per client address,
/// and per username over all addresses; past any limit every attempt is
/// refused without checking the password, whatever it is. The first limit
/// is the low one, so a guesser locks out their own address and not the
/// owner logging in from another.
///
/// Each attempt is counted before its password is checked and taken back
/// once it proves right: counting only after the check would let a burst of
/// parallel guesses all pass the limit while none of them was counted yet.
pub async fn login(
    pool: &PgPool,
    settings: &Settings,
    credentials: Credentials<'_>,
    client_address: Option<&str>,
) -> AppResult<LoginOutcome> {
    let Credentials { username, password } = credentials;
    let attempt = Attempt::new(username, client_address);
    reserve_attempt(pool, settings, &attempt).await?;

    let checked = async {
        let credentials = users::find_credentials(pool, attempt.login_keys()).await?;
        let (user_id, is_active, stored) = match credentials {
            Some(c) => (Some(c.id), c.is_active, c.password_hash),
            None => (None, false, None),
        };
        let password_ok = password::verify_password(password, stored).await?;
        AppResult::Ok((user_id, is_active, password_ok))
    }
    .await;
    let (user_id, is_active, password_ok) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            // Nothing was guessed, so the attempt is not a failure; the
            // original error matters more than one failing to undo it.
            if let Ok(mut conn) = pool.acquire().await {
                let _ = release_attempt(&mut conn, &attempt).await;
            }
            return Err(err);
        }
    };

    if !password_ok {
        record_failure(pool, user_id, &attempt.key, client_address).await?;
        return Err(AppError::InvalidCredentials);
    }
    let user_id = user_id.expect("a password only matches a stored hash");
    start_session(pool, settings, user_id, is_active, &attempt, client_address).await
}

/// Audits a wrong password, or an unknown username. What was typed for an
/// unknown name is not kept (people type passwords into that box): the
/// entry holds the keyed digest of its username key instead, the same one
/// the failed-login counter is keyed by, so repeated attempts on one name
/// can still be told apart and counted.
async fn record_failure(
    pool: &PgPool,
    user_id: Option<i64>,
    key: &str,
    client_address: Option<&str>,
) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    let target_user = match user_id {
        Some(id) => users::find(&mut *tx, id).await?,
        None => None,
    };
    let mut details = json!({ "reason": "invalid credentials", "clientAddress": client_address });
    let target = match &target_user {
        Some(user) => Target::User(user),
        None => {
            let digest = login_failures::digest(&mut *tx, key).await?;
            details["usernameDigest"] = json!(digest);
            Target::Described(format!("unknown username {}", &digest[..12]))
        }
    };
    AuditEntry::new(AuditAction::LoginFailed, target)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(())
}

/// The right password: a session, unless the account is inactive.
async fn start_session(
    pool: &PgPool,
    settings: &Settings,
    user_id: i64,
    is_active: bool,
    attempt: &Attempt,
    client_address: Option<&str>,
) -> AppResult<LoginOutcome> {
    let mut tx = pool.begin().await?;
    let user = users::find_for_update(&mut *tx, user_id)
        .await?
        .ok_or(AppError::InvalidCredentials)?;
    // The right password is no failed guess, whatever the account's state.
    release_attempt(&mut tx, attempt).await?;
    if !is_active || !user.is_active {
        let details = json!({ "reason": "account inactive", "clientAddress": client_address });
        AuditEntry::new(AuditAction::LoginFailed, Target::User(&user))
            .details(details)
            .record_and_commit(tx)
            .await?;
        return Err(AppError::AccountInactive);
    }
    let issued = token::issue();
    let now = Utc::now();
    let expires_at = now + settings.session_ttl;
    sessions::insert(&mut *tx, user.id, &issued.digest, expires_at).await?;
    users::touch_last_login(&mut *tx, user.id, now).await?;
    // The owner's own typos from this address are forgiven; guesses from
    // elsewhere still count against the username's overall limit.
    let pair = Counter {
        scope: Scope::UsernameAndAddress,
        key: &attempt.pair_key(),
    };
    pair.clear(&mut *tx).await?;
    let details = json!({ "clientAddress": client_address });
    AuditEntry::new(AuditAction::Login, Target::User(&user))
        .by(AuditActor::user(&user))
        .details(details)
        .record_and_commit(tx)
        .await?;
    let user = UserRow {
        last_login: Some(now),
        ..user
    };
    Ok(LoginOutcome {
        token: issued.reveal(),
        expires_at,
        user,
    })
}

/// Counts one attempt on every counter before a password is checked;
/// `RATE_LIMITED` (and nothing counted) when any is over its limit.
async fn reserve_attempt(pool: &PgPool, settings: &Settings, attempt: &Attempt) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    if !attempt.reserve(&mut tx, &settings.login_limit).await? {
        // Refused attempts are not checked, so they must not count either.
        tx.rollback().await?;
        return Err(AppError::RateLimited);
    }
    tx.commit().await?;
    Ok(())
}

/// The user `login` would check for `username`: by key, or by an account's
/// older-style key when the name as typed is exactly that.
pub async fn find_by_username(pool: &PgPool, username: &str) -> AppResult<Option<UserRow>> {
    let attempt = Attempt::new(username, None);
    let found = users::find_by_username(pool, attempt.login_keys()).await?;
    Ok(found)
}

/// Who a login attempt is charged to: the username (by its key, so every
/// look-alike spelling shares one budget) and the client address.
struct Attempt {
    key: String,
    /// The name as typed, only case and width folded: the key of accounts
    /// from before look-alikes were folded (see `db::username_keys`).
    fold: String,
    grandfathered: String,
    /// `unknown` when the transport gives none: such clients share one budget.
    address: String,
}

impl Attempt {
    fn new(username: &str, client_address: Option<&str>) -> Attempt {
        // Overlong input names nobody; it is still checked (and costs) like any other.
        let bounded: String = username
            .chars()
            .take(validation::MAX_USERNAME + 1)
            .collect();
        let fold = validation::username_fold(&bounded);
        Attempt {
            key: Username::typed(&bounded).key().to_owned(),
            grandfathered: crate::db::grandfathered_key(&fold),
            fold,
            address: client_address.unwrap_or("unknown").to_owned(),
        }
    }

    fn login_keys(&self) -> LoginKeys<'_> {
        LoginKeys {
            key: &self.key,
            fold: &self.fold,
            grandfathered: &self.grandfathered,
        }
    }

    /// Addresses hold no space, so the pair cannot be read two ways.
    fn pair_key(&self) -> String {
        format!("{} {}", self.address, self.key)
    }

    /// The counters in a fixed order (pair, username, address), so that
    /// parallel attempts lock their rows in one order and cannot deadlock.
    fn counters(&self) -> [(Scope, String); 3] {
        [
            (Scope::UsernameAndAddress, self.pair_key()),
            (Scope::Username, self.key.clone()),
            (Scope::Address, self.address.clone()),
        ]
    }

    /// Counts the attempt on every counter, or on none (`false`: over a limit,
    /// and the caller must roll back what was counted).
    async fn reserve(&self, conn: &mut PgConnection, limit: &LoginLimit) -> sqlx::Result<bool> {
        for (scope, key) in self.counters() {
            let max = match scope {
                Scope::UsernameAndAddress => limit.per_username_and_address,
                Scope::Username => limit.per_username,
                Scope::Address => limit.per_address,
            };
            let counter = Counter { scope, key: &key };
            let limit = Limit {
                window: limit.window,
                max,
            };
            if !counter.reserve(&mut *conn, limit).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Takes back the attempt `login` counted before checking the password.
async fn release_attempt(conn: &mut PgConnection, attempt: &Attempt) -> sqlx::Result<()> {
    for (scope, key) in attempt.counters() {
        Counter { scope, key: &key }.release(&mut *conn).await?;
    }
    Ok(())
}

/// The caller behind a bearer token, or `None` when the token is unknown,
/// expired, idle too long, revoked or its user is no longer active.
pub async fn authenticate(
    pool: &PgPool,
    settings: &Settings,
    bearer: &str,
) -> AppResult<Option<CurrentUser>> {
    if bearer.is_empty() || bearer.len() > 256 {
        return Ok(None);
    }
    Ok(
        sessions::find_live(pool, &token::digest(bearer), settings.session_idle)
            .await?
            .map(CurrentUser::from),
    )
}

pub async fn logout(pool: &PgPool, current: &CurrentUser) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    let revoked = sessions::revoke(&mut *tx, current.session_id).await?;
    if revoked {
        let me = users::find(&mut *tx, current.id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        AuditEntry::new(AuditAction::Logout, Target::User(&me))
            .by(AuditActor::user(&me))
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(revoked)
}

pub struct NewUserInput {
    pub username: String,
    pub email: String,
    pub password: SecretString,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

pub async fn create_user(
    pool: &PgPool,
    actor: &Actor,
    input: NewUserInput,
    policy: &PasswordPolicy,
) -> AppResult<UserRow> {
    if input.is_staff || input.is_superuser {
        ensure_may_set_flags(actor)?;
    }
    let profile = NewProfile::validated(&input.profile())?;
    let personal = profile.personal();
    password::check_strength("password", &input.password, policy, &personal).await?;
    let hash = password::hash_password(input.password).await?;
    insert_user(pool, actor, &profile, Some(&hash)).await
}

/// A new account's fields besides its password, as typed: the store's
/// profile before its username is checked.
pub type NewProfileInput<'a> = users::Profile<'a, str>;

impl NewUserInput {
    fn profile(&self) -> NewProfileInput<'_> {
        NewProfileInput {
            username: &self.username,
            email: &self.email,
            first_name: &self.first_name,
            last_name: &self.last_name,
            is_staff: self.is_staff,
            is_superuser: self.is_superuser,
        }
    }
}

/// Creates an account that cannot log in with a password (none is set):
/// what a provisioning client creates for a person who signs in elsewhere.
/// The same rules as [`create_user`] otherwise.
pub async fn create_user_without_password(
    pool: &PgPool,
    actor: &Actor,
    input: NewProfileInput<'_>,
) -> AppResult<UserRow> {
    if input.is_staff || input.is_superuser {
        ensure_may_set_flags(actor)?;
    }
    let profile = NewProfile::validated(&input)?;
    insert_user(pool, actor, &profile, None).await
}

/// A new account's fields, validated.
struct NewProfile {
    username: Username,
    email: String,
    first_name: String,
    last_name: String,
    is_staff: bool,
    is_superuser: bool,
}

impl NewProfile {
    fn validated(input: &NewProfileInput<'_>) -> AppResult<NewProfile> {
        Ok(NewProfile {
            username: validation::username("username", input.username)?,
            email: validation::email("email", input.email)?,
            first_name: validation::line(
                "firstName",
                input.first_name,
                validation::MAX_NAME,
                false,
            )?,
            last_name: validation::line("lastName", input.last_name, validation::MAX_NAME, false)?,
            is_staff: input.is_staff,
            is_superuser: input.is_superuser,
        })
    }

    /// What a password may not be built from.
    fn personal(&self) -> [&str; 4] {
        [
            self.username.as_str(),
            &self.email,
            &self.first_name,
            &self.last_name,
        ]
    }
}

/// Inserts the account and its `USER_CREATED` entry, with the caller
/// re-checked in the transaction (`auth.add_user`; flags only by a superuser).
async fn insert_user(
    pool: &PgPool,
    actor: &Actor,
    new: &NewProfile,
    hash: Option<&str>,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let actor = &authority::recheck(&mut tx, actor, Rule::Permission(ADD_USER)).await?;
    if new.is_staff || new.is_superuser {
        ensure_may_set_flags(actor)?;
    }
    let profile = users::Profile {
        username: &new.username,
        email: &new.email,
        first_name: &new.first_name,
        last_name: &new.last_name,
        is_staff: new.is_staff,
        is_superuser: new.is_superuser,
    };
    let user = users::insert(&mut *tx, &profile, hash)
        .await
        .on_constraint(users::USERNAME_UNIQUE, username_taken)?;
    let details = json!({ "isStaff": user.is_staff, "isSuperuser": user.is_superuser });
    AuditEntry::new(AuditAction::UserCreated, Target::User(&user))
        .by(actor)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(user)
}

/// The refusal of a username someone holds already (also how the SCIM
/// layer tells a uniqueness conflict from other bad input).
pub const USERNAME_TAKEN: &str = "a user with that username already exists";

fn username_taken() -> AppError {
    AppError::invalid("username", USERNAME_TAKEN)
}

// The fields `updateUser` may change, and also its GraphQL input (see the
// layering note in `domain`): one declaration, so the API and the rule
// cannot drift apart.
/// Fields left out stay as they are.
#[derive(Default, async_graphql::InputObject)]
#[graphql(name = "UpdateUserInput")]
pub struct UserPatch {
    /// New username, under the same rules as at creation.
    pub username: Option<String>,
    /// New contact address.
    pub email: Option<String>,
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// Only a superuser may change it.
    pub is_staff: Option<bool>,
    /// Only a superuser may change it.
    pub is_superuser: Option<bool>,
}

pub async fn update_user(
    pool: &PgPool,
    actor: &Actor,
    user_id: i64,
    patch: UserPatch,
) -> AppResult<UserRow> {
    let mut tx = pool.begin().await?;
    let Acting {
        actor,
        target: user,
    } = authority::lock_manageable_user(&mut tx, actor, user_id).await?;
    let actor = &actor;
    let is_staff = patch.is_staff.unwrap_or(user.is_staff);
    let is_superuser = patch.is_superuser.unwrap_or(user.is_superuser);
    if is_staff != user.is_staff || is_superuser != user.is_superuser {
        ensure_may_set_flags(actor)?;
    }
    if !is_superuser {
        authority::ensure_superusers_remain(&mut tx, &[&user]).await?;
    }
    let profile = patched_profile(&user, &patch)?;
    let updated = users::update_profile(
        &mut *tx,
        user.id,
        &users::Profile {
            username: &profile.username,
            email: &profile.email,
            first_name: &profile.first_name,
            last_name: &profile.last_name,
            is_staff,
            is_superuser,
        },
    )
    .await
    .on_constraint(users::USERNAME_UNIQUE, username_taken)?;
    let changed = changed_fields(&user, &updated);
    if !changed.is_empty() {
        let details = json!({ "changed": changed, "isStaff": updated.is_staff, "isSuperuser": updated.is_superuser });
        AuditEntry::new(AuditAction::UserUpdated, Target::User(&updated))
            .by(actor)
            .details(details)
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// A profile's text fields after a patch: those given, validated; the others as they were.
struct PatchedProfile {
    username: Username,
    email: String,
    first_name: String,
    last_name: String,
}

fn patched_profile(user: &UserRow, patch: &UserPatch) -> AppResult<PatchedProfile> {
    let name = |field: &str, raw: &Option<String>, now: &String| match raw {
        Some(raw) => validation::line(field, raw, validation::MAX_NAME, false),
        None => Ok(now.clone()),
    };
    Ok(PatchedProfile {
        username: match &patch.username {
            Some(raw) => validation::username("username", raw)?,
            None => Username::typed(&user.username),
        },
        email: match &patch.email {
            Some(raw) => validation::email("email", raw)?,
            None => user.email.clone(),
        },
        first_name: name("firstName", &patch.first_name, &user.first_name)?,
        last_name: name("lastName", &patch.last_name, &user.last_name)?,
    })
}

/// The names of the fields an update changed; names only, since values
/// would keep personal data in the audit log.
fn changed_fields(before: &UserRow, after: &UserRow) -> Vec<&'static str> {
    [
        ("username", after.username != before.username),
        ("email", after.email != before.email),
        ("firstName", after.first_name != before.first_name),
        ("lastName", after.last_name != before.last_name),
        ("isStaff", after.is_staff != before.is_staff),
        ("isSuperuser", after.is_superuser != before.is_superuser),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// A password change as asked: whose, the new password, and (for your own
/// account) the current one.
pub struct PasswordChange {
    pub user_id: i64,
    pub new_password: SecretString,
    /// Required on your own account: a stolen token alone must not become
    /// a permanent takeover.
    pub current_password: Option<SecretString>,
}

/// Sets a password: your own (proving the current one), or (with
/// `auth.change_user`) that of someone in your scope. Every other session of
/// the user is revoked; your own current one stays.
///
/// The rights are checked twice: cheaply before any argon2 work (a refused
/// request costs no hashing slot), and again under the row locks after it,
/// since the target may have been promoted, or the caller demoted, while
/// the hash was computed.
pub async fn set_password(
    pool: &PgPool,
    settings: &Settings,
    actor: &CurrentUser,
    change: PasswordChange,
    client_address: Option<&str>,
) -> AppResult<bool> {
    let acting = Actor::User(actor.clone());
    let rule = password_rule(actor, change.user_id);
    rule.check(actor).map_err(|_| {
        AppError::forbidden("you may only change your own password without 'auth.change_user'")
    })?;
    let target = users::find(pool, change.user_id)
        .await
        .or_not_found("user")?;
    ensure_password_settable(&mut *pool.acquire().await?, &acting, &target).await?;
    let personal = [
        target.username.as_str(),
        &target.email,
        &target.first_name,
        &target.last_name,
    ];
    let policy = &settings.password_policy;
    password::check_strength("password", &change.new_password, policy, &personal).await?;
    if actor.id == target.id {
        let current = change.current_password;
        verify_current_password(pool, settings, &target, current, client_address).await?;
    }
    let hash = password::hash_password(change.new_password).await?;

    let mut tx = pool.begin().await?;
    let Acting {
        actor: acting,
        target,
    } = authority::lock_caller_and_target(&mut tx, &acting, rule, change.user_id).await?;
    ensure_password_settable(&mut tx, &acting, &target).await?;
    users::set_password_hash(&mut *tx, target.id, &hash).await?;
    let keep = (actor.id == target.id).then_some(actor.session_id);
    let revoked = sessions::revoke_all_for_user(&mut *tx, target.id, keep).await?;
    let details = json!({ "sessionsRevoked": revoked });
    AuditEntry::new(AuditAction::PasswordChanged, Target::User(&target))
        .by(&acting)
        .details(details)
        .record_and_commit(tx)
        .await?;
    Ok(true)
}

/// What `memberdesk changepassword` did: whose password, and how many of
/// their sessions ended.
pub struct PasswordReset {
    pub user: UserRow,
    pub sessions_revoked: i64,
}

/// Sets a user's password from the command line (`memberdesk changepassword`),
/// the operator's way back into an account nobody can log in to: the same
/// strength rule as the API, every session of the user revoked (whoever
/// holds one may be why the password changes), audited with `system` as the
/// actor. An anonymized account is refused: erasure took its password for good.
pub async fn reset_password_as_system(
    pool: &PgPool,
    policy: &PasswordPolicy,
    username: &str,
    new_password: SecretString,
) -> AppResult<PasswordReset> {
    let target = find_by_username(pool, username)
        .await
        .or_not_found("user")?;
    if target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    let personal = [
        target.username.as_str(),
        &target.email,
        &target.first_name,
        &target.last_name,
    ];
    password::check_strength("password", &new_password, policy, &personal).await?;
    let hash = password::hash_password(new_password).await?;

    let mut tx = pool.begin().await?;
    // Re-read under the lock: the account may have been erased meanwhile.
    let target = users::find_for_update(&mut *tx, target.id)
        .await
        .or_not_found("user")?;
    if target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    users::set_password_hash(&mut *tx, target.id, &hash).await?;
    let revoked = sessions::revoke_all_for_user(&mut *tx, target.id, None).await?;
    AuditEntry::new(AuditAction::PasswordChanged, Target::User(&target))
        .by(&Actor::System)
        .details(json!({ "sessionsRevoked": revoked }))
        .record_and_commit(tx)
        .await?;
    Ok(PasswordReset {
        user: target,
        sessions_revoked: revoked,
    })
}

/// Checks your current password before you may change it, under the same
/// failed-login limits as `login`: a missing or wrong one counts as a failed
/// attempt, so a stolen token cannot be used to guess the password either.
async fn verify_current_password(
    pool: &PgPool,
    settings: &Settings,
    me: &UserRow,
    current: Option<SecretString>,
    client_address: Option<&str>,
) -> AppResult<()> {
    let attempt = Attempt::new(&me.username, client_address);
    reserve_attempt(pool, settings, &attempt).await?;
    let Some(current) = current else {
        return Err(AppError::invalid(
            "currentPassword",
            "give your current password to change it",
        ));
    };
    let stored = users::find_credentials(pool, attempt.login_keys())
        .await?
        .filter(|c| c.id == me.id)
        .and_then(|c| c.password_hash);
    if password::verify_password(current, stored).await? {
        let mut conn = pool.acquire().await?;
        release_attempt(&mut conn, &attempt).await?;
        return Ok(());
    }
    let details = json!({ "reason": "wrong current password", "clientAddress": client_address });
    let tx = pool.begin().await?;
    AuditEntry::new(AuditAction::LoginFailed, Target::User(me))
        .details(details)
        .record_and_commit(tx)
        .await?;
    Err(AppError::InvalidCredentials)
}

/// Your own password needs no permission; anyone else's needs `auth.change_user`.
fn password_rule(actor: &CurrentUser, user_id: i64) -> Rule {
    match actor.id == user_id {
        true => Rule::Authenticated,
        false => Rule::Permission(CHANGE_USER),
    }
}

/// Not an erased account, and (for someone else's) within the actor's scope.
async fn ensure_password_settable(
    conn: &mut PgConnection,
    actor: &Actor,
    target: &UserRow,
) -> AppResult<()> {
    if target.anonymized_at.is_some() {
        return Err(AppError::Anonymized);
    }
    if actor.user_id() == Some(target.id) {
        return Ok(());
    }
    authority::ensure_scope(conn, actor, target).await
}
