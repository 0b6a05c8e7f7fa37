//! The HTTP server: routes, the hardened GraphQL endpoint, the playground,
//! health checks, and graceful shutdown.

mod client_address;
mod errors;
mod graphql;
pub mod metrics;
mod playground;
pub mod request_id;
mod security_headers;
mod slow_clients;

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::CatchPanic;
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Response, Route, Server, get, handler};
use sqlx::PgPool;

use crate::config::Settings;
use crate::graphql::build_schema;

pub use graphql::GraphqlEndpoint;

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(Data(pool): Data<&PgPool>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => "ready".into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "PostgreSQL is not answering",
        )
            .into_response(),
    }
}

#[handler]
fn prometheus(Data(metrics): Data<&Arc<metrics::Metrics>>, Data(pool): Data<&PgPool>) -> Response {
    Response::builder()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render(pool))
}

#[derive(Clone)]
struct PanicAsInternal;

impl poem::middleware::PanicHandler for PanicAsInternal {
    type Response = Response;
    fn get_response(&self, _err: Box<dyn std::any::Any + Send + 'static>) -> Response {
        tracing::error!("a request handler panicked");
        let body = r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#;
        Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .content_type("application/json")
            .body(body)
    }
}

/// All of memberdesk's HTTP routes.
pub fn app(pool: PgPool, settings: Settings) -> impl poem::Endpoint {
    routes(pool, settings, Arc::new(metrics::Metrics::default()))
}

fn routes(pool: PgPool, settings: Settings, metrics: Arc<metrics::Metrics>) -> impl poem::Endpoint {
    let body_timeout = settings.connections.body_timeout;
    let settings = Arc::new(settings);
    let schema = build_schema(pool.clone(), settings.clone());
    let graphql = GraphqlEndpoint {
        schema,
        pool: pool.clone(),
        settings,
        metrics: metrics.clone(),
    };
    Route::new()
        .at("/", get(playground::index))
        .at("/graphql", graphql)
        .at("/playground/assets/:name", get(playground::asset))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(prometheus))
        .data(pool)
        .data(metrics.clone())
        .with(CatchPanic::new().with_handler(PanicAsInternal))
        .around(move |endpoint, req| {
            slow_clients::body_deadline(endpoint, req, body_timeout, metrics.clone())
        })
        .around(request_id::around)
        .around(security_headers::around)
}

/// A bound server, not yet serving: its address is known (port 0 picks a free one).
pub struct BoundServer {
    acceptor: TcpAcceptor,
    pub addr: std::net::SocketAddr,
}

pub async fn bind(addr: &str) -> std::io::Result<BoundServer> {
    let acceptor = TcpListener::bind(addr.to_owned()).into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| std::io::Error::other("the listener has no socket address"))?;
    Ok(BoundServer { acceptor, addr })
}

impl BoundServer {
    /// Serves until `shutdown` completes, then lets in-flight requests finish
    /// (for at most 30 s) and returns. Slow and stalled clients are cut off
    /// and connections capped as `settings.connections` says.
    pub async fn serve(
        self,
        pool: PgPool,
        settings: Settings,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let metrics = Arc::new(metrics::Metrics::default());
        let acceptor = slow_clients::GuardedAcceptor::new(
            self.acceptor,
            settings.connections,
            metrics.clone(),
        );
        // A backstop for what the acceptor does not watch (HTTP/2 past its
        // preface): a connection with no traffic at all for this long ends.
        let idle = settings.connections.keep_alive_timeout;
        Server::new_with_acceptor(acceptor)
            .idle_timeout(idle)
            .run_with_graceful_shutdown(
                routes(pool, settings, metrics),
                shutdown,
                Some(Duration::from_secs(30)),
            )
            .await
    }
}
