//! Request ids: every request gets one (the client's `X-Request-Id` when it
//! is a sane token, else a fresh random one). It names the request's tracing
//! span, so every log line of the request carries it; it comes back in the
//! `X-Request-Id` response header and in every GraphQL error's extensions, so
//! a user's error report leads straight to the server's log lines. The one
//! line logged per request names, for GraphQL, the root fields it called and
//! its error codes.

use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// The current request's id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What a GraphQL request ran, for its log line: the `/graphql` endpoint puts
/// it in the response's extensions, as only it parsed the document.
#[derive(Debug, Clone)]
pub struct GraphqlSummary {
    /// The root fields called, comma-separated (`none`: the request never ran).
    pub operation: String,
    /// The distinct `extensions.code`s of its errors, comma-separated; empty
    /// when it had none.
    pub error_codes: String,
}

fn from_client(req: &Request) -> Option<String> {
    let value = req.headers().get(HEADER)?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    sane.then(|| value.to_owned())
}

fn fresh() -> String {
    let mut bytes = [0u8; 8];
    // Not a secret: an id to correlate logs. A failing RNG still gets an id.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wraps every route: assigns the id, logs one line per request.
pub async fn around<E: Endpoint>(endpoint: E, mut req: Request) -> poem::Result<Response> {
    let id = from_client(&req).unwrap_or_else(fresh);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = Instant::now();
    async move {
        let mut resp = match endpoint.call(req).await {
            Ok(output) => output.into_response(),
            Err(err) => err.into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(HEADER, value);
        }
        let graphql = resp.extensions().get::<GraphqlSummary>();
        tracing::info!(
            %method,
            path,
            status = resp.status().as_u16(),
            operation = graphql.map(|g| g.operation.as_str()),
            error_codes = graphql
                .map(|g| g.error_codes.as_str())
                .filter(|codes| !codes.is_empty()),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        Ok(resp)
    }
    .instrument(span)
    .await
}
