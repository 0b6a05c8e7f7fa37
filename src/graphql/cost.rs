//! What a field costs in the complexity budget (`MEMBERDESK_MAX_QUERY_COMPLEXITY`).
//!
//! async-graphql counts every field as 1 plus its children. A list field
//! returns many children, so it costs its length times the cost of one
//! child: a page its size (`first`, default 20, at most 100), an unpaged list
//! its maximum length. Each list field says which next to its declaration
//! (`#[graphql(complexity = ...)]`), through the helper named after the list
//! ([`groups`], [`bulk`], …) or [`page`]. Maximum lengths, longest first:
//!
//! - [`QUESTIONS`], [`BULK`] and [`GROUPS`] are estimates, not bounds: the
//!   lists of every question, of a bulk deactivation's users and of groups are
//!   not paged and memberdesk caps none of them;
//! - [`PERMISSIONS`] bounds every permission list (the catalog, seeded by
//!   migration: 14 entries; `tests/api/limits.rs` fails if it outgrows this);
//! - [`CHOICES`]: a question has at most this many choices (`domain::polls`);
//! - [`RELATIONS`]: a deletion plan names each relation once.
//!
//! Every cost saturates at [`CEILING`], so no query can overflow the count
//! back into something small.

use super::pagination::{DEFAULT_PAGE, MAX_PAGE};

/// Questions counted for the unpaged `questions` list (an estimate).
pub const QUESTIONS: usize = 100;
/// Users counted for a bulk deactivation's `deactivated` and `skipped` lists (an estimate).
pub const BULK: usize = 100;
/// Groups counted for a group list (an estimate).
pub const GROUPS: usize = 20;
/// The most permissions there are.
pub const PERMISSIONS: usize = 16;
/// The most choices a question has.
pub const CHOICES: usize = crate::domain::polls::MAX_CHOICES;
/// The most relations a deletion plan lists.
pub const RELATIONS: usize = crate::domain::deletion::registry::MOST_RELATIONS;

/// No field costs more; far above any budget, far below overflow even when
/// summed over every field a document may select.
pub const CEILING: usize = u32::MAX as usize;

/// A list of at most `len` items: 1 for the field, plus `len` times one
/// item's cost (at least 1 each, so a list of scalars counts its items).
pub fn list(len: usize, child_complexity: usize) -> usize {
    len.saturating_mul(child_complexity.max(1))
        .saturating_add(1)
        .min(CEILING)
}

/// The unpaged `questions` list (see [`QUESTIONS`]).
pub fn questions(child_complexity: usize) -> usize {
    list(QUESTIONS, child_complexity)
}

/// A bulk operation's list of users or records (see [`BULK`]).
pub fn bulk(child_complexity: usize) -> usize {
    list(BULK, child_complexity)
}

/// A list of groups (see [`GROUPS`]).
pub fn groups(child_complexity: usize) -> usize {
    list(GROUPS, child_complexity)
}

/// A list of permissions (see [`PERMISSIONS`]).
pub fn permissions(child_complexity: usize) -> usize {
    list(PERMISSIONS, child_complexity)
}

/// A question's choices (see [`CHOICES`]).
pub fn choices(child_complexity: usize) -> usize {
    list(CHOICES, child_complexity)
}

/// A deletion plan's relations (see [`RELATIONS`]).
pub fn relations(child_complexity: usize) -> usize {
    list(RELATIONS, child_complexity)
}

/// A page of `first` items (default 20; out-of-range values are refused when
/// the field runs, and count as the nearest valid size here).
pub fn page(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.unwrap_or(DEFAULT_PAGE).clamp(0, MAX_PAGE);
    list(size as usize, child_complexity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_multiply_and_saturate() {
        assert_eq!(list(20, 3), 61);
        assert_eq!(list(16, 0), 17);
        assert_eq!(page(None, 2), 41);
        assert_eq!(page(Some(-5), 2), 1);
        assert_eq!(page(Some(i32::MAX), 2), 201);
        assert_eq!(list(usize::MAX, usize::MAX), CEILING);
    }
}
