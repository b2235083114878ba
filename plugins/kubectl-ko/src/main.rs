//! `kubectl ko`: the dispatcher krew puts on PATH. It runs `kubectl-ko-<command>` from its own
//! directory, and answers `version` and `help` itself.

use std::process::ExitCode;

use ko_core::commands::dispatch;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(command) = args.next() else {
        print!("{}", dispatch::help());
        return ExitCode::SUCCESS;
    };
    let command = command.to_string_lossy().into_owned();
    match command.as_str() {
        "version" | "--version" => {
            ko_core::output::result(dispatch::version());
            ExitCode::SUCCESS
        }
        "help" | "--help" | "-h" => {
            print!("{}", dispatch::help());
            ExitCode::SUCCESS
        }
        _ => {
            let error = match dispatch::sibling(&command) {
                Ok(binary) => dispatch::exec(&binary, args.collect()),
                Err(e) => e,
            };
            ko_core::output::error(error.to_string());
            ExitCode::FAILURE
        }
    }
}
