//! Counting and carrying out a deletion's steps, for one record or a set of
//! records of one kind: what every deletion shares once its records are
//! locked and its own rules checked.

use sqlx::PgConnection;

use super::registry::{self, Step};
use super::{DeletePolicy, Effect, Effects, RelationCount, TargetKind};
use crate::error::{AppError, AppResult};
use crate::store::deletion::{self, Start};

/// The steps of deleting `kind` records under `policy`; a policy that means
/// nothing for them is `INVALID_INPUT` on `policy`, before anything is read.
pub(super) fn steps_for(kind: TargetKind, policy: DeletePolicy) -> AppResult<Vec<Step>> {
    let steps = registry::steps(kind, policy);
    if let Some(step) = steps.iter().find(|s| s.effect == Effect::Invalid) {
        return Err(AppError::invalid(
            "policy",
            format!(
                "{} does not apply to a {}: its {} cannot exist without it; use PROTECT or CASCADE",
                policy.as_str(),
                kind.noun(),
                step.name
            ),
        ));
    }
    Ok(steps)
}

/// How many rows each step reaches, in one statement: the protecting
/// relations from the records in `protected`, every other from `targets`
/// (for one record, both are that record).
pub(super) async fn count(
    tx: &mut PgConnection,
    steps: &[Step],
    targets: &[i64],
    protected: &[i64],
) -> AppResult<Vec<i64>> {
    let paths: Vec<(&[_], Start)> = steps
        .iter()
        .map(|s| match s.effect {
            Effect::Protect => (&s.hops[..], Start::Second),
            _ => (&s.hops[..], Start::First),
        })
        .collect();
    Ok(deletion::count_reached(tx, &paths, targets, protected).await?)
}

/// The records among `ids` that a protecting relation holds rows for.
pub(super) async fn protected_among(
    tx: &mut PgConnection,
    kind: TargetKind,
    steps: &[Step],
    ids: &[i64],
) -> AppResult<Vec<i64>> {
    let paths: Vec<&[_]> = steps
        .iter()
        .filter(|s| s.effect == Effect::Protect)
        .map(|s| &s.hops[..])
        .collect();
    Ok(deletion::records_reaching(tx, registry::table(kind), &paths, ids).await?)
}

/// Deletes or detaches every step's rows, then the records `ids`; returns
/// how many rows each step touched (its plan, measured).
pub(super) async fn apply(
    tx: &mut PgConnection,
    kind: TargetKind,
    steps: &[Step],
    ids: &[i64],
) -> AppResult<Vec<i64>> {
    let mut counts = Vec::with_capacity(steps.len());
    for step in steps {
        let touched = match step.effect {
            Effect::Delete => deletion::delete_reached(&mut *tx, &step.hops, ids).await?,
            Effect::Detach if is_array(step) => count_one(&mut *tx, step, ids).await?,
            Effect::Detach => deletion::detach_reached(&mut *tx, &step.hops, ids).await?,
            Effect::Protect => 0,
            Effect::Invalid => return Err(AppError::internal("an invalid step was applied")),
        };
        counts.push(touched as i64);
    }
    deletion::delete_records(&mut *tx, registry::table(kind), ids).await?;
    Ok(counts)
}

/// An id kept in an array is left there: it names nothing once the record
/// is gone, which is what a reader of the array is told (a group deleted
/// since a deactivation is reported in `missingGroupIds`). Nothing is
/// written, so such a relation is counted.
fn is_array(step: &Step) -> bool {
    step.hops
        .last()
        .is_some_and(|h| h.link == deletion::Link::Array)
}

async fn count_one(tx: &mut PgConnection, step: &Step, ids: &[i64]) -> AppResult<u64> {
    let counts = deletion::count_reached(tx, &[(&step.hops[..], Start::First)], ids, &[]).await?;
    Ok(counts.first().copied().unwrap_or(0) as u64)
}

/// Sorts each step's count by its effect. A protecting relation without rows
/// is left out: nothing protects.
pub(super) fn sort(steps: &[Step], counts: &[i64]) -> Effects {
    let mut sorted = Effects::default();
    for (step, count) in steps.iter().zip(counts) {
        let entry = RelationCount {
            relation: step.name.to_owned(),
            count: *count,
        };
        match step.effect {
            Effect::Protect if *count > 0 => sorted.protected.push(entry),
            Effect::Protect | Effect::Invalid => {}
            Effect::Delete => sorted.deleted.push(entry),
            Effect::Detach => sorted.detached.push(entry),
        }
    }
    sorted
}
