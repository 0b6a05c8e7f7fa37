//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format:
//! GraphQL requests and their latency per operation, errors per contract
//! code, lifecycle operations that went through, and the database pool.
//!
//! Operations are labelled by the schema's root fields they call (`users`,
//! `deactivateUser`), never by client-chosen names, so a client cannot blow
//! up the number of series.

use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlx::PgPool;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: String,
}

/// Where a client stalled: in its request's headers or in its body.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StallPhase {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    state: &'static str,
}

const LIFECYCLE: &[&str] = &[
    "deactivateUser",
    "deactivateUsers",
    "reactivateUser",
    "deleteUser",
    "anonymizeUser",
];

pub struct Metrics {
    registry: Registry,
    requests: Family<Operation, Counter>,
    duration: Family<Operation, Histogram>,
    errors: Family<Code, Counter>,
    lifecycle: Family<Operation, Counter>,
    pool: Family<PoolState, Gauge>,
    stalled: Family<StallPhase, Counter>,
}

/// The root fields a request calls: `(response key, field name)`.
pub struct RootFields(Vec<(String, String)>);

impl RootFields {
    pub fn of(doc: &ExecutableDocument, operation_name: Option<&str>) -> RootFields {
        let op = match (&doc.operations, operation_name) {
            (DocumentOperations::Single(op), _) => Some(op),
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
            (DocumentOperations::Multiple(ops), None) => {
                ops.values().next().filter(|_| ops.len() == 1)
            }
        };
        let fields = op
            .map(|op| {
                op.node
                    .selection_set
                    .node
                    .items
                    .iter()
                    .filter_map(|item| match &item.node {
                        Selection::Field(f) => {
                            let name = f.node.name.node.to_string();
                            let key = f
                                .node
                                .alias
                                .as_ref()
                                .map_or(name.clone(), |a| a.node.to_string());
                            Some((key, name))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        RootFields(fields)
    }

    pub fn none() -> RootFields {
        RootFields(Vec::new())
    }

    /// The operation's label: its distinct root fields, sorted.
    fn label(&self) -> String {
        let mut names: Vec<&str> = self.0.iter().map(|(_, name)| name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        match names.len() {
            0 => "none".to_owned(),
            1..=3 => names.join(","),
            _ => format!("{},+{}", names[..3].join(","), names.len() - 3),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("memberdesk");
        let requests = Family::<Operation, Counter>::default();
        let duration = Family::<Operation, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let errors = Family::<Code, Counter>::default();
        let lifecycle = Family::<Operation, Counter>::default();
        let pool = Family::<PoolState, Gauge>::default();
        registry.register(
            "graphql_requests",
            "GraphQL requests, by the root fields they call",
            requests.clone(),
        );
        registry.register(
            "graphql_request_duration_seconds",
            "GraphQL request latency",
            duration.clone(),
        );
        registry.register(
            "graphql_errors",
            "GraphQL errors, by contract code",
            errors.clone(),
        );
        registry.register(
            "lifecycle_operations",
            "Lifecycle operations that went through",
            lifecycle.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections, by state",
            pool.clone(),
        );
        let stalled = Family::<StallPhase, Counter>::default();
        registry.register(
            "http_stalled_clients",
            "Connections closed because the client stalled, by phase (header or body)",
            stalled.clone(),
        );
        Metrics {
            stalled,
            registry,
            requests,
            duration,
            errors,
            lifecycle,
            pool,
        }
    }
}

impl Metrics {
    /// Records one executed (or refused) GraphQL request.
    pub fn observe(
        &self,
        fields: &RootFields,
        response: &async_graphql::Response,
        elapsed: Duration,
    ) {
        let operation = Operation {
            operation: fields.label(),
        };
        self.requests.get_or_create(&operation).inc();
        self.duration
            .get_or_create(&operation)
            .observe(elapsed.as_secs_f64());
        for error in &response.errors {
            let code = error
                .extensions
                .as_ref()
                .and_then(|ext| ext.get("code"))
                .and_then(|code| match code {
                    async_graphql::Value::String(code) => Some(code.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "UNKNOWN".to_owned());
            self.errors.get_or_create(&Code { code }).inc();
        }
        for (key, name) in &fields.0 {
            let failed = response.errors.iter().any(|e| {
                matches!(e.path.first(), Some(async_graphql::PathSegment::Field(f)) if f == key)
            });
            if LIFECYCLE.contains(&name.as_str())
                && !failed
                && response.data != async_graphql::Value::Null
            {
                self.lifecycle
                    .get_or_create(&Operation {
                        operation: name.clone(),
                    })
                    .inc();
            }
        }
    }

    /// Counts a connection closed because its client stalled in `phase`
    /// (`header` or `body`).
    pub fn stalled_client(&self, phase: &'static str) {
        self.stalled.get_or_create(&StallPhase { phase }).inc();
    }

    /// The exposition, with the pool's current state.
    pub fn render(&self, pool: &PgPool) -> String {
        let size = i64::from(pool.size());
        let idle = pool.num_idle() as i64;
        self.pool
            .get_or_create(&PoolState { state: "idle" })
            .set(idle);
        self.pool
            .get_or_create(&PoolState { state: "in_use" })
            .set(size - idle);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
