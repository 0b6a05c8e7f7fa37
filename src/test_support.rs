//! Helpers for the unit tests of rules that judge strings.
//!
//! A rule is best tested with a table of values it must accept and one it
//! must refuse; these helpers run a table and name the value judged wrongly,
//! so each test reads as its tables.

use std::fmt::Debug;

/// Asserts that `rule` accepts every one of `values`, naming the first it
/// refuses and why.
pub fn assert_accepts<T, E: Debug>(rule: impl Fn(&str) -> Result<T, E>, values: &[&str]) {
    for value in values {
        if let Err(err) = rule(value) {
            panic!("{value:?} was refused: {err:?}");
        }
    }
}

/// Asserts that `rule` refuses every one of `values`, naming the first it
/// accepts; returns each value with its refusal, for the test to check why.
pub fn assert_refuses<'a, T: Debug, E>(
    rule: impl Fn(&str) -> Result<T, E>,
    values: &[&'a str],
) -> Vec<(&'a str, E)> {
    values
        .iter()
        .map(|value| match rule(value) {
            Ok(accepted) => panic!("{value:?} was accepted: {accepted:?}"),
            Err(err) => (*value, err),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(value: &str) -> Result<u32, String> {
        value
            .parse()
            .map_err(|_| format!("{value} is not a number"))
    }

    #[test]
    fn a_table_passes_when_every_value_is_judged_right() {
        assert_accepts(digits, &["1", "42"]);
        let refused = assert_refuses(digits, &["x", ""]);
        assert_eq!(refused[0], ("x", "x is not a number".to_owned()));
        assert_eq!(refused.len(), 2);
    }

    #[test]
    #[should_panic(expected = "\"x\" was refused")]
    fn a_refused_value_that_should_pass_is_named() {
        assert_accepts(digits, &["1", "x"]);
    }

    #[test]
    #[should_panic(expected = "\"7\" was accepted: 7")]
    fn an_accepted_value_that_should_fail_is_named() {
        assert_refuses(digits, &["x", "7"]);
    }
}
