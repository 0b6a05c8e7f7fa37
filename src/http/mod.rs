//! The HTTP server: routes, the hardened GraphQL endpoint, the playground,
//! the admin console, health checks, and graceful shutdown.

pub(crate) mod client_address;
mod console;
mod documents;
mod embedded;
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

/// All of memberdesk's HTTP routes (with `/metrics`: the caller has no
/// separate metrics listener).
pub fn app(pool: PgPool, settings: Settings) -> impl poem::Endpoint {
    routes(
        pool,
        settings,
        Arc::new(metrics::Metrics::default()),
        MetricsRoute::Here,
    )
}

/// Whether the main listener serves `/metrics`, or a separate one does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MetricsRoute {
    Here,
    Elsewhere,
}

fn routes(
    pool: PgPool,
    settings: Settings,
    metrics: Arc<metrics::Metrics>,
    metrics_route: MetricsRoute,
) -> impl poem::Endpoint {
    let body_timeout = settings.connections.body_timeout;
    let playground = settings.playground;
    let settings = Arc::new(settings);
    let schema = build_schema(pool.clone(), settings.clone());
    let scim = crate::scim::ScimEndpoint {
        pool: pool.clone(),
        settings: settings.clone(),
    };
    let graphql = GraphqlEndpoint {
        schema,
        pool: pool.clone(),
        settings,
        metrics: metrics.clone(),
        documents: Default::default(),
    };
    let mut route = Route::new()
        .at("/graphql", graphql)
        .nest(crate::scim::PREFIX, scim)
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz));
    // Unrouted paths are 404: with the playground off, `/` and its assets are
    // simply not there.
    if playground.is_on() {
        route = route
            .at("/", get(playground::index))
            .at("/playground/assets/:name", get(playground::asset));
    }
    // The console is a client of `/graphql` like any other, so the
    // playground switch does not hide it.
    route = route
        .at("/admin", get(console::index))
        .at("/admin/", get(console::index))
        .at("/admin/:name", get(console::asset));
    if metrics_route == MetricsRoute::Here {
        route = route.at("/metrics", get(prometheus));
    }
    route
        .data(pool)
        .data(metrics.clone())
        .with(CatchPanic::new().with_handler(PanicAsInternal))
        .around(move |endpoint, req| {
            slow_clients::body_deadline(endpoint, req, body_timeout, metrics.clone())
        })
        .around(request_id::around)
        .around(security_headers::around)
}

/// The internal listener's routes: `/metrics` only.
fn metrics_routes(pool: PgPool, metrics: Arc<metrics::Metrics>) -> impl poem::Endpoint {
    Route::new()
        .at("/metrics", get(prometheus))
        .data(pool)
        .data(metrics)
        .around(security_headers::around)
}

/// A bound server, not yet serving: its address is known (port 0 picks a free one).
pub struct BoundServer {
    acceptor: TcpAcceptor,
    pub addr: std::net::SocketAddr,
    /// The separate `/metrics` listener, if any (`MEMBERDESK_METRICS_BIND`).
    metrics: Option<(TcpAcceptor, std::net::SocketAddr)>,
}

async fn listen(addr: &str) -> std::io::Result<(TcpAcceptor, std::net::SocketAddr)> {
    let acceptor = TcpListener::bind(addr.to_owned()).into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| std::io::Error::other("the listener has no socket address"))?;
    Ok((acceptor, addr))
}

pub async fn bind(addr: &str) -> std::io::Result<BoundServer> {
    let (acceptor, addr) = listen(addr).await?;
    Ok(BoundServer {
        acceptor,
        addr,
        metrics: None,
    })
}

impl BoundServer {
    /// Serves `/metrics` on `addr` (an internal address) instead of on the
    /// main listener, so the monitoring endpoint need not face the public.
    pub async fn bind_metrics(mut self, addr: &str) -> std::io::Result<BoundServer> {
        self.metrics = Some(listen(addr).await?);
        Ok(self)
    }

    /// The separate `/metrics` listener's address, if there is one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

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
        let (metrics_route, metrics_server) = match self.metrics {
            None => (MetricsRoute::Here, None),
            Some((internal, _)) => {
                let endpoint = metrics_routes(pool.clone(), metrics.clone());
                let server = Server::new_with_acceptor(internal).idle_timeout(idle);
                // Scrapes hold no state worth finishing: it stops with the main server.
                let task = tokio::spawn(async move { server.run(endpoint).await });
                (MetricsRoute::Elsewhere, Some(task))
            }
        };
        // Lifecycle webhooks go out while the server runs, from every instance.
        let webhooks = crate::webhooks::worker::spawn(pool.clone(), settings.webhooks);
        let served = Server::new_with_acceptor(acceptor)
            .idle_timeout(idle)
            .run_with_graceful_shutdown(
                routes(pool, settings, metrics, metrics_route),
                shutdown,
                Some(Duration::from_secs(30)),
            )
            .await;
        if let Some(task) = metrics_server {
            task.abort();
        }
        // A delivery cut off here is sent again once its lease runs out.
        webhooks.abort();
        served
    }
}
