//! The GraphQL API: schema, types, guards and loaders. Thin by design: the
//! rules are in [`crate::domain`], the SQL in [`crate::store`].

pub mod context;
pub mod guards;
pub mod loaders;
pub mod mutation;
pub mod pagination;
pub mod query;
pub mod types;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};
use sqlx::PgPool;

use crate::config::Settings;

pub type MemberdeskSchema = Schema<query::QueryRoot, mutation::MutationRoot, EmptySubscription>;

pub fn build_schema(pool: PgPool, settings: Arc<Settings>) -> MemberdeskSchema {
    let builder = Schema::build(query::QueryRoot, mutation::MutationRoot, EmptySubscription)
        .limit_depth(settings.max_query_depth)
        .limit_complexity(settings.max_query_complexity)
        .limit_recursive_depth(32)
        .limit_directives(16);
    builder.data(pool).data(settings).finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(query::QueryRoot, mutation::MutationRoot, EmptySubscription)
        .finish()
        .sdl()
}
