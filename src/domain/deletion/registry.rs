//! The one registry of every reference between records, and what each
//! deletion policy does to the referencing rows.
//!
//! [`EDGES`] lists every foreign key of the schema (a test compares it with
//! PostgreSQL's catalog, which declares every key `ON DELETE RESTRICT`), plus
//! the references PostgreSQL cannot check (ids kept in arrays). [`steps`]
//! walks it from a deleted kind of record to any depth: the rows a deletion
//! deletes are themselves deleted records, so their own references are
//! walked too. The preview, the confirmation and the deletion all read the
//! same steps, so what an admin is shown is exactly what happens.

use super::{DeletePolicy, Effect, TargetKind};
use crate::store::deletion::{Hop, Link};
use Effect::{Delete, Detach, Invalid, Protect};

/// One reference: the rows of `table` whose `column` refers to a row of
/// `parent`, and their fate under each policy when that row is deleted.
#[derive(Debug)]
pub struct Edge {
    /// The name plans and errors give these rows, seen from `parent`.
    pub name: &'static str,
    pub table: &'static str,
    pub column: &'static str,
    pub link: Link,
    /// The referenced table (its `id` column).
    pub parent: &'static str,
    /// Only the rows matching this SQL condition count (array links).
    pub condition: Option<&'static str>,
    pub protect: Effect,
    pub set_null: Effect,
    pub cascade: Effect,
    /// This edge is a denormalized shortcut: the rows it reaches are exactly
    /// those reached through `parent`'s relation of this name (a vote's
    /// question is its choice's question). Walking from `parent`, they are
    /// reached once, through this edge, and the longer path is not walked.
    pub shortcut_of: Option<&'static str>,
}

impl Edge {
    pub fn effect(&self, policy: DeletePolicy) -> Effect {
        match policy {
            DeletePolicy::Protect => self.protect,
            DeletePolicy::SetNull => self.set_null,
            DeletePolicy::Cascade => self.cascade,
        }
    }

    fn hop(&self) -> Hop {
        Hop {
            table: self.table,
            column: self.column,
            link: self.link,
            condition: self.condition,
        }
    }
}

/// A foreign key whose rows meet the same fate under every policy.
const fn always(
    name: &'static str,
    (table, column): (&'static str, &'static str),
    parent: &'static str,
    effect: Effect,
) -> Edge {
    per_policy(name, (table, column), parent, [effect, effect, effect])
}

/// A foreign key and its effect under PROTECT, SET_NULL and CASCADE.
const fn per_policy(
    name: &'static str,
    (table, column): (&'static str, &'static str),
    parent: &'static str,
    [protect, set_null, cascade]: [Effect; 3],
) -> Edge {
    Edge {
        name,
        table,
        column,
        link: Link::Key,
        parent,
        condition: None,
        protect,
        set_null,
        cascade,
        shortcut_of: None,
    }
}

impl Edge {
    /// The same reference kept as ids in an array column, counting only the
    /// rows that match `condition`.
    const fn in_array(self, condition: &'static str) -> Edge {
        Edge {
            link: Link::Array,
            condition: Some(condition),
            ..self
        }
    }

    /// The same reference, marked as the shortcut of `parent`'s relation
    /// named `relation` (see the field `shortcut_of`).
    const fn shortcutting(self, relation: &'static str) -> Edge {
        Edge {
            shortcut_of: Some(relation),
            ..self
        }
    }
}

/// Every reference between records. Order matters for execution: a
/// record's references are handled in this order (a shortcut before the
/// relation it shortcuts), each after the rows referencing it in turn.
// One edge a line, its columns aligned: the table is read down its columns.
#[rustfmt::skip]
pub const EDGES: &[Edge] = &[
    // A user's contributions: PROTECT keeps the user while any exist.
    per_policy("votes",             ("votes", "user_id"),                   "users",              [Protect, Detach, Delete]),
    // Other people's votes hang on a question, so it is never deleted with its author.
    per_policy("questions",         ("questions", "created_by"),            "users",              [Protect, Detach, Detach]),
    always("sessions",              ("sessions", "user_id"),                "users",              Delete),
    always("groupMemberships",      ("user_groups", "user_id"),             "users",              Delete),
    always("userPermissions",       ("user_permissions", "user_id"),        "users",              Delete),
    always("deactivations",         ("deactivations", "user_id"),           "users",              Delete),
    // The audit trail outlives the user; entries keep the username snapshot and the id.
    always("auditEntries",          ("audit_entries", "actor_id"),          "users",              Detach),
    always("auditEntriesAsTarget",  ("audit_entries", "target_user_id"),    "users",              Detach),
    // A group: PROTECT keeps it while it has members.
    per_policy("members",           ("user_groups", "group_id"),            "groups",             [Protect, Delete, Delete]),
    always("groupPermissions",      ("group_permissions", "group_id"),      "groups",             Delete),
    // Open deactivations remember the group; restoreAccess reports it missing later.
    always("rememberedMemberships", ("deactivations", "group_ids"),         "groups",             Detach).in_array("ended_at IS NULL"),
    // A question: PROTECT keeps it while it has votes. Choices and votes
    // cannot exist without it, so SET_NULL means nothing here.
    per_policy("votes",             ("votes", "question_id"),               "questions",          [Protect, Invalid, Delete]).shortcutting("choices"),
    per_policy("choices",           ("choices", "question_id"),             "questions",          [Delete, Invalid, Delete]),
    per_policy("votes",             ("votes", "choice_id"),                 "choices",            [Protect, Invalid, Delete]),
    // Webhook deliveries are not records a deletion plan reaches:
    // `deleteWebhook` removes an endpoint's deliveries and their attempts
    // itself (store::webhooks::delete; deliveries name their endpoint
    // without a key, see migration 0009).
    always("attempts",              ("webhook_attempts", "delivery_id"),    "webhook_deliveries", Delete),
    // The permission catalog is seeded and never deleted.
    always("userGrants",            ("user_permissions", "permission_id"),  "permissions",        Protect),
    always("groupGrants",           ("group_permissions", "permission_id"), "permissions",        Protect),
];

/// The table of a kind of record.
pub fn table(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::User => "users",
        TargetKind::Group => "groups",
        TargetKind::Question => "questions",
        TargetKind::Choice => "choices",
    }
}

/// What a deletion does to one relation's rows, and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The relation's name in plans.
    pub name: &'static str,
    pub effect: Effect,
    /// From the deleted records to the rows (the first hop refers to them).
    pub hops: Vec<Hop>,
}

/// Every relation a deletion of `kind` records under `policy` reaches, in
/// the order to carry them out: the rows referencing a deleted row come
/// before it. Rows that are deleted are walked in turn.
pub fn steps(kind: TargetKind, policy: DeletePolicy) -> Vec<Step> {
    let mut out = Vec::new();
    walk(table(kind), policy, &[], &[], &mut out);
    out
}

/// The steps for the rows referencing `table`'s deleted rows (reached
/// through `path`), except those of the tables in `skip`.
fn walk(
    table: &'static str,
    policy: DeletePolicy,
    path: &[Hop],
    skip: &[&'static str],
    out: &mut Vec<Step>,
) {
    let edges = EDGES.iter().filter(|e| e.parent == table);
    for edge in edges.filter(|e| !skip.contains(&e.table)) {
        let mut hops = path.to_vec();
        hops.push(edge.hop());
        let effect = edge.effect(policy);
        if effect == Delete {
            walk(
                edge.table,
                policy,
                &hops,
                &shortcut_tables(table, edge),
                out,
            );
        }
        out.push(Step {
            name: edge.name,
            effect,
            hops,
        });
    }
}

/// The tables `parent`'s edges reach directly that `via` would reach again.
fn shortcut_tables(parent: &str, via: &Edge) -> Vec<&'static str> {
    EDGES
        .iter()
        .filter(|e| e.parent == parent && e.shortcut_of == Some(via.name))
        .map(|e| e.table)
        .collect()
}

/// The most relations a plan can list.
pub const MOST_RELATIONS: usize = EDGES.len();

#[cfg(test)]
mod tests {
    use super::*;

    const POLICIES: [DeletePolicy; 3] = [
        DeletePolicy::Protect,
        DeletePolicy::SetNull,
        DeletePolicy::Cascade,
    ];
    const KINDS: [TargetKind; 4] = [
        TargetKind::User,
        TargetKind::Group,
        TargetKind::Question,
        TargetKind::Choice,
    ];

    fn names(kind: TargetKind, policy: DeletePolicy) -> Vec<(&'static str, Effect)> {
        steps(kind, policy)
            .into_iter()
            .map(|s| (s.name, s.effect))
            .collect()
    }

    #[test]
    fn contributions_follow_the_contract() {
        let user = names(TargetKind::User, DeletePolicy::Cascade);
        assert_eq!(user[0], ("votes", Delete));
        assert_eq!(
            user[1],
            ("questions", Detach),
            "questions are never deleted"
        );
        assert_eq!(
            names(TargetKind::User, DeletePolicy::SetNull)[0],
            ("votes", Detach)
        );
        // Only contributions may protect a user.
        let protecting: Vec<_> = names(TargetKind::User, DeletePolicy::Protect)
            .into_iter()
            .filter(|(_, e)| *e == Protect)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(protecting, ["votes", "questions"]);
    }

    #[test]
    fn a_question_reaches_its_votes_once_before_its_choices() {
        for policy in [DeletePolicy::Protect, DeletePolicy::Cascade] {
            let question = steps(TargetKind::Question, policy);
            let shape: Vec<_> = question.iter().map(|s| (s.name, s.hops.len())).collect();
            assert_eq!(shape, [("votes", 1), ("choices", 1)], "{policy:?}");
            assert_eq!(question[0].hops[0].column, "question_id");
        }
        assert_eq!(
            names(TargetKind::Question, DeletePolicy::Protect),
            [("votes", Protect), ("choices", Delete)]
        );
        assert_eq!(
            names(TargetKind::Choice, DeletePolicy::Cascade),
            [("votes", Delete)]
        );
    }

    #[test]
    fn set_null_means_nothing_for_polls_and_deletes_a_groups_links() {
        for kind in [TargetKind::Question, TargetKind::Choice] {
            assert!(
                steps(kind, DeletePolicy::SetNull)
                    .iter()
                    .any(|s| s.effect == Invalid),
                "{kind:?}"
            );
        }
        assert_eq!(
            names(TargetKind::Group, DeletePolicy::SetNull),
            [
                ("members", Delete),
                ("groupPermissions", Delete),
                ("rememberedMemberships", Detach)
            ]
        );
        assert_eq!(
            names(TargetKind::Group, DeletePolicy::Protect)[0],
            ("members", Protect)
        );
    }

    #[test]
    fn every_plan_names_each_relation_once_and_deletes_children_first() {
        for kind in KINDS {
            for policy in POLICIES {
                let steps = steps(kind, policy);
                let mut names: Vec<_> = steps.iter().map(|s| s.name).collect();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), steps.len(), "{kind:?} {policy:?}");
                // The rows referencing a deleted table's rows are handled before it.
                for (i, step) in steps.iter().enumerate().filter(|(_, s)| s.effect == Delete) {
                    let deleted = step.hops.last().unwrap().table;
                    for later in &steps[i + 1..] {
                        let table = later.hops.last().unwrap().table;
                        let refers = EDGES
                            .iter()
                            .any(|e| e.parent == deleted && e.table == table);
                        assert!(
                            !refers,
                            "{kind:?} {policy:?}: {} after {}",
                            later.name, step.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn array_links_are_never_deleted_through() {
        for edge in EDGES.iter().filter(|e| e.link == Link::Array) {
            for policy in POLICIES {
                assert_eq!(edge.effect(policy), Detach, "{}", edge.name);
            }
        }
    }
}
