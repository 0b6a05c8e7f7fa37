//! `/scim/v2`: SCIM 2.0 provisioning (RFC 7643 / 7644) for identity
//! providers (Okta, Microsoft Entra ID, Keycloak, authentik).
//!
//! This is transport only, as `http::graphql` is for GraphQL: it
//! authenticates the client's bearer token (a provisioning service, see
//! `domain::provisioning`), reads SCIM requests, and answers in SCIM's
//! shapes and status codes (`application/scim+json`, error bodies with a
//! `scimType`). What a request *does* is the domain's: the same functions,
//! rules and audit entries as the GraphQL API.
//!
//! The HTTP layer's limits hold here as on `/graphql`: the body limit
//! (`MEMBERDESK_MAX_BODY_BYTES`, else 413), the body deadline and the
//! connection caps (they wrap every route), and a page holds at most
//! [`discovery::MAX_RESULTS`] resources.

mod discovery;
mod endpoints;
pub mod filter;
mod patch;
mod resources;

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::config::Settings;
use crate::domain::{Actor, provisioning};
use crate::error::AppError;

pub const SCIM_JSON: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Where the SCIM service lives.
pub const PREFIX: &str = "/scim/v2";

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    status: u16,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        ScimError::new(400, Some("invalidValue"), detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        ScimError::new(400, Some("invalidSyntax"), detail)
    }

    pub fn not_found() -> Self {
        ScimError::new(404, None, "no such resource")
    }

    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = scim_response(status, &body);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The messages of the domain's uniqueness refusals: a SCIM client is told
/// `409 uniqueness` for them, and `400 invalidValue` for other bad input.
const UNIQUENESS: [&str; 2] = [
    crate::domain::accounts::USERNAME_TAKEN,
    crate::domain::groups::GROUP_NAME_TAKEN,
];

impl From<AppError> for ScimError {
    fn from(err: AppError) -> Self {
        let detail = err.message();
        match err {
            AppError::Unauthenticated => {
                ScimError::new(401, None, "a valid SCIM bearer token is required")
            }
            AppError::Forbidden(_) | AppError::SelfAction(_) => ScimError::new(403, None, detail),
            AppError::NotFound(_) | AppError::Anonymized => ScimError::new(404, None, detail),
            AppError::InvalidInput { message, .. } if UNIQUENESS.contains(&message.as_str()) => {
                ScimError::new(409, Some("uniqueness"), detail)
            }
            AppError::InvalidInput { field, message } if field == "filter" => {
                ScimError::new(400, Some("invalidFilter"), message)
            }
            AppError::InvalidInput { field, message } => {
                ScimError::invalid_value(format!("{field}: {message}"))
            }
            AppError::LastSuperuser | AppError::DeleteProtected(_) | AppError::PlanChanged => {
                ScimError::new(409, None, detail)
            }
            // Failed bearer tokens from this address (`provisioning::authenticate`).
            AppError::RateLimited => {
                ScimError::new(429, None, "too many failed attempts; try again later")
            }
            AppError::Internal(inner) => {
                tracing::error!(error = %inner, debug = ?inner, "internal error");
                ScimError::new(500, None, "internal error")
            }
            AppError::InvalidCredentials | AppError::AccountInactive => {
                ScimError::new(401, None, detail)
            }
        }
    }
}

fn scim_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .content_type(SCIM_JSON)
        .body(body.to_string())
}

/// A successful answer: its status, its body (none for 204) and the
/// resource's version (sent as `ETag`).
pub struct Answer {
    status: StatusCode,
    body: Option<Value>,
    location: Option<String>,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
        }
    }

    fn created(body: Value) -> Answer {
        let location = body["meta"]["location"].as_str().map(str::to_owned);
        Answer {
            status: StatusCode::CREATED,
            body: Some(body),
            location,
        }
    }

    fn no_content() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
        }
    }

    fn into_response(self) -> Response {
        let Some(body) = self.body else {
            return Response::builder().status(self.status).finish();
        };
        let version = body["meta"]["version"].as_str().map(str::to_owned);
        let mut resp = scim_response(self.status, &body);
        let headers = resp.headers_mut();
        if let Some(etag) = version.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        resp
    }
}

/// The `/scim/v2` endpoint.
pub struct ScimEndpoint {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
}

/// What one request brings a handler: who calls, the service's base URL
/// (for `meta.location`), the request's conditions and its body.
pub struct Call {
    pub actor: Actor,
    pub base: String,
    pub if_match: Option<String>,
    pub query: ListQuery,
    pub body: Value,
}

/// The query parameters of a list or a read (RFC 7644 §3.4.2, §3.9).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    #[serde(default, deserialize_with = "names")]
    pub attributes: Option<String>,
    #[serde(default, deserialize_with = "names")]
    pub excluded_attributes: Option<String>,
}

/// Attribute names as a query string has them (`a,b`) or as a `.search`
/// body does (`["a", "b"]`).
fn names<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Names {
        Joined(String),
        Listed(Vec<String>),
    }
    Ok(Option::<Names>::deserialize(de)?.map(|names| match names {
        Names::Joined(joined) => joined,
        Names::Listed(list) => list.join(","),
    }))
}

impl ScimEndpoint {
    /// The provisioning client behind the bearer token, or 401.
    async fn actor(&self, req: &Request) -> Result<Actor, ScimError> {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::Unauthenticated)?;
        let address = crate::http::client_address::of(req, &self.settings.trusted_proxies);
        let limit = &self.settings.login_limit;
        provisioning::authenticate(&self.pool, bearer, address.as_deref(), limit)
            .await?
            .ok_or_else(|| AppError::Unauthenticated.into())
    }

    /// The JSON body of a POST, PUT or PATCH (SCIM's or plain JSON media
    /// type, within the body limit); `Null` for other methods.
    async fn body(&self, req: &mut Request) -> Result<Value, ScimError> {
        if !matches!(req.method().as_str(), "POST" | "PUT" | "PATCH") {
            return Ok(Value::Null);
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if content_type != SCIM_JSON && content_type != "application/json" {
            return Err(ScimError::new(
                415,
                None,
                "send SCIM requests with 'Content-Type: application/scim+json'",
            ));
        }
        let limit = self.settings.max_body_bytes;
        let bytes = req.take_body().into_bytes_limit(limit).await.map_err(|_| {
            ScimError::new(
                413,
                None,
                format!("the request body is larger than {limit} bytes"),
            )
        })?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ScimError::invalid_syntax("the request body is not valid JSON"))?;
        if !body.is_object() {
            return Err(ScimError::invalid_syntax(
                "the request body must be a JSON object",
            ));
        }
        Ok(body)
    }

    async fn call_scim(&self, mut req: Request) -> Result<Answer, ScimError> {
        let actor = self.actor(&req).await?;
        let query: ListQuery = req
            .params()
            .map_err(|e| ScimError::invalid_value(format!("invalid query parameters: {e}")))?;
        let header_text = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let if_match = header_text(header::IF_MATCH);
        let host = header_text(header::HOST).unwrap_or_else(|| "localhost".into());
        let scheme = match header_text(header::HeaderName::from_static("x-forwarded-proto")) {
            Some(proto) if proto == "https" => "https",
            _ => "http",
        };
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let rest = path.strip_prefix(PREFIX).unwrap_or(&path);
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().as_str().to_owned();
        if !endpoints::allows(&method, &segments) {
            return Err(ScimError::new(
                405,
                None,
                format!("{method} is not supported here"),
            ));
        }
        let body = self.body(&mut req).await?;
        let call = Call {
            actor,
            base: format!("{scheme}://{host}{PREFIX}"),
            if_match,
            query,
            body,
        };
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let rest = path.strip_prefix(PREFIX).unwrap_or(&path);
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        endpoints::dispatch(
            &self.pool,
            &self.settings,
            req.method().as_str(),
            &segments,
            call,
        )
        .await
    }
}

impl Endpoint for ScimEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let if_none_match = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_get = req.method() == poem::http::Method::GET;
        Ok(match self.call_scim(req).await {
            Ok(answer) => {
                let version = answer
                    .body
                    .as_ref()
                    .map(resources::version)
                    .map(str::to_owned);
                match (is_get, if_none_match, version) {
                    (true, Some(wanted), Some(v)) if !v.is_empty() && wanted == v => {
                        Response::builder()
                            .status(StatusCode::NOT_MODIFIED)
                            .finish()
                    }
                    _ => answer.into_response(),
                }
            }
            Err(err) => err.into_response(),
        })
    }
}
