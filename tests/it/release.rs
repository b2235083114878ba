//! The release pipeline, as far as it runs here: the GitHub Actions workflows in
//! .github/workflows pass actionlint (with shellcheck over their scripts) and build the four
//! platforms krew users run; the krew manifest that scripts/package.sh renders passes krew's
//! own validator, which installs its archive with krew (scripts/validate-manifest.sh, the
//! script the release workflow runs), and has one platform entry per archive with that
//! archive's sha256.
//!
//! The archive is packaged from the debug binaries the suite already built
//! (`package.sh --bin-dir`), so the tests do not wait for a release build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::util::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The platforms krew users run, as package.sh names their archives, with cargo's target.
const PLATFORMS: [(&str, &str, &str); 4] = [
    ("linux", "amd64", "x86_64-unknown-linux-gnu"),
    ("linux", "arm64", "aarch64-unknown-linux-gnu"),
    ("darwin", "amd64", "x86_64-apple-darwin"),
    ("darwin", "arm64", "aarch64-apple-darwin"),
];

// --- workflows ------------------------------------------------------------------------

fn workflows_dir() -> PathBuf {
    workspace().join(".github/workflows")
}

/// Every workflow file, sorted.
fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(workflows_dir())
        .expect("read .github/workflows")
        .map(|entry| entry.expect("read .github/workflows").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

fn workflow(name: &str) -> Value {
    let path = workflows_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// actionlint over FILES, with shellcheck checking every `run:` script.
fn actionlint(files: &[PathBuf]) -> Run {
    let mut cmd = Command::new(require("KO_TEST_ACTIONLINT"));
    cmd.arg("-no-color").arg("-shellcheck").arg(tool("shellcheck")).arg("-pyflakes=").args(files);
    cmd.current_dir(workspace());
    capture(cmd, DEFAULT_TIMEOUT)
}

#[test]
fn the_workflows_pass_actionlint() {
    let files = workflow_files();
    let names: Vec<_> = files.iter().filter_map(|p| p.file_name()?.to_str()).collect();
    assert!(names.contains(&"ci.yml") && names.contains(&"release.yml"), "{names:?}");
    let run = actionlint(&files);
    run.assert_success();
    assert_eq!(run.stdout, "", "{run}");
}

#[test]
fn actionlint_catches_an_unknown_runner_and_a_shell_mistake() {
    // The check above can fail: a retired runner label and an unquoted variable are errors.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yml");
    let broken = "on: push\njobs:\n  build:\n    runs-on: macos-13\n    steps:\n      - run: ls $HOME/*.txt\n";
    fs::write(&file, broken).unwrap();
    let run = actionlint(&[file]);
    run.assert_failure();
    assert!(run.stdout.contains(r#"label "macos-13" is unknown"#), "{run}");
    assert!(run.stdout.contains("SC2086"), "shellcheck did not run:\n{run}");
}

/// The `run:` scripts of a job's steps.
fn run_scripts(job: &Value) -> Vec<&str> {
    job["steps"].as_array().into_iter().flatten().filter_map(|s| s["run"].as_str()).collect()
}

#[test]
fn ci_runs_the_test_command_on_linux_and_builds_on_macos() {
    let ci = workflow("ci.yml");
    let on = &ci["on"];
    assert!(on.get("push").is_some() && on.get("pull_request").is_some(), "{on}");
    let jobs: Vec<&Value> = ci["jobs"].as_object().expect("jobs").values().collect();
    let runs_on = |job: &Value| job["runs-on"].as_str().unwrap_or_default().to_string();

    let linux = jobs.iter().find(|j| runs_on(j).starts_with("ubuntu-")).expect("a Linux job");
    assert!(run_scripts(linux).contains(&"scripts/test.sh"), "{linux}");
    // scripts/test.sh installs Debian packages and starts a Docker daemon: root, in Debian.
    assert_eq!(linux["container"]["image"], "debian:bookworm", "{linux}");
    assert_eq!(linux["container"]["options"], "--privileged", "{linux}");

    let macos = jobs.iter().find(|j| runs_on(j).starts_with("macos-")).expect("a macOS job");
    assert!(run_scripts(macos).iter().any(|r| r.starts_with("cargo build --workspace")), "{macos}");
}

#[test]
fn the_release_workflow_packages_the_four_platforms_on_a_version_tag() {
    let release = workflow("release.yml");
    assert_eq!(release["on"]["push"]["tags"], serde_json::json!(["v[0-9]+.[0-9]+.[0-9]+"]));
    let archive = &release["jobs"]["archive"];
    let matrix = archive["strategy"]["matrix"]["include"].as_array().expect("a matrix of platforms");
    let mut built: Vec<(&str, &str, &str)> = matrix
        .iter()
        .map(|m| (m["os"].as_str().unwrap(), m["arch"].as_str().unwrap(), m["target"].as_str().unwrap()))
        .collect();
    built.sort();
    let mut expected = PLATFORMS.to_vec();
    expected.sort();
    assert_eq!(built, expected);
    for entry in matrix {
        // Native runners: macOS archives are built on macOS, Linux arm64 on an arm64 runner.
        let runner = entry["runner"].as_str().unwrap();
        let native = match (entry["os"].as_str().unwrap(), entry["arch"].as_str().unwrap()) {
            ("linux", "amd64") => runner.starts_with("ubuntu-") && !runner.ends_with("-arm"),
            ("linux", "arm64") => runner.starts_with("ubuntu-") && runner.ends_with("-arm"),
            ("darwin", "amd64") => runner.starts_with("macos-") && runner.ends_with("-intel"),
            _ => runner.starts_with("macos-") && !runner.ends_with("-intel"),
        };
        assert!(native, "{entry}");
    }
    assert!(run_scripts(archive).iter().any(|r| r.starts_with("scripts/package.sh --target \"$TARGET\"")));

    let publish = run_scripts(&release["jobs"]["publish"]).join("\n");
    let steps =
        ["scripts/package.sh --manifest-only", "scripts/validate-manifest.sh --archives dist", "gh release create"];
    for step in steps {
        assert!(publish.contains(step), "{step} missing from the publish job:\n{publish}");
    }
}

// --- the krew manifest ----------------------------------------------------------------

/// What one run of scripts/package.sh wrote.
struct Dist {
    _dir: TempDir,
    dist: PathBuf,
}

impl Dist {
    fn manifest(&self) -> PathBuf {
        self.dist.join("ko.yaml")
    }

    /// The archives, sorted by name.
    fn archives(&self) -> Vec<PathBuf> {
        let mut archives: Vec<PathBuf> = fs::read_dir(&self.dist)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .collect();
        archives.sort();
        archives
    }
}

/// scripts/package.sh on the debug binaries, into a fresh dist directory.
fn package() -> Dist {
    let dir = tempfile::Builder::new().prefix("ko-release-").tempdir().expect("create a temporary directory");
    let dist = dir.path().join("dist");
    let mut cmd = Command::new(workspace().join("scripts/package.sh"));
    cmd.arg("--bin-dir").arg(bin_dir()).arg("--dist").arg(&dist);
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    capture(cmd, DEFAULT_TIMEOUT).assert_success();
    Dist { _dir: dir, dist }
}

/// scripts/validate-manifest.sh --archives DIR MANIFEST with the tools scripts/test.sh built.
fn validate(archives: &Path, manifest: &Path) -> Run {
    let mut cmd = Command::new(workspace().join("scripts/validate-manifest.sh"));
    cmd.arg("--archives").arg(archives).arg(manifest);
    cmd.env("KO_VALIDATE_KREW_MANIFEST", require("KO_TEST_VALIDATE_KREW_MANIFEST")).env("KO_KREW", krew());
    // kubectl runs `kubectl krew`; the validator finds it on PATH.
    let kubectl_dir = kubectl_program().parent().expect("kubectl's directory").to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(kubectl_dir).chain(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    capture(cmd, DEFAULT_TIMEOUT)
}

fn sha256_hex(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn krews_validator_accepts_the_manifest_and_installs_its_archive() {
    let dist = package();
    let run = validate(&dist.dist, &dist.manifest());
    run.assert_success();
    assert!(run.stderr.contains("structural validation OK"), "{run}");
    let installed = format!("all {} spec.platforms installed fine", dist.archives().len());
    assert!(run.stderr.contains(&installed), "{run}");

    // The install step checks the sha256: a manifest that names another digest is refused.
    let text = fs::read_to_string(dist.manifest()).unwrap();
    let sha = sha256_hex(&dist.archives()[0]);
    let wrong: String = sha.chars().rev().collect();
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("ko.yaml"), text.replace(&sha, &wrong)).unwrap();
    let refused = validate(&dist.dist, &other.path().join("ko.yaml"));
    refused.assert_failure();
    assert!(refused.stderr.contains("checksum does not match"), "{refused}");
}

#[test]
fn the_manifest_has_a_platform_entry_per_archive_with_its_sha256() {
    let dist = package();
    let text = fs::read_to_string(dist.manifest()).unwrap();
    let manifest: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"));
    let spec = &manifest["spec"];

    let archives = dist.archives();
    let platforms = spec["platforms"].as_array().expect("spec.platforms");
    assert!(!archives.is_empty());
    assert_eq!(platforms.len(), archives.len(), "one platform entry per archive:\n{text}");
    for archive in &archives {
        let name = archive.file_name().unwrap().to_str().unwrap();
        let (os, arch) = name
            .strip_prefix(&format!("kubectl-ko_{VERSION}_"))
            .and_then(|rest| rest.strip_suffix(".tar.gz")?.split_once('_'))
            .unwrap_or_else(|| panic!("archive named {name}, not kubectl-ko_{VERSION}_<os>_<arch>.tar.gz"));
        assert!(PLATFORMS.iter().any(|p| (p.0, p.1) == (os, arch)), "{name} is not a platform krew users run");
        let suffix = format!("/releases/download/v{VERSION}/{name}");
        let entry = platforms
            .iter()
            .find(|p| p["uri"].as_str().is_some_and(|u| u.starts_with("https://") && u.ends_with(&suffix)))
            .unwrap_or_else(|| panic!("no platform entry downloads {name} from a release:\n{text}"));
        assert_eq!(entry["sha256"].as_str(), Some(sha256_hex(archive).as_str()), "{name}");
        assert_eq!(entry["selector"], serde_json::json!({ "matchLabels": { "os": os, "arch": arch } }), "{name}");
        assert_eq!(entry["bin"], "kubectl-ko");
        let checksum = fs::read_to_string(archive.with_extension("gz.sha256")).unwrap();
        assert_eq!(checksum, format!("{}  {name}\n", sha256_hex(archive)));
    }

    assert_eq!(manifest["metadata"]["name"], "ko");
    assert_eq!(spec["version"].as_str(), Some(format!("v{VERSION}").as_str()));
    assert!(spec["homepage"].as_str().is_some_and(|h| h.starts_with("https://")), "{text}");
    let short = spec["shortDescription"].as_str().unwrap_or_default();
    assert!(!short.is_empty() && !short.contains('\n'), "{text}");
    assert!(spec["description"].as_str().is_some_and(|d| d.contains("kubectl ko build")), "{text}");
    // The helpers krew does not put on PATH, and how to link them there.
    let caveats = spec["caveats"].as_str().unwrap_or_default();
    for needed in ["docker-credential-ko", "kubectl_complete-ko", "ln -s"] {
        assert!(caveats.contains(needed), "{needed} missing from the caveats:\n{caveats}");
    }
}

/// The release workflow's own steps, for the platform of this machine: one archive job
/// (`package.sh --target TRIPLE`), then the publish job (`--manifest-only --url-base` over the
/// collected archives, the checksums, krew's validator installing every entry). A triple that
/// is not one of the four is refused.
#[test]
fn the_release_jobs_steps_run_here_for_this_platform() {
    let os = if cfg!(target_os = "macos") { "darwin" } else { "linux" };
    let arch = if cfg!(target_arch = "x86_64") { "amd64" } else { "arm64" };
    let (_, _, target) = PLATFORMS
        .iter()
        .copied()
        .find(|p| (p.0, p.1) == (os, arch))
        .expect("this machine's platform is one of the four");
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let script = workspace().join("scripts/package.sh");
    let mut archive_job = Command::new(&script);
    archive_job.args(["--target", target, "--bin-dir"]).arg(bin_dir()).arg("--dist").arg(&dist);
    capture(archive_job, DEFAULT_TIMEOUT).assert_success();
    let name = format!("kubectl-ko_{VERSION}_{os}_{arch}.tar.gz");
    assert!(dist.join(&name).is_file(), "the archive job wrote no {name}");

    let url_base = "https://github.example/kubectl-ko/kubectl-ko/releases/download/v9.9.9";
    fs::remove_file(dist.join("ko.yaml")).unwrap();
    let mut publish_job = Command::new(&script);
    publish_job.args(["--manifest-only", "--url-base", url_base, "--dist"]).arg(&dist);
    capture(publish_job, DEFAULT_TIMEOUT).assert_success();
    let text = fs::read_to_string(dist.join("ko.yaml")).unwrap();
    assert!(text.contains(&format!("uri: {url_base}/{name}")), "{text}");
    assert!(text.contains(&format!("sha256: {}", sha256_hex(&dist.join(&name)))), "{text}");

    let mut check = Command::new("sha256sum");
    check.args(["--check", "--strict"]).arg(format!("{name}.sha256")).current_dir(&dist);
    capture(check, DEFAULT_TIMEOUT).assert_success();
    validate(&dist, &dist.join("ko.yaml")).assert_success();

    let mut unknown = Command::new(&script);
    unknown.args(["--target", "riscv64gc-unknown-linux-gnu", "--dist"]).arg(dir.path().join("other"));
    let refused = capture(unknown, DEFAULT_TIMEOUT);
    refused.assert_failure();
    assert!(refused.stderr.contains("is not one of the platforms krew users run"), "{refused}");
}
