//! `kubectl ko build` (also runnable as `kubectl-ko-build`).

use clap::Parser;
use ko_core::cli::BuildCommand;

fn main() -> std::process::ExitCode {
    let command = BuildCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(ko_core::commands::build::run(command))
}
