use std::process::ExitCode;

fn main() -> ExitCode {
    memberdesk::cli::main()
}
