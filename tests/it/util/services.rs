//! The services the tests run against and where to find them: what scripts/test.sh starts
//! and exports (a registry, a Docker daemon, a kube-apiserver, krew, the SBOM validators),
//! read through [`require`], which fails the test loudly when one is missing; names that no
//! other test uses in the shared registry; and registries of a test's own ([`LocalRegistry`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{env, fs};

use super::commands::{DEFAULT_TIMEOUT, Run, capture};
use super::paths::{tool, workspace};

/// What scripts/test.sh does to provide each variable it exports, for [`require`]'s message.
const EXPORTED: &[(&str, &str)] = &[
    ("KO_TEST_REGISTRY", "starts a registry on 127.0.0.1 and exports its address"),
    ("KO_TEST_DOCKER_HOST", "starts a Docker daemon (scripts/dockerd.sh start DIR) and exports its DOCKER_HOST"),
    ("KO_TEST_KUBECONFIG", "starts kube-apiserver on 127.0.0.1 (scripts/test-cluster.sh) and exports its kubeconfig"),
    ("KO_TEST_KREW", "builds krew (scripts/krew.sh)"),
    ("KO_TEST_COSIGN", "installs cosign v3.1.1 with go install, cached"),
    ("KO_TEST_KO", "installs ko v0.19.1 with go install, cached (scripts/lib.sh ensure_ko)"),
    ("KO_TEST_SBOM_VENV", "installs the SBOM validators"),
    ("KO_TEST_CLOUD_VENV", "installs moto (the AWS mock) and the Google and Azure harness's Python"),
    ("KO_TEST_CLOUD_HOSTS", "maps the cloud registry test names to 127.0.0.1 in /etc/hosts"),
    ("KO_TEST_ACTIONLINT", "builds actionlint (scripts/release-tools.sh actionlint)"),
    ("KO_TEST_VALIDATE_KREW_MANIFEST", "builds krew's validate-krew-manifest (scripts/release-tools.sh)"),
];

/// The value of a variable that scripts/test.sh exports for the tests. A test that needs the
/// service behind it fails here, naming the variable, when it is unset or empty: it never
/// passes without testing.
#[track_caller]
pub fn require(var: &str) -> String {
    match env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => {
            let does = EXPORTED.iter().find(|(v, _)| *v == var).map_or("exports it", |(_, does)| does);
            panic!("{var} is not set: run the tests with scripts/test.sh, which {does}")
        }
    }
}

/// `host:port` of the plain-HTTP test registry started by scripts/test.sh.
pub fn registry() -> String {
    require("KO_TEST_REGISTRY")
}

/// `DOCKER_HOST` of the throw-away Docker daemon started by scripts/test.sh (scripts/dockerd.sh).
pub fn docker_host() -> String {
    require("KO_TEST_DOCKER_HOST")
}

/// The kubeconfig of the test API server started by scripts/test.sh (scripts/test-cluster.sh).
pub fn kubeconfig() -> String {
    require("KO_TEST_KUBECONFIG")
}

/// The krew binary that scripts/test.sh built (scripts/krew.sh).
pub fn krew() -> PathBuf {
    PathBuf::from(require("KO_TEST_KREW"))
}

/// The real cosign that scripts/test.sh installed (pinned, cached).
pub fn cosign() -> PathBuf {
    PathBuf::from(require("KO_TEST_COSIGN"))
}

/// ko v0.19.1 itself, which scripts/test.sh installed (pinned, cached): the reference for
/// what kubectl ko must write where no runtime here can check it (Windows images).
pub fn reference_ko() -> PathBuf {
    PathBuf::from(require("KO_TEST_KO"))
}

/// The Python venv that scripts/test.sh fills with the SBOM validators.
pub fn sbom_venv() -> PathBuf {
    PathBuf::from(require("KO_TEST_SBOM_VENV"))
}

/// The Python venv that scripts/test.sh fills with moto (`bin/moto_server`), flask and
/// cryptography for the cloud registry tests.
pub fn cloud_venv() -> PathBuf {
    PathBuf::from(require("KO_TEST_CLOUD_VENV"))
}

/// A registry name that matches a cloud's host pattern and that scripts/test.sh maps to
/// 127.0.0.1 in /etc/hosts; `suffix` picks it (`.amazonaws.com`, `-docker.pkg.dev`,
/// `.gcr.io`, `.azurecr.io`).
pub fn cloud_host(suffix: &str) -> String {
    let hosts = require("KO_TEST_CLOUD_HOSTS");
    let found = hosts.split_whitespace().find(|h| h.ends_with(suffix));
    found.unwrap_or_else(|| panic!("KO_TEST_CLOUD_HOSTS ({hosts}) has no name ending in {suffix}")).to_string()
}

/// The real kubectl: `KO_TEST_KUBECTL`, else kubectl on `PATH` or in the system directories
/// (scripts/test.sh puts one on `PATH` when none is installed). Panics when there is none.
pub fn kubectl_program() -> PathBuf {
    env::var_os("KO_TEST_KUBECTL").filter(|k| !k.is_empty()).map(PathBuf::from).unwrap_or_else(|| tool("kubectl"))
}

/// Asserts that `kubectl get ARGS...` answers that the object is not there (`NotFound`), not
/// that it failed for another reason (a cluster that is down, a kind it does not know).
#[track_caller]
pub fn assert_not_found(args: &[&str]) {
    let run = kubectl(&[&["get"], args].concat());
    run.assert_failure();
    assert!(run.stderr.contains("(NotFound)"), "expected NotFound: {run}");
}

/// The real kubectl against the test cluster.
pub fn kubectl(args: &[&str]) -> Run {
    // A fresh discovery cache each time: a cached one misses the CustomResourceDefinitions the
    // tests create, and kubectl may then map a kind to an older CRD's group.
    let cache = tempfile::tempdir().expect("create a temporary directory");
    let mut cmd = Command::new(kubectl_program());
    cmd.arg("--kubeconfig").arg(kubeconfig()).arg("--cache-dir").arg(cache.path()).args(args);
    capture(cmd, Duration::from_secs(60))
}

/// A repository in the test registry that no other test (or earlier run) uses:
/// `<registry>/<name>-<unique suffix>`, lower-cased. Use it as `KO_DOCKER_REPO`.
pub fn unique_repo(name: &str) -> String {
    format!("{}/{}", registry(), unique_name(name))
}

/// `name` sanitised for a repository path component, with a unique suffix.
pub fn unique_name(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let clean: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!(
        "{}-{}-{}-{}",
        clean.trim_matches('-'),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// A registry of a test's own (Debian's docker-registry through scripts/registry.sh), for
/// what the shared one cannot be: read-only, behind auth or TLS, or stopped mid-test. It
/// listens on port 0, so the kernel picks a free port and no other process can take it
/// between the choice and the bind; the script reads the bound port back from the
/// registry's log. Stopped on drop.
pub struct LocalRegistry {
    state: PathBuf,
    /// `127.0.0.1:PORT`
    pub host: String,
}

impl LocalRegistry {
    /// Starts a registry keeping its config, log and blobs in `state`, with
    /// scripts/registry.sh's `options` (`--htpasswd FILE`, `--tls CERT KEY`,
    /// `--token REALM SERVICE ISSUER BUNDLE`, `--readonly`). Panics with the script's output
    /// when the registry does not start.
    pub fn start(state: &Path, options: &[&str]) -> LocalRegistry {
        let mut cmd = registry_sh();
        cmd.arg("start").arg(state).arg("0").args(options);
        let run = capture(cmd, DEFAULT_TIMEOUT);
        assert!(run.success(), "could not start a registry with {options:?}:\n{run}");
        let port_file = state.join("port");
        let port = fs::read_to_string(&port_file).unwrap_or_else(|e| panic!("read {}: {e}", port_file.display()));
        LocalRegistry { state: state.to_path_buf(), host: format!("127.0.0.1:{}", port.trim()) }
    }

    /// Stops the registry now (a test that needs it gone); panics when it cannot.
    pub fn stop(&self) {
        let run = self.run_stop();
        assert!(run.success(), "could not stop the registry in {}:\n{run}", self.state.display());
    }

    fn run_stop(&self) -> Run {
        let mut cmd = registry_sh();
        cmd.arg("stop").arg(&self.state);
        capture(cmd, DEFAULT_TIMEOUT)
    }
}

impl Drop for LocalRegistry {
    /// Stops the registry unless the test already did (stopping twice is a no-op).
    fn drop(&mut self) {
        let _ = self.run_stop();
    }
}

fn registry_sh() -> Command {
    Command::new(workspace().join("scripts/registry.sh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = unique_name("Hello_World");
        let b = unique_name("Hello_World");
        assert_ne!(a, b);
        assert!(a.starts_with("hello-world-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
