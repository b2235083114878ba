//! Distribution through krew: scripts/package.sh's archive (one executable) and manifest
//! install with krew v0.4.3 into a fresh KREW_ROOT, the suite works with only krew's bin
//! directory on PATH (and the tools a build needs), the other names work as the caveats link
//! them (kubectl completes `kubectl ko` through `kubectl_complete-ko`, Docker's helper answers
//! as `docker-credential-ko`), and `kubectl krew uninstall ko` leaves nothing behind.
//!
//! The archive is packaged from the debug binary the suite already built
//! (`package.sh --bin-dir`), so the test does not wait for a release build; tests/it/package.rs
//! builds the release archive.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::util::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What one run of scripts/package.sh wrote.
struct Package {
    dir: TempDir,
    archive: PathBuf,
    manifest: PathBuf,
}

impl Package {
    fn manifest_text(&self) -> String {
        fs::read_to_string(&self.manifest).expect("read the generated manifest")
    }
}

fn package() -> Package {
    let dir = tempfile::Builder::new().prefix("ko-krew-").tempdir().expect("create a temporary directory");
    // Without --manifest, the manifest goes next to the archives (dist/ko.yaml by default).
    let manifest = dir.path().join("dist/ko.yaml");
    let mut cmd = Command::new(workspace().join("scripts/package.sh"));
    cmd.arg("--bin-dir").arg(bin_dir()).arg("--dist").arg(dir.path().join("dist"));
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    let archive = PathBuf::from(run.stdout_lines().first().unwrap_or_else(|| panic!("no archive printed:\n{run}")));
    let expected = format!("kubectl-ko_{VERSION}_{}_{}.tar.gz", "linux", "amd64");
    assert_eq!(archive.file_name().and_then(|n| n.to_str()), Some(expected.as_str()), "{run}");
    assert!(run.stderr.contains("archives not built:") && run.stderr.contains("darwin/arm64"), "{run}");
    Package { dir, archive, manifest }
}

fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    run.stdout.split_whitespace().next().unwrap_or_default().to_string()
}

/// `tar -tvzf` lines of the archive.
fn listing(archive: &Path) -> Vec<String> {
    let mut cmd = Command::new("tar");
    cmd.args(["--list", "--verbose", "--numeric-owner", "--gzip", "--file"]).arg(archive);
    cmd.env("TZ", "UTC");
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    run.stdout_lines().into_iter().map(str::to_string).collect()
}

#[test]
fn the_archive_holds_one_executable_and_is_reproducible() {
    let first = package();
    let second = package();
    assert_eq!(sha256(&first.archive), sha256(&second.archive), "two packagings of the same binaries differ");

    let lines = listing(&first.archive);
    let names: Vec<&str> = lines.iter().filter_map(|l| l.split_whitespace().last()).collect();
    // krew v0.4.3 unpacks regular files only (no symlinks), so the archive holds the one
    // executable and the other names are links made after install.
    assert_eq!(names, ["LICENSE", "README.md", "kubectl-ko"], "archive entries, in order:\n{}", lines.join("\n"));
    for line in &lines {
        // -rwxr-xr-x 0/0 <size> 2023-11-14 22:13 <name>
        assert!(line.contains(" 0/0 ") && line.contains("2023-11-14 22:13"), "{line}");
        let executable = !line.ends_with("LICENSE") && !line.ends_with("README.md");
        assert!(line.starts_with(if executable { "-rwxr-xr-x" } else { "-rw-r--r--" }), "{line}");
    }
}

#[test]
fn the_manifest_names_the_archive_its_files_and_its_sha256() {
    let package = package();
    let text = package.manifest_text();
    let sha = sha256(&package.archive);
    assert!(text.contains(&format!("\n    sha256: {sha}\n")), "{text}");
    let sha_file = fs::read_to_string(package.archive.with_extension("gz.sha256")).unwrap();
    assert!(sha_file.starts_with(&sha), "{sha_file}");
    for line in [
        "apiVersion: krew.googlecontainertools.github.com/v1alpha2",
        "kind: Plugin",
        "  name: ko",
        &format!("  version: v{VERSION}"),
        "    bin: kubectl-ko",
        "        os: linux",
        "        arch: amd64",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
    }
    let files: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("    - from: ")).collect();
    assert_eq!(files, ["kubectl-ko", "LICENSE", "README.md"], "{text}");
    // The caveats link each helper name to krew's kubectl-ko link, so it survives upgrades.
    for helper in ["docker-credential-ko", "kubectl_complete-ko"] {
        assert!(text.contains(&format!("      {helper}: ")), "{helper} missing from\n{text}");
        let link = format!("      ln -sf \"$(command -v kubectl-ko)\" ~/.local/bin/{helper}\n");
        assert!(text.contains(&link), "{link:?} missing from\n{text}");
    }
    assert!(text.contains("KO_DOCKER_REPO"), "{text}");
    assert!(!text.contains('@'), "an unfilled placeholder in\n{text}");
}

/// A directory holding links to the only programs the installed suite may use besides what
/// krew installed: kubectl (which finds the plugins), krew itself (as `kubectl krew`), and
/// git for Go's version stamping. Go is reached through its own bin directory.
fn tools_dir(root: &Path) -> PathBuf {
    let tools = root.join("tools");
    fs::create_dir_all(&tools).unwrap();
    std::os::unix::fs::symlink(tool("kubectl"), tools.join("kubectl")).unwrap();
    std::os::unix::fs::symlink(tool("git"), tools.join("git")).unwrap();
    std::os::unix::fs::symlink(krew(), tools.join("kubectl-krew")).unwrap();
    tools
}

/// Every file or link under `dir`, skipping the index directory.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            if path.file_name().is_some_and(|n| n != "index") {
                found.extend(files_under(&path));
            }
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn krew_installs_a_suite_that_builds_completes_and_uninstalls_cleanly() {
    let package = package();
    let root = package.dir.path();
    let krew_root = root.join("krew");
    let tools = tools_dir(root);
    let go_dir = tool("go").parent().unwrap().to_path_buf();
    let krew_bin = krew_root.join("bin");
    let path = |extra: &[&Path]| {
        let mut dirs = vec![krew_bin.clone(), tools.clone(), go_dir.clone()];
        dirs.extend(extra.iter().map(|d| d.to_path_buf()));
        std::env::join_paths(dirs).unwrap()
    };
    let kubectl = |args: &[&str], extra: &[&Path]| {
        KoCmd::program(tools.join("kubectl")).args(args).env("KREW_ROOT", &krew_root).env("PATH", path(extra))
    };

    let install = kubectl(&["krew", "install", "--manifest"], &[])
        .arg(&package.manifest)
        .arg("--archive")
        .arg(&package.archive)
        .run();
    install.assert_success();
    assert!(install.stderr.contains("Installed plugin: ko"), "{install}");
    let store = krew_root.join("store/ko").join(format!("v{VERSION}"));
    assert_eq!(fs::read_link(krew_bin.join("kubectl-ko")).unwrap(), store.join("kubectl-ko"));
    let installed: Vec<PathBuf> = files_under(&store);
    assert_eq!(installed.len(), 3, "{installed:?}");

    let version = kubectl(&["ko", "version"], &[]).run();
    version.assert_success();
    let commit = crate::dispatch::head_commit(&workspace());
    assert_eq!(version.stdout.trim(), crate::dispatch::version_line(&commit), "{version}");

    // A real build, run the way a user would: through kubectl, the krew link and the dispatcher.
    let repo = unique_repo("krew");
    let build = kubectl(&["ko", "build", "."], &[]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    build.assert_success();
    let reference = build.stdout.trim();
    assert!(reference.starts_with(&format!("{repo}/hello-124ec4359fcc3b362d8aa16b0f28dd36@sha256:")), "{build}");
    let config = skopeo_inspect_config(reference);
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/ko-app/hello"]), "{config}");

    // The other names, linked onto PATH as the caveats say: to krew's link of kubectl-ko.
    let local_bin = root.join("local-bin");
    fs::create_dir_all(&local_bin).unwrap();
    for helper in ["kubectl_complete-ko", "docker-credential-ko"] {
        std::os::unix::fs::symlink(krew_bin.join("kubectl-ko"), local_bin.join(helper)).unwrap();
    }
    // Docker runs its helper by name from PATH.
    let helper = KoCmd::program("docker-credential-ko").arg("version").env("PATH", path(&[&local_bin])).run();
    helper.assert_success();
    assert!(helper.stdout.starts_with("docker-credential-ko (kubectl-ko)"), "{helper}");
    // Completion: kubectl asks the helper for `kubectl ko`.
    let complete = kubectl(&["__complete", "ko", "b"], &[&local_bin]).run();
    complete.assert_success();
    assert!(complete.stdout.lines().any(|l| l.starts_with("build\t")), "{complete}");
    assert_eq!(complete.stdout.lines().last(), Some(":4"), "{complete}");
    let flags = kubectl(&["__complete", "ko", "build", "--plat"], &[&local_bin]).run();
    assert!(flags.stdout.lines().any(|l| l.starts_with("--platform\t")), "{flags}");

    let uninstall_index = krew_root.join("index/default");
    // `kubectl krew uninstall` insists on a cloned plugin index, which needs the network; an
    // empty git repository stands in for it.
    let init = capture(
        {
            let mut git = Command::new(tool("git"));
            git.arg("init").arg("--quiet").arg(&uninstall_index);
            git
        },
        DEFAULT_TIMEOUT,
    );
    init.assert_success();
    let uninstall = kubectl(&["krew", "uninstall", "ko"], &[]).run();
    uninstall.assert_success();
    assert!(!local_bin.join("docker-credential-ko").exists(), "the user's links dangle once the plugin is gone");
    assert_eq!(files_under(&krew_root), Vec::<PathBuf>::new(), "krew left files behind");
    assert!(!krew_root.join("store/ko").exists() && !krew_root.join("receipts/ko.yaml").exists());
}

#[test]
fn the_bash_completion_script_parses_and_completes_subcommand_flags() {
    let script = kubectl_ko(&["completion", "bash"]).run();
    script.assert_success();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubectl-ko.bash");
    fs::write(&file, &script.stdout).unwrap();

    let syntax = capture(
        {
            let mut bash = Command::new("bash");
            bash.arg("-n").arg(&file);
            bash
        },
        DEFAULT_TIMEOUT,
    );
    syntax.assert_success();

    // What bash does on `kubectl-ko build --plat<TAB>`.
    let probe = r#"source "$1"
complete -p kubectl-ko kubectl-ko-build >/dev/null || exit 3
COMP_WORDS=(kubectl-ko build --plat); COMP_CWORD=2
_kubectl_ko kubectl-ko --plat build
printf '%s\n' "${COMPREPLY[@]}""#;
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(probe).arg("bash").arg(&file);
    let run = capture(bash, DEFAULT_TIMEOUT);
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["--platform"], "{run}");
}

#[test]
fn the_completion_helper_offers_every_subcommand() {
    let run = KoCmd::new("kubectl_complete-ko").arg("").run();
    run.assert_success();
    let names: Vec<&str> = run.stdout.lines().filter_map(|l| l.split('\t').next()).collect();
    for name in
        ["build", "resolve", "apply", "create", "run", "delete", "login", "logout", "version", "completion", ":4"]
    {
        assert!(names.contains(&name), "{name} missing:\n{run}");
    }
    let via_dispatcher = kubectl_ko(&["__complete", ""]).run();
    assert_eq!(via_dispatcher.stdout, run.stdout);
}
