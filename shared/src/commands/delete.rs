//! `kubectl ko delete`: delete the objects the input files name; nothing is built. Every other
//! form of `kubectl delete` (`delete KIND NAME`, `--all`, flags after `--`) is handed to
//! kubectl, as ko does.

use std::ffi::{OsStr, OsString};

use crate::cli::DeleteCommand;
use crate::cluster::{self, ClusterError};
use crate::error::Error;

use super::apply::unresolved_objects_and_rejected;
use super::{kubectl, resolve};

fn is_file_flag(arg: &OsStr) -> bool {
    let arg = arg.to_string_lossy();
    arg == "--filename" || arg.starts_with("--filename=") || (arg.starts_with("-f") && !arg.starts_with("--"))
}

fn is_help_flag(arg: &OsStr) -> bool {
    ["-h", "--help", "-V", "--version"].iter().any(|flag| arg == *flag)
}

/// The arguments before the first `--` and after it.
fn at_dashes(args: &[OsString]) -> (&[OsString], &[OsString]) {
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    (&args[..split], args.get(split + 1..).unwrap_or_default())
}

/// The values of the `-f` flags (`-f X`, `-fX`, `-f=X`, `--filename[=]X`), comma lists split.
fn file_values(args: &[OsString]) -> Vec<String> {
    let mut values = Vec::new();
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        let inline =
            arg.strip_prefix("--filename=").or_else(|| arg.strip_prefix("-f").filter(|_| !arg.starts_with("--")));
        let value = match inline {
            Some("") if arg == "-f" => args.next().map(|v| v.into_owned()),
            Some(v) => Some(v.trim_start_matches('=').to_string()),
            None if arg == "--filename" => args.next().map(|v| v.into_owned()),
            None => None,
        };
        values.extend(value.iter().flat_map(|v| v.split(',').map(str::to_string)));
    }
    values
}

/// The arguments for `kubectl delete` when kubectl should handle this invocation: any form
/// without `-f`, one with flags after `--` (which is dropped), or one naming a URL (kubectl
/// reads those; ko's `delete` always runs kubectl, so `ko delete -f https://…/release.yaml`
/// is a common way to uninstall). `None` when the objects of the files are deleted here.
/// Our `-v` means nothing to kubectl and is left out.
pub fn kubectl_form(args: &[OsString]) -> Option<Vec<OsString>> {
    let (before, after) = at_dashes(args);
    if before.iter().any(|a| is_help_flag(a)) {
        return None;
    }
    let url = file_values(before).iter().any(|f| f.starts_with("http://") || f.starts_with("https://"));
    if before.iter().any(|a| is_file_flag(a)) && after.is_empty() && !url {
        return None;
    }
    Some(for_kubectl(args))
}

/// Whether `arg` is a log level: kubectl's `-v` takes one (`-v 6`), ours takes none.
fn is_level(arg: &OsStr) -> bool {
    let arg = arg.to_string_lossy();
    !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `args` give kubectl's log level (`-v 6`, `-v=6`, `--v=6`, `--v 6`) before any
/// `--`: a kubectl flag, so the delete goes to kubectl, as ko hands every delete to it.
pub fn has_level(args: &[OsString]) -> bool {
    let (before, _) = at_dashes(args);
    before.iter().enumerate().any(|(i, arg)| {
        let text = arg.to_string_lossy();
        let inline = text.strip_prefix("-v=").or_else(|| text.strip_prefix("--v="));
        match inline {
            Some(level) => is_level(OsStr::new(level)),
            None => (text == "-v" || text == "--v") && before.get(i + 1).is_some_and(|next| is_level(next)),
        }
    })
}

/// All of `args` for `kubectl delete`: without the `--` and our `-v`, which means nothing to
/// kubectl. A `-v` followed by a number is kubectl's log level, and goes to it whole (ko hands
/// every argument of `delete` to kubectl), never a level taken for the name of an object.
pub fn for_kubectl(args: &[OsString]) -> Vec<OsString> {
    let (before, after) = at_dashes(args);
    let mut kept = Vec::new();
    let mut before = before.iter().peekable();
    while let Some(arg) = before.next() {
        if arg == "-v" && before.peek().is_some_and(|next| is_level(next)) {
            kept.push(arg.clone());
            kept.extend(before.next().cloned());
        } else if arg != "-v" && arg != "--verbose" {
            kept.push(arg.clone());
        }
    }
    kept.into_iter().chain(after.iter().cloned()).collect()
}

/// `args` for our own `delete` of the files' objects: kubectl's `-v N` becomes our `-v`, so
/// that the level is not taken for an argument.
pub fn without_levels(args: &[OsString]) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        kept.push(arg.clone());
        if arg == "--" {
            kept.extend(args.cloned());
            break;
        }
        if arg == "-v" && args.peek().is_some_and(|next| is_level(next)) {
            args.next();
        }
    }
    kept
}

/// Runs `kubectl delete ARGS…`.
pub async fn hand_over(args: Vec<OsString>) -> Result<(), Error> {
    kubectl::run(std::iter::once(OsString::from("delete")).chain(args).collect(), None).await
}

/// The end of a delete that had documents which are no objects: each is said, and the run
/// fails (with that document's error alone when it is the only thing that went wrong).
fn with_rejected(deleted: Result<(), ClusterError>, total: usize, mut rejected: Vec<ClusterError>) -> Error {
    if deleted.is_ok() && rejected.len() == 1 {
        return rejected.swap_remove(0).into();
    }
    for e in &rejected {
        crate::output::error(e.to_string());
    }
    let failed = match deleted {
        Ok(()) => 0,
        Err(ClusterError::Failed { count, .. }) => count,
        Err(other) => return other.into(),
    };
    ClusterError::Failed { count: failed + rejected.len(), total: total + rejected.len(), verb: "deleted" }.into()
}

pub async fn run(command: DeleteCommand) -> Result<(), Error> {
    if !command.kubectl_args.is_empty() {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        return hand_over(kubectl_form(&args).unwrap_or(args)).await;
    }
    let manifests = resolve::load(&command.files)?;
    // As kubectl: documents that are no objects fail the run after the others are deleted.
    let (objects, rejected) = unresolved_objects_and_rejected(&manifests)?;
    let cluster = cluster::connect(&command.kube, crate::settings::Environment::process()).await?;
    let mut kinds = cluster::prepare(&cluster, &objects, true).await?;
    if objects.is_empty() && rejected.is_empty() {
        // A directory with no manifest files in it is likely a mistyped path: kubectl (and so
        // ko) fails on it, so a teardown script does not pass silently.
        let filenames = command.files.filenames();
        let named = |dir: &str| manifests.iter().any(|m| std::path::Path::new(m.name()).starts_with(dir));
        if let Some(dir) = filenames.iter().find(|f| std::path::Path::new(f).is_dir() && !named(f)) {
            let has_subdirectories =
                std::fs::read_dir(dir).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())));
            let hint =
                if has_subdirectories && !command.files.recursive { " (add -R for its subdirectories)" } else { "" };
            let detail =
                format!("{dir} holds no .yaml, .yml or .json files{hint}; name the directory of the manifests");
            return Err(Error::usage("-f", detail));
        }
        // As kubectl says when the files (or the selector) leave nothing.
        crate::output::step("No resources found");
        return Ok(());
    }
    let options = cluster::DeleteOptions {
        // kubectl's default: objects picked by a selector may well be gone already.
        ignore_not_found: command.ignore_not_found.unwrap_or(command.files.selector.is_some()),
        dry_run: cluster::DryRun::None,
        wait: command.wait,
    };
    let deleted = match objects.is_empty() {
        true => Ok(()),
        false => cluster::delete(&cluster, &mut kinds, &objects, options).await,
    };
    match rejected.is_empty() {
        true => Ok(deleted?),
        false => Err(with_rejected(deleted, objects.len(), rejected)),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::kubectl_form;

    fn form(line: &str) -> Option<String> {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        kubectl_form(&args).map(|a| a.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn files_alone_are_deleted_here() {
        assert_eq!(form("-f config/ -R --ignore-not-found"), None);
        assert_eq!(form("--filename=x.yaml"), None);
        assert_eq!(form("-fx.yaml --"), None);
        assert_eq!(form("--help"), None);
    }

    #[test]
    fn other_forms_go_to_kubectl() {
        assert_eq!(form("deployment hello -n team").as_deref(), Some("deployment hello -n team"));
        assert_eq!(form("pods --all -v").as_deref(), Some("pods --all"));
        assert_eq!(form("-f x.yaml -- --wait=false -o name").as_deref(), Some("-f x.yaml --wait=false -o name"));
        assert_eq!(form("").as_deref(), Some(""));
        // kubectl reads URLs; we do not.
        let url = "-f https://example.com/release.yaml";
        assert_eq!(form(url).as_deref(), Some(url));
        assert_eq!(form("-f a.yaml,http://h/b.yaml").as_deref(), Some("-f a.yaml,http://h/b.yaml"));
        assert_eq!(form("--filename=https://h/r.yaml -v").as_deref(), Some("--filename=https://h/r.yaml"));
        assert_eq!(form("-fhttps://h/r.yaml").as_deref(), Some("-fhttps://h/r.yaml"));
        // kubectl's log level stays kubectl's, never the name of an object.
        assert_eq!(form("cm web -n a -v 6").as_deref(), Some("cm web -n a -v 6"));
        assert_eq!(form("cm web -v6 -v=7 -v").as_deref(), Some("cm web -v6 -v=7"));
        assert_eq!(form("-f x.yaml -v 6 -- --wait=false").as_deref(), Some("-f x.yaml -v 6 --wait=false"));
    }

    #[test]
    fn a_log_level_becomes_our_verbose_flag_when_the_files_are_ours() {
        let strip = |line: &str| {
            let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
            let out = super::without_levels(&args);
            out.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(strip("-f x.yaml -v 6 -n a"), "-f x.yaml -v -n a");
        assert_eq!(strip("-f x.yaml -v"), "-f x.yaml -v");
        assert_eq!(strip("-f x.yaml -v -- -v 6"), "-f x.yaml -v -- -v 6");
    }

    #[test]
    fn a_log_level_in_any_spelling_is_kubectls() {
        let level = |line: &str| {
            let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
            super::has_level(&args)
        };
        for line in ["-f x.yaml -v 6", "-f x.yaml -v=5", "-f x.yaml --v=5", "-f x.yaml --v 5"] {
            assert!(level(line), "{line}");
        }
        for line in ["-f x.yaml -v", "-f x.yaml -v -n 6", "-f x.yaml -v=yes", "-f x.yaml -- -v 6"] {
            assert!(!level(line), "{line}");
        }
    }
}
