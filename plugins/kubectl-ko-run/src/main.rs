//! `kubectl ko run` (also runnable as `kubectl-ko-run`).

use clap::Parser;
use ko_core::cli::RunCommand;

fn main() -> std::process::ExitCode {
    let command = RunCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(ko_core::commands::run::run(command))
}
