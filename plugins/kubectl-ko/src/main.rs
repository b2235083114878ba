//! `kubectl ko`: the dispatcher krew puts on PATH. It runs `kubectl-ko-<command>` from its own
//! directory, and answers `version`, `completion` and `help` itself.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use ko_core::cli::CompletionCommand;
use ko_core::commands::{completion, dispatch};

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
        "help" | "--help" | "-h" => match args.next() {
            // `kubectl ko help build` is `kubectl ko build --help`.
            Some(topic) if command == "help" => help_of(&topic.to_string_lossy()),
            _ => {
                print!("{}", dispatch::help());
                ExitCode::SUCCESS
            }
        },
        "completion" => {
            let parsed = CompletionCommand::parse_from(std::iter::once(OsString::from("completion")).chain(args));
            ko_core::output::result_bytes(&completion::script(parsed.shell));
            ExitCode::SUCCESS
        }
        // Cobra's name for the completion request; kubectl_complete-ko answers the same.
        "__complete" => {
            let words: Vec<String> = args.map(|w| w.to_string_lossy().into_owned()).collect();
            ko_core::output::result_bytes(completion::complete(&words).render().as_bytes());
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

/// The help of one command: the sibling's own `--help`, or the dispatcher's for what it answers.
fn help_of(topic: &str) -> ExitCode {
    match topic {
        "completion" => {
            let _ = CompletionCommand::command().print_long_help();
            ExitCode::SUCCESS
        }
        "version" | "help" => {
            print!("{}", dispatch::help());
            ExitCode::SUCCESS
        }
        _ => {
            let error = match dispatch::sibling(topic) {
                Ok(binary) => dispatch::exec(&binary, vec![OsString::from("--help")]),
                Err(e) => e,
            };
            ko_core::output::error(error.to_string());
            ExitCode::FAILURE
        }
    }
}
