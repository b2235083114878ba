//! Shell completion for the whole suite, from one clap tree built out of the dispatcher's
//! table: static scripts for bash, zsh, fish and PowerShell (`kubectl ko completion SHELL`), and the
//! answers kubectl (1.26+) asks `kubectl_complete-ko` for when a user presses TAB after
//! `kubectl ko`. It knows flags only; it never runs a build or reads a registry.

use clap::{Arg, ArgAction, Command, ValueHint};

use super::dispatch::{ALIASES, COMMANDS};
use crate::cli::{CompletionCommand, CompletionShell};

/// The `kubectl-ko` dispatcher's command tree: every sibling subcommand with its flags (or
/// and what the dispatcher answers itself.
pub fn suite() -> Command {
    let mut root = Command::new("kubectl-ko")
        .bin_name("kubectl-ko")
        .version(super::dispatch::version())
        .about("Build Go applications into container images and deploy them to Kubernetes");
    for command in COMMANDS {
        let mut sub = (command.cli)();
        sub = sub.name(command.name).bin_name(format!("kubectl-ko {}", command.name)).about(command.about);
        for (alias, target) in ALIASES {
            if *target == command.name {
                sub = sub.visible_alias(*alias);
            }
        }
        root = root.subcommand(sub);
    }
    let completion =
        <CompletionCommand as clap::CommandFactory>::command().name("completion").bin_name("kubectl-ko completion");
    root.subcommand(completion).subcommand(Command::new("version").about("Print the version"))
}

/// The completion script for a shell: the dispatcher, then each sibling binary with a CLI, so
/// that `kubectl-ko-build <TAB>` completes as well as `kubectl-ko build <TAB>`.
/// Without `descriptions` (`--no-descriptions`), the help of commands and flags is left out.
pub fn script(shell: CompletionShell, descriptions: bool) -> Vec<u8> {
    let described = |command: Command| if descriptions { command } else { undescribed(command) };
    let mut out = Vec::new();
    write_script(shell, &mut described(suite()), "kubectl-ko", &mut out);
    for command in COMMANDS {
        write_script(shell, &mut described((command.cli)()), &format!("kubectl-ko-{}", command.name), &mut out);
    }
    out
}

/// `command` and everything under it without help texts.
fn undescribed(mut command: Command) -> Command {
    // Built first, so that the flags clap adds (--help, --version) are there to clear.
    command.build();
    command
        .about(None::<&str>)
        .long_about(None::<&str>)
        .mut_args(|arg| arg.help(None::<&str>).long_help(None::<&str>))
        .mut_subcommands(undescribed)
}

fn write_script(shell: CompletionShell, command: &mut Command, bin: &str, out: &mut Vec<u8>) {
    match shell {
        CompletionShell::Bash => bash_script(command, bin, out),
        CompletionShell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, command, bin, out),
        CompletionShell::Fish => clap_complete::generate(clap_complete::Shell::Fish, command, bin, out),
        CompletionShell::Powershell => clap_complete::generate(clap_complete::Shell::PowerShell, command, bin, out),
    }
}

/// clap_complete's bash script loses track of subcommands when the program's name has a dash
/// (clap issue 6421: `kubectl-ko build --<TAB>` offers nothing), so it is written for a
/// dash-free stand-in name and then registered for the real one.
fn bash_script(command: &mut Command, bin: &str, out: &mut Vec<u8>) {
    let stand_in = bin.replace('-', "_");
    name_subcommands(command, &stand_in);
    let mut generated = Vec::new();
    clap_complete::generate(clap_complete::Shell::Bash, command, &stand_in, &mut generated);
    let registered_suffix = format!(" {stand_in}");
    for line in String::from_utf8_lossy(&generated).lines() {
        let registration = line.trim_start().starts_with("complete -F ");
        match line.strip_suffix(&registered_suffix) {
            Some(head) if registration => out.extend_from_slice(format!("{head} {bin}\n").as_bytes()),
            _ => out.extend_from_slice(format!("{line}\n").as_bytes()),
        }
    }
}

/// Gives every subcommand the usage name under `bin` (`kubectl_ko build`), as the bash
/// generator expects.
fn name_subcommands(command: &mut Command, bin: &str) {
    command.set_bin_name(bin);
    for sub in command.get_subcommands_mut() {
        let name = format!("{bin} {}", sub.get_name());
        name_subcommands(sub, &name);
    }
}

/// Cobra's shell completion directives (a bit set), which kubectl passes on to the shell.
pub mod directive {
    pub const DEFAULT: u32 = 0;
    pub const NO_FILE_COMP: u32 = 4;
    pub const FILTER_DIRS: u32 = 16;
}

/// One completion: the word, and a one-line description the shell may show beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub help: String,
}

/// What to offer for the word under the cursor, and how the shell should treat it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completions {
    pub candidates: Vec<Candidate>,
    pub directive: u32,
}

impl Completions {
    fn new(directive: u32) -> Self {
        Completions { candidates: Vec::new(), directive }
    }

    /// The cobra `__complete` output kubectl reads: one `value<TAB>description` line per
    /// candidate, then `:<directive>`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for Candidate { value, help } in &self.candidates {
            text.push_str(value);
            if !help.is_empty() {
                text.push('\t');
                text.push_str(help);
            }
            text.push('\n');
        }
        text.push_str(&format!(":{}\n", self.directive));
        text
    }
}

/// Completes `kubectl ko WORDS...`: the last word is the one being typed (empty right after a
/// space), as kubectl passes them to `kubectl_complete-ko`.
pub fn complete(words: &[String]) -> Completions {
    let (current, done) = words.split_last().map_or(("", &[][..]), |(last, rest)| (last.as_str(), rest));
    let mut root = suite();
    root.build();
    let mut command = &root;
    let mut pending: Option<Arg> = None;
    let mut positionals = 0;
    let mut only_positionals = false;
    for word in done {
        if pending.take().is_some() {
            continue;
        }
        if only_positionals || word == "-" || !word.starts_with('-') {
            match command.find_subcommand(word) {
                Some(sub) if positionals == 0 && !only_positionals => command = sub,
                _ => positionals += 1,
            }
        } else if word == "--" {
            only_positionals = true;
        } else if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') {
                pending = find_long(command, long).filter(|a| needs_value(a)).cloned();
            }
        } else {
            pending = short_waiting_for_value(command, &word[1..]).cloned();
        }
    }
    if let Some(arg) = pending {
        return values(&arg, current, "");
    }
    if !only_positionals && let Some(long) = current.strip_prefix("--") {
        if let Some((name, value)) = long.split_once('=') {
            return match find_long(command, name) {
                Some(arg) => values(arg, value, &format!("--{name}=")),
                None => Completions::new(directive::NO_FILE_COMP),
            };
        }
        return flags(command, current);
    }
    if !only_positionals && current.starts_with('-') {
        return flags(command, current);
    }
    if positionals == 0 && !only_positionals && command.has_subcommands() {
        return subcommands(command, current);
    }
    let positional_args: Vec<&Arg> = command.get_positionals().collect();
    let arg = positional_args
        .get(positionals)
        .or_else(|| positional_args.iter().find(|a| matches!(a.get_action(), ArgAction::Append)));
    match arg {
        Some(arg) => values(arg, current, ""),
        None => Completions::new(directive::NO_FILE_COMP),
    }
}

fn find_long<'a>(command: &'a Command, name: &str) -> Option<&'a Arg> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|aliases| aliases.contains(&name)))
}

/// In a cluster of short flags (`-vt`), the last one when it still waits for its value in the
/// next word; a value-taking flag earlier in the cluster takes the rest of the word instead.
fn short_waiting_for_value<'a>(command: &'a Command, shorts: &str) -> Option<&'a Arg> {
    let mut chars = shorts.chars().peekable();
    while let Some(c) = chars.next() {
        let arg = command.get_arguments().find(|a| a.get_short() == Some(c))?;
        if arg.get_action().takes_values() {
            return (chars.peek().is_none() && needs_value(arg)).then_some(arg);
        }
    }
    None
}

/// Whether the flag's value is the next word (`--tags v1`), not optional and attached only
/// (`--push=false`).
fn needs_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
        && !arg.is_require_equals_set()
        && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

fn first_line(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string().lines().next().unwrap_or_default().trim().to_string()).unwrap_or_default()
}

fn flags(command: &Command, current: &str) -> Completions {
    let mut completions = Completions::new(directive::NO_FILE_COMP);
    for arg in command.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
        let help = first_line(arg.get_help());
        let mut names: Vec<String> = arg.get_long().map(|l| format!("--{l}")).into_iter().collect();
        if !current.starts_with("--") {
            names.extend(arg.get_short().map(|s| format!("-{s}")));
        }
        for value in names.into_iter().filter(|n| n.starts_with(current)) {
            completions.candidates.push(Candidate { value, help: help.clone() });
        }
    }
    completions
}

fn subcommands(command: &Command, current: &str) -> Completions {
    let mut completions = Completions::new(directive::NO_FILE_COMP);
    let visible: Vec<&Command> = command.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    for sub in visible.iter().filter(|s| s.get_name().starts_with(current)) {
        completions.candidates.push(Candidate { value: sub.get_name().to_string(), help: first_line(sub.get_about()) });
    }
    if completions.candidates.is_empty() {
        for sub in visible {
            for alias in sub.get_visible_aliases().filter(|a| a.starts_with(current)) {
                completions.candidates.push(Candidate { value: alias.to_string(), help: first_line(sub.get_about()) });
            }
        }
    }
    completions
}

/// Values of a flag or positional: its listed choices, else what its value hint says the
/// shell should offer (directories, any file, or nothing).
fn values(arg: &Arg, current: &str, prefix: &str) -> Completions {
    let choices = arg.get_possible_values();
    if !choices.is_empty() {
        let mut completions = Completions::new(directive::NO_FILE_COMP);
        for choice in choices.iter().filter(|c| !c.is_hide_set() && c.get_name().starts_with(current)) {
            completions.candidates.push(Candidate {
                value: format!("{prefix}{}", choice.get_name()),
                help: first_line(choice.get_help()),
            });
        }
        return completions;
    }
    let directive = match arg.get_value_hint() {
        ValueHint::DirPath => directive::FILTER_DIRS,
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => directive::DEFAULT,
        _ => directive::NO_FILE_COMP,
    };
    Completions::new(directive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.is_empty() {
            words = vec![String::new()];
        }
        words
    }

    fn values_of(line: &str) -> (Vec<String>, u32) {
        let completions = complete(&words(line));
        (completions.candidates.into_iter().map(|c| c.value).collect(), completions.directive)
    }

    #[test]
    fn the_suite_is_a_valid_clap_tree() {
        // Catches clashing flags or names when a command's CLI joins the dispatcher's table.
        suite().debug_assert();
    }

    #[test]
    fn every_subcommand_of_the_table_is_offered() {
        let (names, directive) = values_of("");
        for command in COMMANDS {
            assert!(names.iter().any(|n| n == command.name), "{} missing from {names:?}", command.name);
        }
        for extra in ["completion", "version"] {
            assert!(names.iter().any(|n| n == extra), "{extra} missing from {names:?}");
        }
        assert_eq!(directive, directive::NO_FILE_COMP);
    }

    #[test]
    fn a_prefix_narrows_the_subcommands_and_finds_aliases() {
        assert_eq!(values_of("b").0, ["build"]);
        assert_eq!(values_of("pub").0, ["publish"]);
        assert_eq!(values_of("lo").0, ["login", "logout"]);
    }

    #[test]
    fn flags_of_a_subcommand_come_from_its_cli() {
        let (flags, directive) = values_of("build --pl");
        assert_eq!(flags, ["--platform"]);
        assert_eq!(directive, directive::NO_FILE_COMP);
        let (flags, _) = values_of("publish -");
        assert!(flags.iter().any(|f| f == "-t") && flags.iter().any(|f| f == "--tags"), "{flags:?}");
        assert!(flags.iter().any(|f| f == "--verbose"), "{flags:?}");
    }

    #[test]
    fn import_paths_complete_as_directories_and_flag_values_by_type() {
        assert_eq!(values_of("build ").1, directive::FILTER_DIRS);
        assert_eq!(values_of("build ./a --platform linux/amd64 ").1, directive::FILTER_DIRS);
        assert_eq!(values_of("build --oci-layout-path ").1, directive::FILTER_DIRS);
        assert_eq!(values_of("build --tarball ").1, directive::DEFAULT);
        assert_eq!(values_of("apply -f ").1, directive::DEFAULT, "a file or a directory");
        assert_eq!(values_of("resolve --filename ").1, directive::DEFAULT);
        assert_eq!(values_of("build -t ").1, directive::NO_FILE_COMP);
        assert_eq!(values_of("build -vt ").1, directive::NO_FILE_COMP);
        assert_eq!(values_of("build -tv1 ").1, directive::FILTER_DIRS);
        // `--push` takes its value only after `=`, so the next word is an import path.
        assert_eq!(values_of("build --push ").1, directive::FILTER_DIRS);
    }

    #[test]
    fn choices_are_listed_with_or_without_an_equals_sign() {
        assert_eq!(values_of("completion ").0, ["bash", "zsh", "fish", "powershell"]);
        assert_eq!(values_of("completion f").0, ["fish"]);
        assert_eq!(values_of("build --tag-only=t").0, ["--tag-only=true"]);
    }

    #[test]
    fn every_subcommand_completes_its_own_flags() {
        let resolve = values_of("resolve --fi").0;
        assert_eq!(resolve, ["--filename"]);
        assert!(values_of("apply --").0.contains(&"--force-conflicts".to_string()));
        assert!(values_of("delete --").0.contains(&"--ignore-not-found".to_string()));
        assert!(values_of("login --").0.contains(&"--password-stdin".to_string()));
    }

    #[test]
    fn render_speaks_cobras_protocol() {
        let text = complete(&words("ver")).render();
        assert_eq!(text, "version\tPrint the version\n:4\n");
    }

    #[test]
    fn scripts_name_the_dispatcher_and_the_siblings() {
        for shell in [CompletionShell::Bash, CompletionShell::Zsh, CompletionShell::Fish, CompletionShell::Powershell] {
            let text = String::from_utf8(script(shell, true)).unwrap();
            assert!(text.contains("kubectl-ko-build"), "{shell:?}");
            assert!(text.contains("platform"), "{shell:?}");
            assert!(text.contains("resolve"), "{shell:?}");
        }
    }

    /// `--no-descriptions`, as in ko: the same words to complete, without their help.
    #[test]
    fn scripts_without_descriptions_keep_the_words() {
        for shell in [CompletionShell::Zsh, CompletionShell::Fish, CompletionShell::Powershell] {
            let (with, without) = (script(shell, true), script(shell, false));
            let (with, without) = (String::from_utf8(with).unwrap(), String::from_utf8(without).unwrap());
            for help in ["Which platform to use when pulling", "Print help"] {
                assert!(with.contains(help) && !without.contains(help), "{shell:?}: {help}");
            }
            assert!(without.contains("platform") && without.contains("kubectl-ko-build"), "{shell:?}");
        }
    }

    #[test]
    fn the_bash_script_registers_the_real_program_names() {
        let text = String::from_utf8(script(CompletionShell::Bash, true)).unwrap();
        let registered: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("complete -F "))
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        let mut expected = vec!["kubectl-ko".to_string()];
        expected.extend(COMMANDS.iter().map(|c| format!("kubectl-ko-{}", c.name)));
        assert!(registered.iter().all(|name| expected.iter().any(|e| e == name)), "{registered:?}");
        assert!(expected.iter().all(|e| registered.contains(&e.as_str())), "{registered:?}");
    }
}
