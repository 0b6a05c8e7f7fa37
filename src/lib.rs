//! memberdesk: a GraphQL backend for administering the members and staff of
//! an application, built so that removing a person never loses data by
//! accident.
//!
//! Layers, from the outside in:
//! - [`http`]: the poem server (transport rules, playground, health checks);
//! - [`scim`]: SCIM 2.0 provisioning under `/scim/v2`, beside GraphQL;
//! - [`graphql`]: the async-graphql schema, with guards declared on each field
//!   and DataLoaders for nested fields;
//! - [`domain`]: the business rules, one transaction and one audit entry per
//!   change, knowing nothing of HTTP or of how GraphQL runs (a few value
//!   types derive the API's enum and input shapes, see [`domain`]);
//! - [`store`]: all the SQL, one module per table or aggregate.
//!
//! Beside them, [`webhooks`] sends the lifecycle events the audit log
//! queues (an outbox, migration 0009) to the endpoints superusers register.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod logging;
pub mod scim;
pub mod seed;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod webhooks;
