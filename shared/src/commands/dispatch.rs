//! The multicall entry of the suite: one executable answers to every command name.
//! `kubectl-ko` (also under any name it does not know, e.g. `ko`) runs the subcommand named by
//! its first argument (`kubectl ko build ...`); `kubectl-ko-build`, `kubectl-ko-apply`, ...
//! run that command; `docker-credential-ko` is the credential helper and `kubectl_complete-ko`
//! answers kubectl's completion requests. The name is the base name of `argv[0]`, so a
//! symlink or a copy under one of these names is that command. Everything runs in-process;
//! nothing is looked up next to the executable. `version` and `help` are answered here.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::{cli, output};

/// A subcommand of `kubectl ko`, also runnable as `kubectl-ko-<name>`.
pub struct Subcommand {
    pub name: &'static str,
    pub about: &'static str,
    /// The command's clap definition, for shell completion of its flags.
    pub cli: fn() -> clap::Command,
    /// Runs the command with its arguments (the first one is the program name).
    run: fn(Vec<OsString>) -> ExitCode,
}

/// The subcommands: what each does, its flags for completion, and how it runs.
pub const COMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "build",
        about: "Build and publish container images from the given importpaths (alias: publish)",
        cli: <cli::BuildCommand as CommandFactory>::command,
        run: build,
    },
    Subcommand {
        name: "resolve",
        about: "Print the input files with image references resolved to built/pushed image digests",
        cli: <cli::ResolveCommand as CommandFactory>::command,
        run: resolve,
    },
    Subcommand {
        name: "apply",
        about: "Apply the input files with image references resolved to built/pushed image digests",
        cli: <cli::ApplyCommand as CommandFactory>::command,
        run: apply,
    },
    Subcommand {
        name: "create",
        about: "Create the input files with image references resolved to built/pushed image digests",
        cli: <cli::CreateCommand as CommandFactory>::command,
        run: create,
    },
    Subcommand {
        name: "run",
        about: "A variant of `kubectl run` that containerizes IMPORTPATH first",
        cli: <cli::RunCommand as CommandFactory>::command,
        run: run_command,
    },
    Subcommand {
        name: "delete",
        about: "Delete the objects named in the input files",
        cli: <cli::DeleteCommand as CommandFactory>::command,
        run: delete,
    },
    Subcommand {
        name: "gocache",
        about: "Serve Go's build cache over GOCACHEPROG, shared through a registry (KO_GOCACHE_REPO)",
        cli: <cli::GocacheCommand as CommandFactory>::command,
        run: gocache,
    },
    Subcommand {
        name: "login",
        about: "Log in to a registry",
        cli: <cli::LoginCommand as CommandFactory>::command,
        run: login,
    },
    Subcommand {
        name: "logout",
        about: "Log out of a registry",
        cli: <cli::LogoutCommand as CommandFactory>::command,
        run: logout,
    },
];

/// Another name for a subcommand, as ko has them.
pub const ALIASES: &[(&str, &str)] = &[("publish", "build")];

/// The name kubectl and krew know the dispatcher by.
pub const DISPATCHER: &str = "kubectl-ko";
/// The name Docker runs the credential helper by (`credsStore: ko`).
pub const CREDENTIAL_HELPER: &str = "docker-credential-ko";
/// The name kubectl (1.26+) runs to complete `kubectl ko <TAB>`.
pub const COMPLETER: &str = "kubectl_complete-ko";

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("unknown command {0:?}; run `kubectl ko help` for the list")]
    Unknown(String),
}

/// What the executable was built from: its build script embeds these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package version, without a leading `v`.
    pub version: &'static str,
    /// The git commit it was built from (`git rev-parse HEAD`), or `unknown`.
    pub commit: &'static str,
}

impl BuildInfo {
    /// For a binary that embeds no commit (the thin per-command crates).
    pub const fn without_commit() -> Self {
        BuildInfo { version: version(), commit: "unknown" }
    }
}

/// The suite's version (the workspace's package version).
pub const fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The platform this executable runs on, as Go and krew name it (`linux/amd64`).
pub fn platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        os => os,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        arch => arch,
    };
    format!("{os}/{arch}")
}

/// `kubectl ko version`, and `-o json`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "kubectl-ko-version",
    bin_name = "kubectl ko version",
    about = "Print the version, commit and platform"
)]
struct VersionCommand {
    /// Output format: text (one line) or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
    output: String,
    /// Arguments, ignored as ko ignores them
    #[arg(hide = true)]
    ignored: Vec<String>,
}

/// The version as `kubectl ko version` prints it: one line for people, or one JSON object.
pub fn version_text(build: BuildInfo, json: bool) -> String {
    let version = format!("v{}", build.version);
    let platform = platform();
    if json {
        serde_json::json!({ "version": version, "commit": build.commit, "platform": platform }).to_string()
    } else {
        format!("{DISPATCHER} {version} (commit {}, {platform})", build.commit)
    }
}

pub fn help() -> String {
    let mut text = String::from(
        "kubectl ko: build Go applications into container images and deploy them to Kubernetes.\n\nUsage:\n  kubectl ko <command> [flags]\n\nCommands:\n",
    );
    for Subcommand { name, about, .. } in COMMANDS {
        text.push_str(&format!("  {name:<10} {about}\n"));
    }
    text.push_str("  completion Print a shell completion script (bash, zsh, fish or powershell)\n");
    text.push_str("  version    Print the version, commit and platform (-o json for JSON)\n");
    text.push_str("  help       Show this help, or a command's (help COMMAND)\n\n");
    text.push_str("Run `kubectl ko help <command>` or `kubectl ko <command> --help` for a command's flags.\n");
    text
}

/// The program a name (the base name of `argv[0]`) stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    /// `kubectl-ko`, or a name the suite does not know: the subcommand is the first argument.
    Dispatcher,
    /// `kubectl-ko-<name>`: one subcommand.
    Command(&'static Subcommand),
    CredentialHelper,
    Completer,
    /// `kubectl_complete-ko-<name>`: what kubectl runs to complete `kubectl ko <name> <TAB>`
    /// when a `kubectl-ko-<name>` plugin is on PATH (it asks the longest plugin's completer).
    CompleterOf(&'static Subcommand),
}

impl PartialEq for Subcommand {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Subcommand {}
impl std::fmt::Debug for Subcommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The subcommand a name or alias stands for.
fn subcommand(name: &str) -> Option<&'static Subcommand> {
    let name = ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, target)| target);
    COMMANDS.iter().find(|c| c.name == name)
}

fn program(argv0: &OsStr) -> Program {
    let base = Path::new(argv0).file_name().unwrap_or(argv0).to_string_lossy();
    let base = base.strip_suffix(std::env::consts::EXE_SUFFIX).filter(|b| !b.is_empty()).unwrap_or(&base);
    match base {
        CREDENTIAL_HELPER => Program::CredentialHelper,
        COMPLETER => Program::Completer,
        _ => match (base.strip_prefix("kubectl-ko-"), base.strip_prefix("kubectl_complete-ko-")) {
            (Some(name), _) if let Some(command) = subcommand(name) => Program::Command(command),
            (_, Some(name)) if let Some(command) = subcommand(name) => Program::CompleterOf(command),
            _ => Program::Dispatcher,
        },
    }
}

/// Every name the executable answers to besides `kubectl-ko`: what `scripts/install.sh` links.
pub fn program_names() -> Vec<String> {
    let mut names: Vec<String> = COMMANDS
        .iter()
        .map(|c| c.name)
        .chain(ALIASES.iter().map(|(alias, _)| *alias))
        .map(|name| format!("{DISPATCHER}-{name}"))
        .collect();
    let completers: Vec<String> =
        names.iter().map(|n| n.replacen(&format!("{DISPATCHER}-"), &format!("{COMPLETER}-"), 1)).collect();
    names.extend(completers);
    names.extend([CREDENTIAL_HELPER.to_string(), COMPLETER.to_string()]);
    names.sort();
    names
}

/// The executable that runs `kubectl ko gocache` as `<it> gocache`: `exe` itself when it is the
/// dispatcher (a per-command name is usually a link to it, which `current_exe` resolves),
/// else a `kubectl-ko` beside it (the thin per-command binaries do not dispatch).
pub fn dispatcher_for(exe: &Path) -> Option<std::path::PathBuf> {
    if program(exe.as_os_str()) == Program::Dispatcher {
        return Some(exe.to_path_buf());
    }
    let sibling = exe.with_file_name(format!("{DISPATCHER}{}", std::env::consts::EXE_SUFFIX));
    sibling.is_file().then_some(sibling)
}

/// The multicall entry: runs the program the executable was started as (`argv[0]`).
pub fn main(build: BuildInfo) -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from(DISPATCHER));
    run(program(&argv0), argv0, args.collect(), build)
}

/// The entry of a thin per-command binary: runs as `name` whatever its file is called.
pub fn main_as(name: &str) -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    run(program(OsStr::new(name)), OsString::from(name), args, BuildInfo::without_commit())
}

fn run(program: Program, argv0: OsString, args: Vec<OsString>, build: BuildInfo) -> ExitCode {
    match program {
        Program::Dispatcher => dispatch(args, build),
        Program::Command(command) => (command.run)(std::iter::once(argv0).chain(args).collect()),
        Program::CredentialHelper => credential_helper(args),
        Program::Completer => complete(args),
        Program::CompleterOf(command) => complete(std::iter::once(OsString::from(command.name)).chain(args).collect()),
    }
}

/// `kubectl ko <command> [args]`.
fn dispatch(args: Vec<OsString>, build: BuildInfo) -> ExitCode {
    // ko's persistent flags may come before the command (`ko -v build .`); every command
    // takes them, so they move to just after its name.
    let global = args.iter().take_while(|a| is_global_flag(a)).count();
    let (leading, args) = (args[..global].to_vec(), args[global..].to_vec());
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        output::result_bytes(help().as_bytes());
        return ExitCode::SUCCESS;
    };
    let command = command.to_string_lossy().into_owned();
    match command.as_str() {
        "version" | "--version" | "-V" => {
            let args = without_global_flags(args);
            let parsed = VersionCommand::try_parse_from(std::iter::once(OsString::from("version")).chain(args))
                .unwrap_or_else(|e| parse_failed(e));
            output::result(version_text(build, parsed.output == "json"));
            ExitCode::SUCCESS
        }
        "help" | "--help" | "-h" => match without_global_flags(args).next() {
            // `kubectl ko help build` is `kubectl ko build --help`.
            Some(topic) if command == "help" => help_of(&topic.to_string_lossy()),
            _ => {
                output::result_bytes(help().as_bytes());
                ExitCode::SUCCESS
            }
        },
        "completion" => {
            let args = without_global_flags(args);
            let parsed =
                cli::CompletionCommand::try_parse_from(std::iter::once(OsString::from("completion")).chain(args))
                    .unwrap_or_else(|e| parse_failed(e));
            match parsed.shell {
                Some(shell) => output::result_bytes(&super::completion::script(shell, !parsed.no_descriptions)),
                // As ko: no shell is a request for this help.
                None => output::result(cli::CompletionCommand::command().render_long_help().to_string()),
            }
            ExitCode::SUCCESS
        }
        // Cobra's name for the completion request; kubectl_complete-ko answers the same.
        "__complete" => complete(args.collect()),
        _ => match subcommand(&command) {
            Some(sub) => {
                let argv0 = OsString::from(format!("{DISPATCHER}-{}", sub.name));
                (sub.run)(std::iter::once(argv0).chain(leading).chain(args).collect())
            }
            None => {
                output::error(DispatchError::Unknown(command).to_string());
                ExitCode::FAILURE
            }
        },
    }
}

/// Whether `arg` is one of ko's persistent flags as its flag library reads them: `-v` (also
/// repeated, `-vv`), `--verbose`, and either with `=<bool>`. A value that is not a bool is
/// left for the command to refuse.
fn is_global_flag(arg: &OsStr) -> bool {
    let arg = arg.to_string_lossy();
    // Go's strconv.ParseBool.
    let boolish = |v: &str| {
        matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False")
    };
    match arg.split_once('=') {
        Some(("-v" | "--verbose", value)) => boolish(value),
        Some(_) => false,
        None => arg == "--verbose" || (arg.len() >= 2 && arg.starts_with('-') && arg[1..].bytes().all(|b| b == b'v')),
    }
}

/// The arguments of a command that takes no verbosity (`version`, `help`, `completion`),
/// without ko's persistent flags, which every command accepts.
fn without_global_flags(args: impl Iterator<Item = OsString>) -> impl Iterator<Item = OsString> {
    args.filter(|a| !is_global_flag(a))
}

/// The help of one command, or the dispatcher's for what it answers itself.
fn help_of(topic: &str) -> ExitCode {
    let topic_help = |mut command: clap::Command| {
        output::result(command.render_long_help().to_string());
        ExitCode::SUCCESS
    };
    match topic {
        "completion" => topic_help(cli::CompletionCommand::command()),
        "version" => topic_help(VersionCommand::command()),
        "help" => {
            output::result_bytes(help().as_bytes());
            ExitCode::SUCCESS
        }
        _ => match subcommand(topic) {
            Some(sub) => topic_help((sub.cli)()),
            // As ko (cobra): the topic is named, the general help follows, and all is well.
            None => {
                output::result(format!("Unknown help topic [`{topic}`]"));
                output::result_bytes(help().as_bytes());
                ExitCode::SUCCESS
            }
        },
    }
}

/// `docker-credential-ko ACTION`: Docker's credential-helper protocol. Anything but one
/// argument is a usage error on stdout, as Docker's own helpers answer it.
fn credential_helper(args: Vec<OsString>) -> ExitCode {
    let [action] = args.as_slice() else {
        output::result_bytes(format!("{}\n", crate::auth::HELPER_USAGE).as_bytes());
        return ExitCode::FAILURE;
    };
    let action = action.to_string_lossy().into_owned();
    let ok = crate::credential_helper(
        &action,
        crate::Environment::process(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
    );
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `kubectl_complete-ko WORDS...`: kubectl's completion request, answered as cobra does.
fn complete(args: Vec<OsString>) -> ExitCode {
    let words: Vec<String> = args.iter().map(|w| w.to_string_lossy().into_owned()).collect();
    output::result_bytes(super::completion::complete(&words).render().as_bytes());
    ExitCode::SUCCESS
}

/// Ends the process over what clap could not parse: help and `--version` as clap does, an
/// error with clap's message and status 1, as ko (cobra) exits on every error, bad flags too.
fn parse_failed(error: clap::Error) -> ! {
    if !error.use_stderr() {
        error.exit();
    }
    let _ = error.print();
    std::process::exit(1)
}

/// Parses `args` as the command `C`, sets the verbosity its flags ask for, and runs it.
fn launch<C, F>(args: Vec<OsString>, verbose: impl FnOnce(&C) -> bool, run: impl FnOnce(C) -> F) -> ExitCode
where
    C: Parser,
    F: std::future::Future<Output = Result<(), crate::Error>>,
{
    let command = cli::parse::<C, _, _>(args).unwrap_or_else(|e| parse_failed(e));
    output::init(verbose(&command));
    crate::run_main(run(command))
}

fn build(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::BuildCommand| c.global.verbose, super::build::run)
}

fn resolve(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::ResolveCommand| c.global.verbose, super::resolve::run)
}

fn apply(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::ApplyCommand| c.deploy.global.verbose, super::apply::run)
}

fn create(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::CreateCommand| c.deploy.global.verbose, super::create::run)
}

fn run_command(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::RunCommand| c.global.verbose, super::run::run)
}

/// `delete` hands a kubectl-style invocation (`delete deployment x`) to kubectl itself, and so
/// a `delete -f` with a kubectl flag of its own (`--grace-period=0`, `-o name`): ko hands
/// every delete to kubectl, so scripts pass them without `--`.
fn delete(args: Vec<OsString>) -> ExitCode {
    // kubectl's log level (`-v 6`, `-v=6`) is a kubectl flag: the delete goes to kubectl.
    let ours = super::delete::without_levels(&args);
    let kubectl_flag = || {
        super::delete::has_level(&args[1..])
            || matches!(cli::parse::<cli::DeleteCommand, _, _>(&ours), Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument)
    };
    let kubectl_args = super::delete::kubectl_form(&args[1..])
        .or_else(|| kubectl_flag().then(|| super::delete::for_kubectl(&args[1..])));
    if let Some(kubectl_args) = kubectl_args {
        output::init(false);
        return crate::run_main(super::delete::hand_over(kubectl_args));
    }
    launch(ours, |c: &cli::DeleteCommand| c.global.verbose, super::delete::run)
}

fn gocache(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::GocacheCommand| c.global.verbose, super::gocache::run)
}

fn login(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::LoginCommand| c.global.verbose, super::login::run)
}

fn logout(args: Vec<OsString>) -> ExitCode {
    launch(args, |c: &cli::LogoutCommand| c.global.verbose, super::logout::run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program_of(name: &str) -> Program {
        program(OsStr::new(name))
    }

    #[test]
    fn the_name_picks_the_program() {
        assert_eq!(program_of("/home/u/.krew/bin/kubectl-ko"), Program::Dispatcher);
        assert_eq!(program_of("kubectl-ko-build"), Program::Command(subcommand("build").unwrap()));
        assert_eq!(program_of("/usr/local/bin/kubectl-ko-publish"), Program::Command(subcommand("build").unwrap()));
        assert_eq!(program_of("kubectl-ko-delete"), Program::Command(subcommand("delete").unwrap()));
        assert_eq!(program_of("/x/docker-credential-ko"), Program::CredentialHelper);
        assert_eq!(program_of("kubectl_complete-ko"), Program::Completer);
        assert!(matches!(program_of("kubectl_complete-ko-build"), Program::CompleterOf(c) if c.name == "build"));
        assert!(matches!(program_of("kubectl_complete-ko-publish"), Program::CompleterOf(c) if c.name == "build"));
        // Another name (an alias such as `ko`, or a command it does not have) is the dispatcher.
        assert_eq!(program_of("ko"), Program::Dispatcher);
        assert_eq!(program_of("kubectl-ko-nope"), Program::Dispatcher);
        assert_eq!(program_of(""), Program::Dispatcher);
    }

    #[test]
    fn every_name_it_answers_to_is_listed() {
        let names = program_names();
        for name in &names {
            assert_ne!(program_of(name), Program::Dispatcher, "{name}");
        }
        for command in COMMANDS {
            assert!(names.contains(&format!("kubectl-ko-{}", command.name)), "{}", command.name);
        }
        assert!(names.contains(&CREDENTIAL_HELPER.to_string()) && names.contains(&COMPLETER.to_string()));
    }

    #[test]
    fn the_platform_is_named_as_go_and_krew_name_it() {
        let platform = platform();
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(platform, "linux/amd64");
        }
        assert!(!platform.contains("x86_64") && !platform.contains("macos"), "{platform}");
    }

    #[test]
    fn the_version_is_one_line_or_one_json_object() {
        let build = BuildInfo { version: "1.2.3", commit: "0123456789abcdef0123456789abcdef01234567" };
        let text = version_text(build, false);
        assert_eq!(
            text,
            format!("kubectl-ko v1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, {})", platform())
        );
        let json: serde_json::Value = serde_json::from_str(&version_text(build, true)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "v1.2.3",
                "commit": "0123456789abcdef0123456789abcdef01234567",
                "platform": platform(),
            })
        );
    }

    #[test]
    fn version_takes_dash_o_json() {
        for args in [&["version", "-o", "json"][..], &["version", "--output=json"], &["version", "-ojson"]] {
            assert_eq!(VersionCommand::try_parse_from(args).unwrap().output, "json", "{args:?}");
        }
        assert_eq!(VersionCommand::try_parse_from(["version"]).unwrap().output, "text");
        assert!(VersionCommand::try_parse_from(["version", "-o", "yaml"]).is_err());
    }
}
