//! `kubectl ko login` (also runnable as `kubectl-ko-login`).

use clap::Parser;
use ko_core::cli::LoginCommand;

fn main() -> std::process::ExitCode {
    let command = LoginCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(ko_core::commands::login::run(command))
}
