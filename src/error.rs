//! The one error type of memberdesk.
//!
//! Every failure a client can see is an [`AppError`]; [`AppError::code`] maps it
//! to the contract's `extensions.code` in this one place. Database and other
//! internal failures are logged here, with their details, and reach the client
//! only as `INTERNAL` with a generic message: no SQL, no stack trace, no hash.

use crate::domain::deletion::RelationCount;

/// Deliberately not `Display`: async-graphql turns anything displayable
/// into an error *without* an `extensions.code`, so this type only becomes a
/// client-visible error through the one `From` below, which adds the code.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated,
    Forbidden(String),
    NotFound(&'static str),
    InvalidInput {
        field: String,
        message: String,
    },
    InvalidCredentials,
    AccountInactive,
    /// The verb: "deactivate", "delete", "anonymize".
    SelfAction(&'static str),
    LastSuperuser,
    DeleteProtected(Vec<RelationCount>),
    Anonymized,
    PlanChanged,
    RateLimited,
    /// Anything unexpected. Logged in full; the client sees "internal error".
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden(message.into())
    }

    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(err.into())
    }

    /// The message a client sees: never SQL, hashes or internals.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated => {
                "authentication required: log in and send the token as 'Authorization: Bearer <token>'".into()
            }
            AppError::Forbidden(message) => message.clone(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::InvalidInput { message, .. } => message.clone(),
            AppError::InvalidCredentials => "invalid username or password".into(),
            AppError::AccountInactive => "this account is deactivated".into(),
            AppError::SelfAction(verb) => format!("you cannot {verb} your own account"),
            AppError::LastSuperuser => "this would leave no active superuser".into(),
            AppError::DeleteProtected(_) => "related rows (listed in extensions.protected) keep this \
                 from being deleted under the PROTECT policy: delete them first or use another policy \
                 (for a user, SET_NULL or CASCADE, or deactivate instead)"
                .into(),
            AppError::Anonymized => "this user is anonymized; anonymization cannot be undone".into(),
            AppError::PlanChanged => {
                "the data changed since the deletion plan was previewed: preview again and confirm the new plan".into()
            }
            AppError::RateLimited => "too many failed logins; try again later".into(),
            AppError::Internal(_) => "internal error".into(),
        }
    }

    /// The contract's `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::InvalidInput { .. } => "INVALID_INPUT",
            AppError::InvalidCredentials => "INVALID_CREDENTIALS",
            AppError::AccountInactive => "ACCOUNT_INACTIVE",
            AppError::SelfAction(_) => "SELF_ACTION",
            AppError::LastSuperuser => "LAST_SUPERUSER",
            AppError::DeleteProtected(_) => "DELETE_PROTECTED",
            AppError::Anonymized => "ANONYMIZED",
            AppError::PlanChanged => "PLAN_CHANGED",
            AppError::RateLimited => "RATE_LIMITED",
            AppError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        AppError::Internal(Box::new(err))
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(err: tokio::task::JoinError) -> Self {
        AppError::Internal(Box::new(err))
    }
}

/// Turns a unique-constraint violation on `constraint` into a field error, and
/// leaves every other database error as it is.
pub trait OnConstraint<T> {
    fn on_constraint(
        self,
        constraint: &str,
        to_error: impl FnOnce() -> AppError,
    ) -> Result<T, AppError>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint(
        self,
        constraint: &str,
        to_error: impl FnOnce() -> AppError,
    ) -> Result<T, AppError> {
        self.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => to_error(),
            _ => AppError::from(err),
        })
    }
}

/// A lookup that found nothing as the contract's `NOT_FOUND` for `what`:
/// the tail of every read whose id must name a row, in one call
/// (`users::find(..).await.or_not_found("user")?`).
pub trait OrNotFound<T> {
    fn or_not_found(self, what: &'static str) -> AppResult<T>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self, what: &'static str) -> AppResult<T> {
        self.ok_or(AppError::NotFound(what))
    }
}

impl<T, E: Into<AppError>> OrNotFound<T> for Result<Option<T>, E> {
    fn or_not_found(self, what: &'static str) -> AppResult<T> {
        self.map_err(Into::into)?.or_not_found(what)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(inner) = &err {
            tracing::error!(error = %inner, debug = ?inner, "internal error");
        }
        let mut gql = async_graphql::Error::new(err.message());
        let code = err.code();
        gql = async_graphql::ErrorExtensions::extend_with(gql, |_, ext| {
            ext.set("code", code);
            match &err {
                AppError::InvalidInput { field, .. } => ext.set("field", field.as_str()),
                AppError::DeleteProtected(relations) => {
                    let list: Vec<async_graphql::Value> = relations
                        .iter()
                        .map(|rc| {
                            let mut obj = async_graphql::indexmap::IndexMap::new();
                            obj.insert(
                                async_graphql::Name::new("relation"),
                                async_graphql::Value::from(rc.relation.as_str()),
                            );
                            obj.insert(
                                async_graphql::Name::new("count"),
                                async_graphql::Value::from(rc.count),
                            );
                            async_graphql::Value::Object(obj)
                        })
                        .collect();
                    ext.set("protected", async_graphql::Value::List(list));
                }
                _ => {}
            }
        });
        gql
    }
}

pub type AppResult<T> = Result<T, AppError>;
