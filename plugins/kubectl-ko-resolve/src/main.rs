//! `kubectl ko resolve` (also runnable as `kubectl-ko-resolve`).

use clap::Parser;
use ko_core::cli::ResolveCommand;

fn main() -> std::process::ExitCode {
    let command = ResolveCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(ko_core::commands::resolve::run(command))
}
