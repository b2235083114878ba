//! The one `kubectl-ko` executable: it answers `version` (text and JSON) and `help`, runs
//! every subcommand in-process (so a lone copy works), and is every program of the suite under
//! that program's name: `kubectl-ko-build`, `docker-credential-ko`, `kubectl_complete-ko`, ...
//! as a symlink or a copy, and through kubectl on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binaries were built from: the checkout's HEAD.
pub fn head_commit(repo: &Path) -> String {
    let mut git = Command::new(tool("git"));
    git.arg("-C").arg(repo).args(["rev-parse", "HEAD"]);
    let run = capture(git, DEFAULT_TIMEOUT);
    run.assert_success();
    run.stdout.trim().to_string()
}

/// What `kubectl ko version` prints on linux/amd64 for this checkout.
pub fn version_line(commit: &str) -> String {
    format!("kubectl-ko v{VERSION} (commit {commit}, linux/amd64)")
}

/// Names every binary target of the workspace has: the thin crate per name.
pub fn workspace_binaries() -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["metadata", "--format-version", "1", "--no-deps"]).current_dir(workspace());
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    let metadata: Value = serde_json::from_str(&run.stdout).expect("cargo metadata prints JSON");
    let mut names: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A symlink named `name` to the built `kubectl-ko`, in `dir`.
fn link_as(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(bin("kubectl-ko"), &link).unwrap();
    link
}

#[test]
fn version_prints_the_version_the_commit_and_the_platform() {
    let commit = head_commit(&workspace());
    assert_eq!(commit.len(), 40, "{commit}");
    for spelling in ["version", "--version", "-V"] {
        let run = kubectl_ko(&[spelling]).run();
        run.assert_success();
        assert_eq!(run.stdout, format!("{}\n", version_line(&commit)), "{spelling}: {run}");
    }
    for args in [&["version", "-o", "json"][..], &["version", "--output=json"]] {
        let run = kubectl_ko(args).run();
        run.assert_success();
        let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
        assert_eq!(
            json,
            serde_json::json!({ "version": format!("v{VERSION}"), "commit": commit, "platform": "linux/amd64" }),
            "{run}"
        );
    }
    let bad = kubectl_ko(&["version", "-o", "yaml"]).run();
    bad.assert_failure();
    assert!(bad.stderr.contains("yaml") && bad.stderr.contains("json"), "{bad}");
    let help = kubectl_ko(&["help"]).run();
    assert!(help.stdout.contains("build") && help.stdout.contains("version"), "{help}");
}

#[test]
fn build_and_its_publish_alias_run_through_a_symlinked_dispatcher() {
    let dir = tempfile::tempdir().unwrap();
    let link = link_as(dir.path(), "kubectl-ko");
    for sub in ["build", "publish"] {
        let run = KoCmd::program(&link).args([sub, ".", "--push=false"]).cwd(fixture("hello")).run();
        run.assert_success();
        assert!(run.stdout.contains("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");
    }
    let unknown = KoCmd::program(&link).arg("nope").run();
    unknown.assert_failure();
    assert!(unknown.stderr.contains("unknown command \"nope\""), "{unknown}");
}

/// ko's persistent flag `-v/--verbose` may come before the command, as scripts write `ko -v build`.
#[test]
fn the_verbose_flag_may_come_before_the_command() {
    for leading in [&["-v"][..], &["--verbose=false", "-v"][..], &["-vv"][..], &["-v=true"][..]] {
        let args: Vec<&str> = leading.iter().copied().chain(["publish", ".", "--push=false"]).collect();
        let run = kubectl_ko(&args).cwd(fixture("hello")).run();
        run.assert_success();
        assert!(run.stdout.contains("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");
    }
    let version = kubectl_ko(&["--verbose", "version"]).run();
    version.assert_success();
    assert!(version.stdout.starts_with("kubectl-ko"), "{version}");
    // After the commands that print without building too, as ko takes it anywhere.
    for args in [&["version", "-v"][..], &["version", "--verbose"], &["help", "-v"], &["completion", "bash", "-v"]] {
        kubectl_ko(args).run().assert_success();
    }
    let bad = kubectl_ko(&["-v=maybe", "version"]).run();
    bad.assert_failure();
}

/// A flag given twice is no error: the last one wins, as with cobra (`ko build $FLAGS --push=false`).
#[test]
fn a_repeated_flag_takes_its_last_value() {
    let run = ko(&["build", ".", "--push", "-v", "--push=false", "--verbose=false"]).cwd(fixture("hello")).run();
    run.assert_success();
    assert!(run.stdout.contains("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");
}

/// Nothing is looked up next to the executable: a copy alone in a directory builds, and a copy
/// named `kubectl-ko-build` is the build command.
#[test]
fn a_lone_copy_runs_every_command_itself() {
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("kubectl-ko");
    std::fs::copy(bin("kubectl-ko"), &lonely).unwrap();
    let run = KoCmd::program(&lonely).args(["build", ".", "--push=false"]).cwd(fixture("hello")).run();
    run.assert_success();
    assert!(run.stdout.contains("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");

    let plain = dir.path().join("kubectl-ko-build");
    std::fs::copy(bin("kubectl-ko"), &plain).unwrap();
    let run = KoCmd::program(&plain).args([".", "--push=false"]).cwd(fixture("hello")).run();
    run.assert_success();
    assert!(run.stdout.contains("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");
}

/// Every name the workspace has a thin crate for is a program of the one executable, as a
/// link on PATH: each answers as that program, not as the dispatcher.
#[test]
fn every_name_of_the_suite_is_a_link_to_the_one_executable() {
    let dir = tempfile::tempdir().unwrap();
    let names = workspace_binaries();
    assert!(names.len() >= 10 && names.iter().any(|n| n == "kubectl-ko"), "{names:?}");
    for name in names.iter().filter(|n| *n != "kubectl-ko") {
        let link = link_as(dir.path(), name);
        match name.as_str() {
            "docker-credential-ko" => {
                let run = KoCmd::program(&link).arg("version").run();
                run.assert_success();
                assert!(run.stdout.starts_with("docker-credential-ko (kubectl-ko)"), "{run}");
                let run = KoCmd::program(&link).arg("list").run();
                run.assert_success();
                assert_eq!(run.stdout.trim(), "{}", "{run}");
            }
            "kubectl_complete-ko" => {
                let run = KoCmd::program(&link).arg("b").run();
                run.assert_success();
                assert!(run.stdout.lines().any(|l| l.starts_with("build\t")), "{run}");
                assert_eq!(run.stdout.lines().last(), Some(":4"), "{run}");
            }
            command => {
                let sub = command.strip_prefix("kubectl-ko-").unwrap_or_else(|| panic!("unexpected program {name}"));
                let run = KoCmd::program(&link).arg("--help").run();
                run.assert_success();
                assert!(run.stdout.contains(&format!("Usage: kubectl ko {sub}")), "{name}:\n{run}");
            }
        }
    }
    // Through the dispatcher, the same help.
    let run = kubectl_ko(&["help", "apply"]).run();
    run.assert_success();
    assert!(run.stdout.contains("Usage: kubectl ko apply"), "{run}");
}

#[test]
fn kubectl_finds_the_plugin_on_path() {
    let kubectl = kubectl_program();
    let dir = tempfile::tempdir().unwrap();
    link_as(dir.path(), "kubectl-ko");
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let run = KoCmd::program(&kubectl).args(["ko", "version"]).env("PATH", &path).run();
    run.assert_success();
    assert_eq!(run.stdout.trim(), version_line(&head_commit(&workspace())));
    // kubectl prefers the longest plugin name: a `kubectl-ko-build` link is run for `kubectl ko build`.
    link_as(dir.path(), "kubectl-ko-build");
    let run = KoCmd::program(&kubectl).args(["ko", "build", "--help"]).env("PATH", &path).run();
    run.assert_success();
    assert!(run.stdout.contains("Usage: kubectl ko build"), "{run}");
}
