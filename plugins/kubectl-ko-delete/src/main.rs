//! `kubectl ko delete` (also runnable as `kubectl-ko-delete`).

use clap::Parser;
use ko_core::cli::DeleteCommand;

fn main() -> std::process::ExitCode {
    let command = DeleteCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(ko_core::commands::delete::run(command))
}
