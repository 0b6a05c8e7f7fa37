//! `/graphql`: GraphQL over HTTP, hardened.
//!
//! async-graphql-poem's stock endpoint runs mutations sent by GET, parses a
//! `text/plain` POST as JSON (a CSRF hole: a plain HTML form can send one)
//! and has no body limit. This endpoint does the transport itself:
//! queries only by GET (a mutation by GET is 405), POST only with a JSON
//! content type (else 415), a bounded body (else 413), and the response type
//! the client asks for (`application/graphql-response+json` or JSON).
//! Before async-graphql sees a document, [`limits`] checks its expanded size,
//! its fragments, aliases, mutations and password hashes in linear time.

use std::sync::Arc;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql_poem::GraphQLResponse;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::metrics::{Metrics, RootFields, error_code};
use super::request_id::{GraphqlSummary, RequestId};
use sqlx::PgPool;

use super::documents::ParsedDocuments;
use super::playground;
use crate::config::{DocumentLimits, Settings};
use crate::domain::accounts;
use crate::graphql::MemberdeskSchema;
use crate::graphql::context::{Caller, RequestContext};
use crate::graphql::limits::{self, Refusal, UnpricedFields};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

pub struct GraphqlEndpoint {
    pub schema: MemberdeskSchema,
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Documents already parsed, by their text (see [`super::documents`]).
    pub documents: ParsedDocuments,
}

/// The log line's summary of a request: its root fields and error codes.
fn summary(fields: &RootFields, response: &async_graphql::Response) -> GraphqlSummary {
    let mut codes: Vec<String> = Vec::new();
    for code in response.errors.iter().map(error_code) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    GraphqlSummary {
        operation: fields.names(),
        error_codes: codes.join(","),
    }
}

/// A transport-level refusal, answered as a GraphQL error body.
fn refuse(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": "INVALID_INPUT", "field": "request" } }]
    });
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string());
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    resp.extensions_mut().insert(GraphqlSummary {
        operation: "none".to_owned(),
        error_codes: "INVALID_INPUT".to_owned(),
    });
    resp
}

fn header_str(req: &Request, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == GRAPHQL_RESPONSE_JSON
}

/// The GET parameters of GraphQL over HTTP. async-graphql's own
/// `parse_query_string` only knows `operation_name`, so a standard client's
/// `operationName` would be dropped; the snake_case spelling stays accepted
/// because the mutation-by-GET refusal must hold for it too.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    #[serde(default)]
    query: String,
    #[serde(alias = "operation_name")]
    operation_name: Option<String>,
    /// URL-encoded JSON, as the spec has it.
    variables: Option<String>,
    extensions: Option<String>,
}

/// What a GET without a query is told: the URL the startup line prints is
/// `/graphql`, and a client (curl, a script) that opens it needs the next step.
const GET_WITHOUT_QUERY: &str = "send a query: GET /graphql?query={me{username}} or POST JSON \
     {\"query\": \"...\"} with 'Content-Type: application/json' (a browser, asking for \
     text/html, gets the playground here)";

/// The request a GET carries, or the message of the 400 that refuses it.
fn get_request(req: &Request) -> Result<async_graphql::Request, String> {
    let invalid = |e: String| format!("invalid GraphQL GET request: {e}");
    let params: GetParams = req.params().map_err(|e| invalid(e.to_string()))?;
    if params.query.trim().is_empty() {
        return Err(GET_WITHOUT_QUERY.to_owned());
    }
    let mut gql = async_graphql::Request::new(params.query);
    gql.operation_name = params.operation_name.filter(|name| !name.is_empty());
    if let Some(raw) = params.variables.filter(|v| !v.is_empty()) {
        gql.variables =
            serde_json::from_str(&raw).map_err(|e| invalid(format!("invalid variables: {e}")))?;
    }
    if let Some(raw) = params.extensions.filter(|v| !v.is_empty()) {
        gql.extensions =
            serde_json::from_str(&raw).map_err(|e| invalid(format!("invalid extensions: {e}")))?;
    }
    Ok(gql)
}

/// The GraphQL-over-HTTP request parameters: `query` a string, the others
/// absent, null, or of their type. A body that is JSON but not this is a bad
/// request (400), not a GraphQL document to try.
fn has_valid_parameters(body: &serde_json::Value) -> bool {
    let Some(fields) = body.as_object() else {
        return false;
    };
    let optional = |name: &str, ok: fn(&serde_json::Value) -> bool| {
        fields.get(name).is_none_or(|v| v.is_null() || ok(v))
    };
    fields
        .get("query")
        .is_some_and(serde_json::Value::is_string)
        && optional("variables", serde_json::Value::is_object)
        && optional("operationName", serde_json::Value::is_string)
        && optional("extensions", serde_json::Value::is_object)
}

/// Whether the response comes from a request that never reached execution.
///
/// async-graphql answers a parse, validation or operation-selection failure
/// with `data: null` and errors that carry no `path`, before any resolver
/// runs. Once execution starts, every error a resolver, argument, guard or
/// non-null check raises goes through `Context::set_error_path`, so it
/// carries the path of its field; and `data` can only end up null there by
/// such an error propagating up. So null data with no path on any error
/// means the document was never executed.
fn never_executed(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The operation the request would run, if the document names one.
fn operation_type(request: &mut async_graphql::Request) -> Option<OperationType> {
    let name = request.operation_name.clone();
    let doc = request.parsed_query().ok()?;
    match &doc.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match name {
            Some(name) => ops.get(name.as_str()).map(|op| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    }
}

impl GraphqlEndpoint {
    async fn caller(&self, req: &Request) -> Result<Caller, Response> {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Ok(Caller::Rejected);
        };
        match accounts::authenticate(&self.pool, &self.settings, token).await {
            Ok(Some(user)) => Ok(Caller::User(user)),
            Ok(None) => Ok(Caller::Rejected),
            Err(err) => {
                let gql: async_graphql::Error = err.into();
                let body = serde_json::json!({ "errors": [{ "message": gql.message, "extensions": { "code": "INTERNAL" } }] });
                Err(Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .content_type("application/json")
                    .body(body.to_string()))
            }
        }
    }

    async fn parse(&self, req: &mut Request) -> Result<async_graphql::Request, Response> {
        match *req.method() {
            Method::GET => get_request(req).map_err(|e| refuse(StatusCode::BAD_REQUEST, &e)),
            Method::POST => {
                if !is_json_content_type(header_str(req, header::CONTENT_TYPE)) {
                    return Err(refuse(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "send GraphQL requests as JSON with 'Content-Type: application/json'",
                    ));
                }
                let limit = self.settings.max_body_bytes;
                let body = req.take_body().into_bytes_limit(limit).await.map_err(|_| {
                    refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("the request body is larger than {limit} bytes"),
                    )
                })?;
                let value: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "the request body is not valid JSON",
                    )
                })?;
                if value.is_array() {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "batched requests are not supported: send one operation per request",
                    ));
                }
                let wrong_shape = || {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "the body must be {\"query\": \"...\", \"variables\": {...}, \"operationName\": \"...\"}",
                    )
                };
                if !has_valid_parameters(&value) {
                    return Err(wrong_shape());
                }
                serde_json::from_value(value).map_err(|_| wrong_shape())
            }
            _ => Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "use GET for queries or POST for any operation",
            )),
        }
    }
}

/// Whether the request asks for the playground page rather than an operation.
fn wants_playground(req: &Request, accept: &str) -> bool {
    req.method() == Method::GET
        && accept.contains("text/html")
        && req.uri().query().is_none_or(|q| !q.contains("query="))
}

/// Checks the document's size and shape before async-graphql looks at it
/// (see [`limits`]), or says why it is refused. A document that does not
/// parse passes here; async-graphql reports its syntax error.
///
/// async-graphql's complexity count skips `__typename`, so the selections it
/// leaves out are held to the complexity limit here. (Not added to the
/// count itself: that takes an async-graphql extension, and any extension
/// turns off its fast path for every field resolved, which cost reads a
/// fifth of their throughput. Inside a list each item counts at least 1
/// anyway, see `graphql::cost`, and `MEMBERDESK_MAX_SELECTIONS` bounds the
/// rest.)
fn screen(
    gql: &mut async_graphql::Request,
    limits: &DocumentLimits,
    max_complexity: usize,
) -> Result<(), Refusal> {
    let Ok(doc) = gql.parsed_query() else {
        return Ok(());
    };
    let UnpricedFields(typenames) = limits::check(doc, limits)?;
    if typenames > max_complexity {
        // async-graphql's own wording for the same refusal.
        return Err(Refusal("Query is too complex.".into()));
    }
    Ok(())
}

/// A refused document's response: an error without a path and no data, as
/// async-graphql answers a document that fails validation, so it is
/// answered like one (see [`never_executed`]).
fn refused(refusal: Refusal) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(refusal.0, None)])
}

/// The HTTP response for a GraphQL response, in the media type the client
/// accepts.
fn into_http(response: async_graphql::Response, never_ran: bool, accept: &str) -> Response {
    let wants_graphql_json = accept.contains(GRAPHQL_RESPONSE_JSON);
    // Under the GraphQL-over-HTTP media type, a request that never ran
    // (unparsable, invalid or refused document) is a client error; one that
    // ran is 200 even when a field error nulled all of `data`.
    let status = if wants_graphql_json && never_ran {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // A request that never ran has no `data` entry at all (GraphQL spec,
    // "Response Format"): `data: null` would claim an execution.
    let body_without_data = never_ran
        .then(|| {
            let mut json = serde_json::to_value(&response).ok()?;
            json.as_object_mut()?.remove("data");
            Some(json.to_string())
        })
        .flatten();
    let mut resp = GraphQLResponse(response).into_response();
    if let Some(body) = body_without_data {
        resp.set_body(body);
    }
    resp.set_status(status);
    let content_type = if wants_graphql_json {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

impl GraphqlEndpoint {
    /// Runs a screened request as `caller`; returns the response and the root
    /// fields it called.
    async fn execute(
        &self,
        req: &Request,
        mut gql: async_graphql::Request,
        caller: Caller,
    ) -> (async_graphql::Response, RootFields) {
        let address = super::client_address::of(req, &self.settings.trusted_proxies);
        let operation_name = gql.operation_name.clone();
        let fields = match gql.parsed_query() {
            Ok(doc) => RootFields::of(doc, operation_name.as_deref()),
            Err(_) => RootFields::none(),
        };
        let (context, loader_tasks) = RequestContext::new(self.pool.clone(), caller, address);
        let execution = self.schema.execute(gql.data(context));
        (loader_tasks.run_alongside(execution).await, fields)
    }
}

impl Endpoint for GraphqlEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let accept = header_str(&req, header::ACCEPT).to_owned();
        if self.settings.playground.is_on() && wants_playground(&req, &accept) {
            return Ok(playground::page().into_response());
        }
        let mut gql = match self.parse(&mut req).await {
            Ok(gql) => gql,
            Err(resp) => return Ok(resp),
        };
        self.documents.prepare(&mut gql);
        if req.method() == Method::GET && operation_type(&mut gql) == Some(OperationType::Mutation)
        {
            return Ok(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "mutations must be sent by POST",
            ));
        }
        let started = std::time::Instant::now();
        let (response, fields) = match screen(
            &mut gql,
            &self.settings.document_limits,
            self.settings.max_query_complexity,
        ) {
            Err(refusal) => (refused(refusal), RootFields::none()),
            Ok(()) => match self.caller(&req).await {
                Ok(caller) => self.execute(&req, gql, caller).await,
                Err(resp) => return Ok(resp),
            },
        };
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        let response = super::errors::with_codes(response, request_id.as_deref());
        let never_ran = never_executed(&response);
        // An invalid document's field names are the client's words, not the
        // schema's: they must not become metric labels.
        let fields = if never_ran {
            RootFields::none()
        } else {
            fields
        };
        self.metrics.observe(&fields, &response, started.elapsed());
        let summary = summary(&fields, &response);
        let mut resp = into_http(response, never_ran, &accept);
        resp.extensions_mut().insert(summary);
        Ok(resp)
    }
}
