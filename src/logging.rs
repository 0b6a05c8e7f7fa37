//! Log output: which lines (`MEMBERDESK_LOG`), in which form
//! (`MEMBERDESK_LOG_FORMAT` / `--log-format`), and colours only for a person
//! at a terminal.
//!
//! A log filter that does not say what was meant is an error, not a guess:
//! `tracing`'s syntax reads a mistyped level (`debugg`) as the name of a
//! module to log, which silences every other line, the "ready" line
//! included.

use std::ffi::OsString;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The filter when `MEMBERDESK_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "memberdesk=info,poem=warn,sqlx=warn";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// `--log-format`'s and `MEMBERDESK_LOG_FORMAT`'s value; the error names
/// both, as clap cannot tell which of the two gave it.
pub fn parse_format(value: &str) -> Result<Format, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        _ => Err("MEMBERDESK_LOG_FORMAT (or --log-format) must be text or json".to_owned()),
    }
}

/// The filter `MEMBERDESK_LOG` sets (the default when unset or blank); an
/// error names the variable, the directive, and how to write one.
pub fn filter(value: Option<&str>) -> Result<EnvFilter, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(EnvFilter::new(DEFAULT_FILTER));
    };
    let example = "e.g. MEMBERDESK_LOG=debug or MEMBERDESK_LOG=memberdesk=debug,sqlx=warn";
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[']);
        if bare && directive.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "MEMBERDESK_LOG: '{directive}' is not a log level (off, error, warn, info, debug, trace); for one module write module=level, {example}"
            ));
        }
    }
    EnvFilter::builder().parse(value).map_err(|e| {
        format!("MEMBERDESK_LOG is not a valid log filter ('{value}': {e}); {example}")
    })
}

/// Colours for a person: only when standard error is a terminal and
/// `NO_COLOR` (<https://no-color.org>) is unset or empty.
pub fn use_colours(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber, writing to standard error.
pub fn init(format: Format) -> Result<(), String> {
    let filter = filter(std::env::var("MEMBERDESK_LOG").ok().as_deref())?;
    let colours = use_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    match format {
        Format::Text => logs.init(),
        // Span fields (the request id) go with every line.
        Format::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_that_would_silence_everything_by_mistake_is_an_error() {
        for good in [
            None,
            Some(""),
            Some("debug"),
            Some("INFO"),
            Some("memberdesk=debug,sqlx=warn"),
            Some("warn,memberdesk[request]=trace"),
        ] {
            assert!(filter(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            filter(Some("debugg")).unwrap_err(),
            "MEMBERDESK_LOG: 'debugg' is not a log level (off, error, warn, info, debug, trace); for one module write module=level, e.g. MEMBERDESK_LOG=debug or MEMBERDESK_LOG=memberdesk=debug,sqlx=warn"
        );
        let err = filter(Some("memberdesk=loud")).unwrap_err();
        assert!(
            err.starts_with("MEMBERDESK_LOG is not a valid log filter ('memberdesk=loud'"),
            "{err}"
        );
    }

    #[test]
    fn colours_only_for_a_terminal_without_no_color() {
        assert!(use_colours(true, None));
        assert!(use_colours(true, Some("".into())));
        assert!(!use_colours(true, Some("1".into())));
        assert!(!use_colours(false, None));
    }

    #[test]
    fn formats_are_text_or_json() {
        assert_eq!(parse_format("json"), Ok(Format::Json));
        assert_eq!(parse_format("Text"), Ok(Format::Text));
        assert!(
            parse_format("xml")
                .unwrap_err()
                .contains("MEMBERDESK_LOG_FORMAT")
        );
    }
}
