//! List results that a resolver hands out without copying them first, and a
//! list of strings resolved in one step.
//!
//! A page of users read its facts ahead (`types::user::read_ahead`); each
//! `User` field then copied its list out of the object (a resolver only has
//! `&self`) before async-graphql copied it again into the response value.
//! [`Listed`] lends the object's own list instead. [`Texts`] also skips
//! async-graphql's generic list resolution, which gives each item of a list
//! its own future and path entry: for a list of strings (an item can neither
//! fail nor select anything) that work ends in the same value, built directly.
//! Counted with callgrind on the users page of 50 users, the copies and the
//! per-item futures were several percent of the server's instructions.
//!
//! Both are the same GraphQL type as a `Vec` of their items (the schema does
//! not change) and resolve to the same value.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::resolver_utils::resolve_list;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value, registry};

/// A list borrowed from the object being resolved, or made for the response.
pub enum Listed<'a, T> {
    Borrowed(&'a [T]),
    Owned(Vec<T>),
}

impl<T> Listed<'_, T> {
    fn items(&self) -> &[T] {
        match self {
            Listed::Borrowed(items) => items,
            Listed::Owned(items) => items,
        }
    }
}

/// The type functions of an [`OutputType`] that is the GraphQL type of
/// `$list` (a `Vec`), so that the schema cannot tell the two apart; only
/// `resolve` is a list's own.
macro_rules! type_of {
    ($list:ty) => {
        fn type_name() -> Cow<'static, str> {
            <$list as OutputType>::type_name()
        }

        fn qualified_type_name() -> String {
            <$list as OutputType>::qualified_type_name()
        }

        fn create_type_info(registry: &mut registry::Registry) -> String {
            <$list as OutputType>::create_type_info(registry)
        }
    };
}

impl<T: OutputType> OutputType for Listed<'_, T> {
    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let items = self.items();
        resolve_list(ctx, field, items, Some(items.len())).await
    }

    type_of!(Vec<T>);
}

/// A list of strings (`[String!]!`), borrowed or made for the response,
/// resolved into its value in one step.
pub struct Texts<'a>(pub Listed<'a, String>);

impl OutputType for Texts<'_> {
    async fn resolve(
        &self,
        _ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let items = self.0.items().iter().cloned().map(Value::String);
        Ok(Value::List(items.collect()))
    }

    type_of!(Vec<String>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_the_types_of_the_vecs_they_stand_for() {
        assert_eq!(
            <Texts as OutputType>::qualified_type_name(),
            <Vec<String> as OutputType>::qualified_type_name()
        );
        assert_eq!(
            <Option<Texts> as OutputType>::qualified_type_name(),
            <Option<Vec<String>> as OutputType>::qualified_type_name()
        );
        assert_eq!(
            <Listed<i64> as OutputType>::qualified_type_name(),
            <Vec<i64> as OutputType>::qualified_type_name()
        );
    }
}
