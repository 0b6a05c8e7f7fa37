//! Every error a client sees carries an `extensions.code`. Resolver errors get
//! theirs from [`crate::error::AppError`]; errors that async-graphql raises
//! itself before any resolver runs (a syntax error, an unknown field, a
//! variable of the wrong type, the depth or complexity limit) are about the
//! request's `query`: they become `INVALID_INPUT` naming it. Every error also
//! carries the request's id (`extensions.requestId`), as in the server log.

use async_graphql::{ErrorExtensionValues, Response, Value};

pub fn with_codes(mut response: Response, request_id: Option<&str>) -> Response {
    for error in &mut response.errors {
        if let Some(id) = request_id {
            error
                .extensions
                .get_or_insert_with(ErrorExtensionValues::default)
                .set("requestId", Value::from(id));
        }
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            let ext = error
                .extensions
                .get_or_insert_with(ErrorExtensionValues::default);
            ext.set("code", Value::from("INVALID_INPUT"));
            ext.set("field", Value::from("query"));
        }
    }
    response
}
