//! Bounds on a GraphQL document, checked before async-graphql validates it.
//!
//! async-graphql's validation, its complexity count and its executor walk
//! every fragment spread in full: a kilobyte of fragments that each spread the
//! next one twice is 2^n selections of synchronous work on a runtime worker
//! before any limit applies, and a fragment that spreads itself recurses until
//! the stack overflows. This walk visits each selection of the document once
//! and combines the fragments' tallies through the fragment graph (each
//! fragment resolved once, in dependency order), so its cost is linear in the
//! document's size, and it refuses what would blow up before anything else
//! looks at it.
//!
//! It also holds the per-request rules that need the expanded document: at
//! most one password hash (each costs an argon2 run) and a bounded number of
//! mutations.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};

use crate::config::DocumentLimits;

/// The mutations that hash a password: at most one of them per request.
pub const PASSWORD_HASHING: &[&str] = &["login", "setPassword", "createUser"];

const TYPENAME: &str = "__typename";

/// Why a document is refused; the message is for the client.
#[derive(Debug)]
pub struct Refusal(pub String);

/// What the checked document selects that async-graphql's complexity count
/// leaves out: its `__typename` selections (held to the complexity limit by
/// the endpoint).
#[derive(Debug, Clone, Copy)]
pub struct UnpricedFields(pub usize);

/// Where a selection sits in its set's tree: root fields of an operation are
/// at the top; a fragment spread at the top brings its own top fields there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Nested,
}

/// What a selection set holds once every fragment spread in it is expanded.
/// Counts saturate: a blow-up is refused, not overflowed.
#[derive(Default, Clone, Copy)]
struct Tally {
    /// Field selections, `__typename` included.
    fields: u64,
    aliases: u64,
    typenames: u64,
    /// Fields at the top level (an operation's root fields), `__typename` aside.
    top_fields: u64,
    /// Of those, the password-hashing ones.
    top_hashing: u64,
}

impl Tally {
    /// Adds `other`, spread once at `level`.
    fn add(&mut self, other: &Tally, level: Level) {
        self.fields = self.fields.saturating_add(other.fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.typenames = self.typenames.saturating_add(other.typenames);
        if level == Level::Top {
            self.top_fields = self.top_fields.saturating_add(other.top_fields);
            self.top_hashing = self.top_hashing.saturating_add(other.top_hashing);
        }
    }
}

/// One operation's or fragment's own selections, its spreads not yet expanded.
#[derive(Default)]
struct Local<'a> {
    own: Tally,
    spreads: Vec<(&'a str, Level)>,
}

impl<'a> Local<'a> {
    fn of(set: &'a SelectionSet) -> Local<'a> {
        let mut local = Local::default();
        local.walk(set, Level::Top);
        local
    }

    /// Recursion is bounded: the parser refuses selection sets nested more
    /// than 64 deep, and spreads are only recorded here.
    fn walk(&mut self, set: &'a SelectionSet, level: Level) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    self.own.fields += 1;
                    self.own.aliases += u64::from(field.node.alias.is_some());
                    if name == TYPENAME {
                        self.own.typenames += 1;
                    } else if level == Level::Top {
                        self.own.top_fields += 1;
                        self.own.top_hashing += u64::from(PASSWORD_HASHING.contains(&name));
                    }
                    self.walk(&field.node.selection_set.node, Level::Nested);
                }
                Selection::FragmentSpread(spread) => self
                    .spreads
                    .push((spread.node.fragment_name.node.as_str(), level)),
                Selection::InlineFragment(inline) => {
                    self.walk(&inline.node.selection_set.node, level)
                }
            }
        }
    }

    /// Own selections plus every spread, from the fragments' totals. A spread
    /// of an unknown fragment adds nothing: validation refuses it.
    fn total(&self, totals: &HashMap<&str, Tally>) -> Tally {
        let mut total = self.own;
        for (name, level) in &self.spreads {
            if let Some(fragment) = totals.get(name) {
                total.add(fragment, *level);
            }
        }
        total
    }
}

/// Every fragment's expanded tally, each resolved once after the fragments
/// it spreads (an iterative depth-first walk: no recursion along spread
/// chains). A cycle is refused; the GraphQL spec forbids it anyway.
fn fragment_totals(doc: &ExecutableDocument) -> Result<HashMap<&str, Tally>, Refusal> {
    let locals: HashMap<&str, Local> = doc
        .fragments
        .iter()
        .map(|(name, f)| (name.as_str(), Local::of(&f.node.selection_set.node)))
        .collect();
    let mut totals: HashMap<&str, Tally> = HashMap::with_capacity(locals.len());
    let mut in_progress: HashSet<&str> = HashSet::new();
    for start in locals.keys() {
        if totals.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        in_progress.insert(start);
        while let Some((name, next)) = stack.pop() {
            let local = &locals[name];
            let pending = local.spreads[next..]
                .iter()
                .position(|(dep, _)| locals.contains_key(dep) && !totals.contains_key(dep));
            let Some(offset) = pending else {
                totals.insert(name, local.total(&totals));
                in_progress.remove(name);
                continue;
            };
            let dep = local.spreads[next + offset].0;
            if !in_progress.insert(dep) {
                return Err(Refusal(format!(
                    "fragment {dep} spreads itself (through its own spreads)"
                )));
            }
            stack.push((name, next + offset + 1));
            stack.push((dep, 0));
        }
    }
    Ok(totals)
}

fn over(what: &str, count: u64, limit: u64) -> Result<(), Refusal> {
    if count > limit {
        return Err(Refusal(format!(
            "the document holds {count} {what} once its fragments are expanded; at most {limit} are accepted"
        )));
    }
    Ok(())
}

/// Checks `doc` against `limits` and the per-request rules, in time linear in
/// its size. Every operation counts (validation walks them all); the
/// mutation rules hold for each mutation operation.
pub fn check(doc: &ExecutableDocument, limits: &DocumentLimits) -> Result<UnpricedFields, Refusal> {
    let fragments = doc.fragments.len() as u64;
    if fragments > limits.max_fragments {
        return Err(Refusal(format!(
            "the document defines {fragments} fragments; at most {} are accepted",
            limits.max_fragments
        )));
    }
    let totals = fragment_totals(doc)?;
    let mut document = Tally::default();
    for (_, op) in doc.operations.iter() {
        let tally = Local::of(&op.node.selection_set.node).total(&totals);
        document.add(&tally, Level::Nested);
        if op.node.ty != OperationType::Mutation {
            continue;
        }
        if tally.top_hashing > 1 {
            return Err(Refusal(format!(
                "a request may call at most one of {} (each hashes a password); this one calls {}",
                PASSWORD_HASHING.join(", "),
                tally.top_hashing
            )));
        }
        over("mutations", tally.top_fields, limits.max_mutations)?;
    }
    over("field selections", document.fields, limits.max_selections)?;
    over("aliases", document.aliases, limits.max_aliases)?;
    Ok(UnpricedFields(document.typenames as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(query: &str) -> Result<UnpricedFields, Refusal> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        check(&doc, &DocumentLimits::default())
    }

    fn doubling(n: usize) -> String {
        let mut q = String::from("query { __typename ...F0 }");
        for i in 0..n {
            q.push_str(&format!(
                " fragment F{i} on QueryRoot {{ ...F{j} ...F{j} }}",
                j = i + 1
            ));
        }
        q.push_str(&format!(" fragment F{n} on QueryRoot {{ __typename }}"));
        q
    }

    #[test]
    fn doubling_fragments_are_counted_without_expanding_them() {
        let started = std::time::Instant::now();
        let err = run(&doubling(40)).unwrap_err();
        assert!(err.0.contains("field selections"), "{}", err.0);
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        // 2^9 + 1 selections stay within the default bound.
        assert_eq!(run(&doubling(9)).unwrap().0, 513);
    }

    #[test]
    fn cycles_are_refused_not_followed() {
        for q in [
            "{ ...A } fragment A on QueryRoot { ...A }",
            "{ ...A } fragment A on QueryRoot { me { ...B } } fragment B on User { groups { ...C } } fragment C on Group { ... { ...A } }",
        ] {
            assert!(run(q).unwrap_err().0.contains("spreads itself"), "{q}");
        }
    }

    #[test]
    fn password_hashes_and_mutations_are_counted_through_fragments_and_aliases() {
        let one = "mutation { login(username: \"a\", password: \"b\") { token } }";
        assert!(run(one).is_ok());
        for q in [
            "mutation { a: login(username: \"a\", password: \"b\") { token } b: login(username: \"a\", password: \"c\") { token } }",
            "mutation { ...L ...L } fragment L on MutationRoot { login(username: \"a\", password: \"b\") { token } }",
            "mutation { ... on MutationRoot { setPassword(userId: \"x\", password: \"y\") } createUser(input: {}) { id } }",
        ] {
            assert!(run(q).unwrap_err().0.contains("hashes a password"), "{q}");
        }
        let logouts = |n: usize| {
            format!(
                "mutation {{ {} }}",
                (0..n)
                    .map(|i| format!("a{i}: logout"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        assert!(run(&logouts(10)).is_ok());
        assert!(run(&logouts(11)).unwrap_err().0.contains("mutations"));
        // A query's root fields are not mutations.
        let reads = format!(
            "{{ {} }}",
            (0..11)
                .map(|i| format!("a{i}: me {{ id }}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(run(&reads).is_ok());
    }
}
