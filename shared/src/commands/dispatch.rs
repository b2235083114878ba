//! The `kubectl-ko` dispatcher: `kubectl ko <command>` runs the sibling `kubectl-ko-<command>`
//! binary found next to the dispatcher's own resolved path (krew links only the dispatcher
//! onto PATH), and answers `version` and `help` itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli;

/// A subcommand served by a sibling binary.
pub struct Subcommand {
    pub name: &'static str,
    pub about: &'static str,
    /// The command's clap definition, for shell completion of its flags.
    pub cli: fn() -> clap::Command,
}

/// Subcommands served by sibling binaries: what each does, and its flags for completion.
pub const COMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "build",
        about: "Build and publish container images from the given importpaths (alias: publish)",
        cli: <cli::BuildCommand as CommandFactory>::command,
    },
    Subcommand {
        name: "resolve",
        about: "Print the input files with image references resolved to built/pushed image digests",
        cli: <cli::ResolveCommand as CommandFactory>::command,
    },
    Subcommand {
        name: "apply",
        about: "Apply the input files with image references resolved to built/pushed image digests",
        cli: <cli::ApplyCommand as CommandFactory>::command,
    },
    Subcommand {
        name: "create",
        about: "Create the input files with image references resolved to built/pushed image digests",
        cli: <cli::CreateCommand as CommandFactory>::command,
    },
    Subcommand {
        name: "run",
        about: "A variant of `kubectl run` that containerizes IMPORTPATH first",
        cli: <cli::RunCommand as CommandFactory>::command,
    },
    Subcommand {
        name: "delete",
        about: "Delete the objects named in the input files",
        cli: <cli::DeleteCommand as CommandFactory>::command,
    },
    Subcommand { name: "login", about: "Log in to a registry", cli: <cli::LoginCommand as CommandFactory>::command },
    Subcommand { name: "logout", about: "Log out of a registry", cli: <cli::LogoutCommand as CommandFactory>::command },
];

/// Another name for a subcommand, as ko has them.
pub const ALIASES: &[(&str, &str)] = &[("publish", "build")];

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("unknown command {0:?}; run `kubectl ko help` for the list")]
    Unknown(String),
    #[error(
        "`kubectl ko {command}` needs {binary} next to {dispatcher}, but it is missing; reinstall kubectl-ko (for example `kubectl krew install ko`)"
    )]
    Missing { command: String, binary: PathBuf, dispatcher: PathBuf },
    #[error("running {binary}: {source}")]
    Exec { binary: PathBuf, source: std::io::Error },
    #[error("cannot find the kubectl-ko binary's own location: {0}")]
    SelfPath(std::io::Error),
}

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

pub fn help() -> String {
    let mut text = String::from(
        "kubectl ko: build Go applications into container images and deploy them to Kubernetes.\n\nUsage:\n  kubectl ko <command> [flags]\n\nCommands:\n",
    );
    for Subcommand { name, about, .. } in COMMANDS {
        text.push_str(&format!("  {name:<10} {about}\n"));
    }
    text.push_str("  completion Print a shell completion script (bash, zsh, fish or powershell)\n");
    text.push_str("  version    Print the version\n  help       Show this help, or a command's (help COMMAND)\n\n");
    text.push_str("Run `kubectl ko help <command>` or `kubectl ko <command> --help` for a command's flags.\n");
    text
}

/// The directory the real dispatcher binary lives in (symlinks resolved).
pub fn own_dir() -> Result<PathBuf, DispatchError> {
    let exe = std::env::current_exe().map_err(DispatchError::SelfPath)?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// The sibling binary for a subcommand.
pub fn sibling(command: &str) -> Result<PathBuf, DispatchError> {
    let command = ALIASES.iter().find(|(alias, _)| *alias == command).map_or(command, |(_, target)| target);
    if !COMMANDS.iter().any(|c| c.name == command) {
        return Err(DispatchError::Unknown(command.to_string()));
    }
    let dir = own_dir()?;
    let binary = dir.join(format!("kubectl-ko-{command}"));
    if !binary.is_file() {
        return Err(DispatchError::Missing {
            command: command.to_string(),
            binary,
            dispatcher: std::env::current_exe().unwrap_or_default(),
        });
    }
    Ok(binary)
}

/// Replaces this process with the sibling (returns only on failure).
pub fn exec(binary: &Path, args: Vec<OsString>) -> DispatchError {
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(binary).args(args).exec();
    DispatchError::Exec { binary: binary.to_path_buf(), source: error }
}
