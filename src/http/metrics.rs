//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format:
//! GraphQL requests and their latency per operation, errors per contract
//! code, lifecycle operations that went through, and the database pool.
//!
//! Operations are labelled by the schema's root field they call (`users`,
//! `deactivateUser`), `multiple` or `none`, never by client-chosen names or
//! combinations, so the number of series is fixed by the schema.

use std::collections::HashSet;
use std::time::Duration;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
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

// Every operation that removes something, or brings it back: what an
// operator watches for a spike (a script deleting too eagerly).
const LIFECYCLE: &[&str] = &[
    "deactivateUser",
    "deactivateUsers",
    "reactivateUser",
    "deleteUser",
    "deleteUsers",
    "anonymizeUser",
    "requestErasure",
    "cancelErasure",
    "deleteGroup",
    "deleteQuestion",
    "deleteChoice",
    "deleteQuestions",
    "archiveQuestion",
    "restoreQuestion",
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
    /// The root fields of the operation `doc` runs, through fragments too.
    pub fn of(doc: &ExecutableDocument, operation_name: Option<&str>) -> RootFields {
        let op = match (&doc.operations, operation_name) {
            (DocumentOperations::Single(op), _) => Some(op),
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
            (DocumentOperations::Multiple(ops), None) => {
                ops.values().next().filter(|_| ops.len() == 1)
            }
        };
        let mut fields = Vec::new();
        if let Some(op) = op {
            collect(
                doc,
                &op.node.selection_set.node,
                &mut HashSet::new(),
                &mut fields,
            );
        }
        RootFields(fields)
    }

    pub fn none() -> RootFields {
        RootFields(Vec::new())
    }

    /// The distinct root fields called, comma-separated in document order
    /// (for the request's log line; `none` for a request that never ran).
    pub fn names(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for (_, name) in &self.0 {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        if names.is_empty() {
            NO_OPERATION.to_owned()
        } else {
            names.join(",")
        }
    }

    /// The operation's label, one of a set the schema fixes: the root field
    /// it calls (under any number of aliases), `multiple` for several, `none`
    /// for a request that never ran. Combinations are not labels: they would
    /// let clients grow the series without bound.
    fn label(&self) -> String {
        let mut names = self.0.iter().map(|(_, name)| name.as_str());
        match names.next() {
            None => NO_OPERATION.to_owned(),
            Some(first) if names.all(|name| name == first) => first.to_owned(),
            Some(_) => SEVERAL_OPERATIONS.to_owned(),
        }
    }
}

/// The label of a request that never ran (unparsable, invalid, refused).
const NO_OPERATION: &str = "none";
/// The label of a request calling more than one root field.
const SEVERAL_OPERATIONS: &str = "multiple";

/// The fields of `set`, with its fragments' fields in their place; a fragment
/// spread twice adds nothing the second time (nor does a cycle loop).
fn collect<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    seen: &mut HashSet<&'a str>,
    fields: &mut Vec<(String, String)>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let name = f.node.name.node.to_string();
                let key = f
                    .node
                    .alias
                    .as_ref()
                    .map_or(name.clone(), |a| a.node.to_string());
                fields.push((key, name));
            }
            Selection::InlineFragment(inline) => {
                collect(doc, &inline.node.selection_set.node, seen, fields)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if let Some(fragment) = doc.fragments.get(name)
                    && seen.insert(name)
                {
                    collect(doc, &fragment.node.selection_set.node, seen, fields);
                }
            }
        }
    }
}

/// An error's contract code (`extensions.code`), `UNKNOWN` without one.
pub fn error_code(error: &async_graphql::ServerError) -> String {
    error
        .extensions
        .as_ref()
        .and_then(|ext| ext.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => Some(code.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "UNKNOWN".to_owned())
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
            let code = error_code(error);
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
