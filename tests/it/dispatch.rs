//! The `kubectl-ko` dispatcher: subcommands run their sibling binaries, from a symlink too.

use crate::util::*;

#[test]
fn version_and_help_are_answered_by_the_dispatcher() {
    let run = kubectl_ko(&["version"]).run();
    run.assert_success();
    assert_eq!(run.stdout.trim(), env!("CARGO_PKG_VERSION"));
    let help = kubectl_ko(&["help"]).run();
    assert!(help.stdout.contains("build"), "{help}");
}

#[test]
fn build_and_its_publish_alias_run_through_a_symlinked_dispatcher() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl-ko");
    std::os::unix::fs::symlink(bin("kubectl-ko"), &link).unwrap();
    for sub in ["build", "publish"] {
        let run = KoCmd::program(&link).args([sub, ".", "--push=false"]).cwd(fixture("hello")).run();
        run.assert_success();
        assert!(run.stdout.contains("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");
    }
}

#[test]
fn a_missing_sibling_binary_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("kubectl-ko");
    std::fs::copy(bin("kubectl-ko"), &lonely).unwrap();
    let run = KoCmd::program(&lonely).args(["build", "."]).run();
    run.assert_failure();
    assert!(run.stderr.contains("kubectl-ko-build"), "{run}");
    assert!(run.stderr.contains(dir.path().to_str().unwrap()), "{run}");
}

#[test]
fn kubectl_finds_the_plugin_on_path() {
    let kubectl = kubectl_program();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin("kubectl-ko"), dir.path().join("kubectl-ko")).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let run = KoCmd::program(kubectl).args(["ko", "version"]).env("PATH", path).run();
    run.assert_success();
    assert_eq!(run.stdout.trim(), env!("CARGO_PKG_VERSION"));
}
