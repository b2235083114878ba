//! Embeds the git commit the binary is built from as `KUBECTL_KO_COMMIT`, for
//! `kubectl ko version`: `git rev-parse HEAD` in a git checkout, `unknown` elsewhere (a crate
//! tarball). `KUBECTL_KO_COMMIT` in the build's environment overrides it. The commit depends
//! only on the checkout, so two builds of one commit embed the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=KUBECTL_KO_COMMIT");
    let commit = match std::env::var("KUBECTL_KO_COMMIT") {
        Ok(commit) if !commit.is_empty() => commit,
        _ => git_commit().unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo::rustc-env=KUBECTL_KO_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git").args(args).current_dir(manifest_dir).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// HEAD's commit, and the files whose change moves it watched so that a new commit re-runs
/// this script (only files that exist: cargo re-runs a script on every build for a missing one).
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "HEAD"])?;
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common_dir =
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]).map_or(git_dir.clone(), PathBuf::from);
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(&branch));
        watched.push(git_dir.join(&branch));
    }
    for file in watched.iter().filter(|f| Path::new(f).is_file()) {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    Some(commit)
}
