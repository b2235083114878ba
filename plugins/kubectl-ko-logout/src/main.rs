//! `kubectl ko logout` (also runnable as `kubectl-ko-logout`).

use clap::Parser;
use ko_core::cli::LogoutCommand;

fn main() -> std::process::ExitCode {
    let command = LogoutCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(ko_core::commands::logout::run(command))
}
