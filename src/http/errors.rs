//! Every error a client sees carries an `extensions.code`. Resolver errors get
//! theirs from [`crate::error::AppError`]; errors that async-graphql raises
//! itself before any resolver runs (a syntax error, an unknown field, a
//! variable of the wrong type, the depth or complexity limit) are about the
//! request's `query`: they become `INVALID_INPUT` naming it. Every error also
//! carries the request's id (`extensions.requestId`), as in the server log.
//! async-graphql's own words for a scalar it could not parse say what was
//! wrong but not what to write: those of ours gain the expected form.

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
            explain_scalar(&mut error.message);
            let ext = error
                .extensions
                .get_or_insert_with(ErrorExtensionValues::default);
            ext.set("code", Value::from("INVALID_INPUT"));
            ext.set("field", Value::from("query"));
        }
    }
    response
}

/// The form each of our scalars is written in, for a client that got it wrong.
const SCALAR_FORMS: &[(&str, &str)] = &[(
    "DateTime",
    "a DateTime is RFC 3339 with a time and an offset, e.g. 2025-01-01T00:00:00Z",
)];

/// `Failed to parse "DateTime": premature end of input (…)` says what failed;
/// the client also needs to hear what to send.
fn explain_scalar(message: &mut String) {
    for (scalar, form) in SCALAR_FORMS {
        let prefix = format!("Failed to parse \"{scalar}\"");
        if let Some(rest) = message.strip_prefix(&prefix) {
            let why = rest.trim_start_matches(':').trim();
            *message = format!("{form}; this one is not ({why})");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_instant_names_the_expected_form() {
        let mut message = "Failed to parse \"DateTime\": premature end of input (occurred while parsing \"UserFilter\")".to_owned();
        explain_scalar(&mut message);
        assert_eq!(
            message,
            "a DateTime is RFC 3339 with a time and an offset, e.g. 2025-01-01T00:00:00Z; this one is not (premature end of input (occurred while parsing \"UserFilter\"))"
        );
        let mut other = "Unknown field \"x\"".to_owned();
        explain_scalar(&mut other);
        assert_eq!(other, "Unknown field \"x\"");
    }
}
