//! Content an operator clears from a shell: `purge-archived` deletes for
//! good the questions archived long enough ago, as a nightly cron job would.
//! The deletion is the domain's (`domain::archive`, which is
//! `deleteQuestions` under CASCADE, batch by batch); this only says what it
//! did, in lines a cron mail can be read by.

use std::collections::BTreeMap;

use clap::Args;

use super::{MAX_DORMANT_DAYS, describe_error, open};
use crate::domain::archive::{self, Purge, PurgeRun};
use crate::domain::{Actor, Mode};

/// The arguments of `purge-archived`.
#[derive(Args)]
pub(super) struct PurgeArgs {
    /// Questions archived more than this many days ago (0 to 36500; 0:
    /// every archived question).
    #[arg(long, value_parser = parse_days)]
    older_than_days: u32,
    /// Only count what would be deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Questions per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch_size: i64,
}

impl From<PurgeArgs> for Purge {
    fn from(args: PurgeArgs) -> Self {
        Purge {
            older_than_days: args.older_than_days,
            batch_size: args.batch_size,
            mode: Mode::from_dry_run(Some(args.dry_run)),
        }
    }
}

/// `--older-than-days`: a whole number from 0 (every archived question) to
/// 36500, refused in words otherwise (clap adds the argument's name).
fn parse_days(raw: &str) -> Result<u32, String> {
    match raw.trim().parse::<u32>() {
        Ok(days) if days <= MAX_DORMANT_DAYS => Ok(days),
        _ => Err(format!(
            "must be a whole number of days from 0 to {MAX_DORMANT_DAYS} (100 years)"
        )),
    }
}

/// `memberdesk purge-archived --older-than-days N [--dry-run] [--batch-size B]`.
pub(super) async fn purge_archived(args: PurgeArgs) -> Result<(), String> {
    let purge = Purge::from(args);
    let (pool, _) = open(false).await?;
    let run = archive::purge_archived(&pool, &Actor::System, purge, |run| {
        println!(
            "progress: {}/{} archived question(s) deleted",
            run.deleted, run.matched
        );
    })
    .await
    .map_err(describe_error)?;
    println!("{}", summary(&run, purge));
    Ok(())
}

/// The closing line: what was (or, dry, would be) deleted; in words when
/// nothing is old enough, so a cron mail is not mistaken for a failure.
fn summary(run: &PurgeRun, purge: Purge) -> String {
    let days = purge.older_than_days;
    let (done, prefix) = match purge.mode {
        Mode::Preview => ("would be deleted", "dry run: "),
        Mode::Execute => ("deleted", ""),
    };
    if run.matched == 0 {
        return format!(
            "{prefix}no question has been archived for more than {days} days; nothing to purge"
        );
    }
    format!(
        "{prefix}{} question(s) archived for more than {days} days {done}, with {}",
        run.deleted,
        rows(&run.with)
    )
}

/// `2 choices, 3 votes`: the rows deleted with the questions.
fn rows(with: &BTreeMap<String, i64>) -> String {
    let parts: Vec<String> = with
        .iter()
        .map(|(relation, count)| format!("{count} {relation}"))
        .collect();
    match parts.is_empty() {
        true => "nothing else".to_owned(),
        false => parts.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_zero_to_a_hundred_years() {
        assert_eq!(parse_days("0"), Ok(0));
        assert_eq!(parse_days(" 30 "), Ok(30));
        assert_eq!(parse_days("36500"), Ok(36_500));
        for bad in ["-1", "36501", "1.5", "", "thirty"] {
            let err = parse_days(bad).unwrap_err();
            assert!(err.contains("from 0 to 36500"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_summary_says_what_went() {
        let purge = |mode| Purge {
            older_than_days: 30,
            batch_size: 1000,
            mode,
        };
        let with = [("choices".to_owned(), 4), ("votes".to_owned(), 3)].into();
        let run = PurgeRun {
            matched: 2,
            deleted: 2,
            with,
        };
        assert_eq!(
            summary(&run, purge(Mode::Execute)),
            "2 question(s) archived for more than 30 days deleted, with 4 choices, 3 votes"
        );
        assert_eq!(
            summary(&run, purge(Mode::Preview)),
            "dry run: 2 question(s) archived for more than 30 days would be deleted, with 4 choices, 3 votes"
        );
        assert_eq!(
            summary(&PurgeRun::default(), purge(Mode::Execute)),
            "no question has been archived for more than 30 days; nothing to purge"
        );
    }
}
