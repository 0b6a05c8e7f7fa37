//! Lifecycle webhooks out: what happens after a change has committed.
//!
//! The outbox is filled by PostgreSQL itself, in the transaction of each
//! audited change (migration 0009), so this module only sends: a
//! [`worker`] in every instance claims due deliveries, signs them as the
//! Standard Webhooks spec says ([`signature`]), posts them through a client
//! that refuses addresses an endpoint must not reach ([`address`]), and
//! records each attempt. The API never waits on an endpoint.

pub mod address;
pub mod signature;
pub mod worker;
