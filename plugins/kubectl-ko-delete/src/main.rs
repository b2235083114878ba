//! `kubectl ko delete` (also runnable as `kubectl-ko-delete`).

use clap::Parser;
use ko_core::cli::DeleteCommand;
use ko_core::commands::delete;

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(kubectl_args) = delete::kubectl_form(&args) {
        ko_core::output::init(false);
        return ko_core::run_main(delete::hand_over(kubectl_args));
    }
    let command = DeleteCommand::parse();
    ko_core::output::init(command.global.verbose);
    ko_core::run_main(delete::run(command))
}
