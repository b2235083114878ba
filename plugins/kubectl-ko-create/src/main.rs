//! `kubectl ko create` (also runnable as `kubectl-ko-create`).

use clap::Parser;
use ko_core::cli::CreateCommand;

fn main() -> std::process::ExitCode {
    let command = CreateCommand::parse();
    ko_core::output::init(command.deploy.global.verbose);
    ko_core::run_main(ko_core::commands::create::run(command))
}
