//! `kubectl ko apply` (also runnable as `kubectl-ko-apply`).

use clap::Parser;
use ko_core::cli::ApplyCommand;

fn main() -> std::process::ExitCode {
    let command = ApplyCommand::parse();
    ko_core::output::init(command.deploy.global.verbose);
    ko_core::run_main(ko_core::commands::apply::run(command))
}
