//! The release archive is reproducible and small: two clean checkouts of HEAD, in different
//! directories, with different target directories and different `$CARGO_HOME` paths, each run
//! `scripts/package.sh` (a real release build of the one `kubectl-ko` executable), and the
//! archives must be the same bytes, at most 10 MB, and hold a binary that names its source
//! commit (HEAD's last commit outside krew-manifests/, so a committed manifest describes the
//! archive built at the commit that holds it).
//!
//! This is the suite's slowest test: two release builds from scratch. It runs offline
//! (`CARGO_NET_OFFLINE`): the crates are already in `$CARGO_HOME` from building the suite.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// The bound: smaller than ko's own single binary (12 MB compressed).
const MAX_ARCHIVE_BYTES: u64 = 10_000_000;
const BUILD_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

fn git(args: &[&str], dir: &Path) -> Run {
    let mut cmd = Command::new(tool("git"));
    cmd.arg("-C").arg(dir).args(args);
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    run
}

/// A clean checkout of `commit` at `dir`: committed files only, whatever the workspace holds.
fn checkout(commit: &str, dir: &Path) {
    let mut clone = Command::new(tool("git"));
    clone.args(["clone", "--quiet", "--no-checkout"]).arg(workspace()).arg(dir);
    capture(clone, DEFAULT_TIMEOUT).assert_success();
    git(&["checkout", "--quiet", "--detach", commit], dir);
}

/// `$CARGO_HOME` as the developer has it.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo"))
}

/// Runs the checkout's package.sh with its own target directory and `cargo_home`; returns the
/// archive it printed.
fn package(checkout: &Path, target: &Path, cargo_home: &Path) -> PathBuf {
    let mut cmd = Command::new(checkout.join("scripts/package.sh"));
    cmd.arg("--dist").arg(checkout.join("dist")).current_dir(checkout);
    cmd.env("CARGO_TARGET_DIR", target).env("CARGO_HOME", cargo_home).env("CARGO_NET_OFFLINE", "true");
    for var in ["SOURCE_DATE_EPOCH", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "KUBECTL_KO_COMMIT", "CARGO_BUILD_TARGET"]
    {
        cmd.env_remove(var);
    }
    let run = capture(cmd, BUILD_TIMEOUT);
    run.assert_success();
    let archive = run.stdout_lines().first().map(PathBuf::from).unwrap_or_else(|| panic!("no archive printed:\n{run}"));
    assert!(archive.starts_with(checkout) && archive.is_file(), "{run}");
    archive
}

/// A `$CARGO_HOME` at another path holding the same crates (a link to the registry), so the
/// second build names its crate sources by another absolute path, as on another machine.
fn other_cargo_home(root: &Path) -> PathBuf {
    let home = root.join("elsewhere/cargo-home");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(cargo_home().join("registry"), home.join("registry")).unwrap();
    home
}

#[test]
fn two_clean_builds_of_head_give_the_same_small_archive() {
    let commit = crate::dispatch::head_commit(&workspace());
    let root = tempfile::Builder::new().prefix("ko-package-").tempdir().unwrap();
    let (first, second) = (root.path().join("a/kubectl-ko"), root.path().join("second/checkout/of/kubectl-ko"));
    checkout(&commit, &first);
    checkout(&commit, &second);

    let one = package(&first, &root.path().join("target-a"), &cargo_home());
    let two = package(&second, &root.path().join("elsewhere/target-b"), &other_cargo_home(root.path()));
    let (bytes_one, bytes_two) = (fs::read(&one).unwrap(), fs::read(&two).unwrap());
    assert!(
        bytes_one == bytes_two,
        "two clean builds of {commit} differ: {} ({} bytes) and {} ({} bytes)",
        one.display(),
        bytes_one.len(),
        two.display(),
        bytes_two.len()
    );
    let manifest = |archive: &Path| fs::read_to_string(archive.with_file_name("ko.yaml")).unwrap();
    assert_eq!(manifest(&one), manifest(&two));
    let size = bytes_one.len() as u64;
    assert!(size <= MAX_ARCHIVE_BYTES, "the archive is {size} bytes, more than {MAX_ARCHIVE_BYTES}");
    eprintln!("archive: {} bytes, identical in both builds", size);

    // The shipped binary says what it is, and no path of either build is in it.
    let unpacked = root.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let mut tar = Command::new("tar");
    tar.arg("-xzf").arg(&one).arg("-C").arg(&unpacked);
    capture(tar, DEFAULT_TIMEOUT).assert_success();
    let binary = unpacked.join("kubectl-ko");
    let version = KoCmd::program(&binary).args(["version", "-o", "json"]).run();
    version.assert_success();
    let json: Value = serde_json::from_str(&version.stdout).unwrap_or_else(|e| panic!("{e}: {version}"));
    let source = git(&["log", "-1", "--format=%H", "--", ".", ":!krew-manifests"], &first).stdout.trim().to_string();
    assert_eq!(source.len(), 40, "{source}");
    assert_eq!(json["commit"], source.as_str(), "{version}");
    assert_eq!(json["platform"], "linux/amd64", "{version}");
    let contents = fs::read(&binary).unwrap();
    for path in [root.path().to_path_buf(), cargo_home(), workspace()] {
        let needle = path.to_string_lossy().into_owned();
        assert!(!contents.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} is in the shipped binary");
    }
}
