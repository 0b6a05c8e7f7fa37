//! Reference material generated from the command-line definition itself, so
//! it cannot drift from what the binary accepts: shell completions
//! (clap_complete) and the manual page (clap_mangen). Neither needs a
//! database, so both are printed before anything else starts.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, Command};

/// Prints the completions or the manual page if that is the command;
/// `None` for every other command.
pub(super) fn print(command: &Command) -> Option<ExitCode> {
    let written = match command {
        Command::Completions { shell } => completions(*shell),
        Command::Man => man_page(),
        _ => return None,
    };
    Some(match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(format!("cannot write to standard output: {e}")),
    })
}

fn completions(shell: clap_complete::Shell) -> std::io::Result<()> {
    let mut cli = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli, "memberdesk", &mut out);
    std::io::stdout().write_all(&out)
}

/// One page for the whole tool: the synopsis, the global options, then
/// under COMMANDS every subcommand with its synopsis, description and
/// options (one page rather than clap_mangen's page per subcommand, so
/// `man memberdesk` holds it all).
fn man_page() -> std::io::Result<()> {
    let mut cli = Cli::command();
    cli.build();
    let page = clap_mangen::Man::new(cli.clone());
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    for command in cli.get_subcommands().filter(|c| c.get_name() != "help") {
        out.extend(command_section(command)?);
    }
    page.render_version_section(&mut out)?;
    std::io::stdout().write_all(&strip_repeated_preambles(&out))
}

/// One subcommand under COMMANDS: its sections become labelled paragraphs
/// of a `.SS memberdesk NAME` subsection.
fn command_section(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    // The global options and help are on the page once, above.
    let command = command
        .clone()
        .mut_arg("log_format", |a| a.hide(true))
        .mut_arg("help", |a| a.hide(true));
    let page = clap_mangen::Man::new(command.clone());
    let mut parts = Vec::new();
    page.render_synopsis_section(&mut parts)?;
    page.render_description_section(&mut parts)?;
    page.render_options_section(&mut parts)?;
    let parts = String::from_utf8_lossy(&parts).into_owned();
    let mut section = format!(".SS memberdesk {}\n", command.get_name());
    for line in parts.lines() {
        match line.strip_prefix(".SH ") {
            Some(heading) => {
                section.push_str(&format!(".PP\n\\fI{}\\fR\n.br\n", title_case(heading)));
            }
            None => section.push_str(&format!("{line}\n")),
        }
    }
    Ok(section.into_bytes())
}

fn title_case(heading: &str) -> String {
    let lower = heading.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// roff writes its two-line apostrophe preamble with a rendering that
/// needs it; the page needs it once, at the top.
fn strip_repeated_preambles(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];
    let text = String::from_utf8_lossy(page);
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i >= PREAMBLE.len() && PREAMBLE.contains(&line) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}
