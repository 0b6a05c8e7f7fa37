//! The GraphQL API: schema, types, guards and loaders. Thin by design: the
//! rules are in [`crate::domain`], the SQL in [`crate::store`].

pub mod context;
pub mod cost;
pub mod decode;
pub mod deletion;
pub mod erasure;
pub mod guards;
pub mod lifecycle;
pub mod limits;
pub mod lists;
pub mod loader_tasks;
pub mod loaders;
pub mod mutation;
pub mod pagination;
pub mod query;
pub mod types;
pub mod webhooks;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};
use sqlx::PgPool;

use crate::config::Settings;

/// The read side: the base queries, the lifecycle reads and the deletion
/// previews, under one root.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "QueryRoot")]
pub struct Query(
    query::QueryRoot,
    lifecycle::LifecycleQuery,
    deletion::DeletionQuery,
    webhooks::WebhookQuery,
);

/// The write side: the admin writes, the lifecycle operations, the
/// deletions of records and the erasure requests.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "MutationRoot")]
pub struct Mutation(
    mutation::MutationRoot,
    lifecycle::LifecycleMutation,
    deletion::DeletionMutation,
    deletion::BulkDeletionMutation,
    deletion::ArchiveMutation,
    erasure::ErasureMutation,
    webhooks::WebhookMutation,
);

pub type MemberdeskSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build_schema(pool: PgPool, settings: Arc<Settings>) -> MemberdeskSchema {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(settings.max_query_depth)
        .limit_complexity(settings.max_query_complexity)
        .limit_recursive_depth(32)
        .limit_directives(16);
    // Off in production if wanted: the schema is public in `schema.graphql`
    // anyway, but some deployments must not answer `__schema` at all.
    // `sdl()` builds its own schema, so `export-schema` is unaffected.
    let builder = if settings.introspection.is_on() {
        builder
    } else {
        builder.disable_introspection()
    };
    builder.data(pool).data(settings).finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}
