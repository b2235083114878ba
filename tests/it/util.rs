//! Helpers for the end-to-end tests: where the built binaries, the fixtures and the
//! test registry are; running a binary in an isolated environment; inspecting and
//! running images.
//!
//! Images run the way a user would run them, with no daemon and no network access:
//! `skopeo copy` puts the image into an OCI layout, `umoci unpack` turns it into a
//! runtime bundle whose `config.json` comes from the image config (entrypoint, cmd, env,
//! user, working directory), and `runc run` runs it in its own namespaces (its network
//! namespace has only loopback, like `docker run --network=none`). Needs root, as
//! `scripts/test.sh` runs on CI.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a command may run before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a container may run.
pub const IMAGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Variables removed from the inherited environment of every [`KoCmd`]: they would
/// change what the tool does, and the developer's values must not leak into tests.
pub const REMOVED_ENV: &[&str] = &[
    "KO_DOCKER_REPO",
    "COSIGN_REPOSITORY",
    "KO_CONFIG_PATH",
    "KO_DEFAULTBASEIMAGE",
    "KO_DEFAULTPLATFORMS",
    "KO_DATA_DATE_EPOCH",
    "KO_DATA_PATH_ALLOWED_ROOT",
    "KO_GO_PATH",
    "KO_FLAGS",
    "KOCACHE",
    "KIND_CLUSTER_NAME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "KUBECONFIG",
    "DOCKER_CONFIG",
    "DOCKER_AUTH_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "GITHUB_TOKEN",
    "GITHUB_ACTOR",
    "SSL_CERT_FILE",
    "XDG_CONFIG_HOME",
    "SOURCE_DATE_EPOCH",
    "GOOS",
    "GOARCH",
    "GOARM",
    "GOFLAGS",
];

/// Go settings pinned to the developer's real values when not already in the
/// environment, because a fresh `HOME` would otherwise change them (Go's env file and
/// its default caches live under `HOME`). Keeps Go's build and module caches shared.
const GO_PINNED: &[&str] = &[
    "GOCACHE",
    "GOMODCACHE",
    "GOPATH",
    "GOPROXY",
    "GOSUMDB",
    "GONOSUMDB",
    "GONOPROXY",
    "GOPRIVATE",
    "GOINSECURE",
    "GOTOOLCHAIN",
];

// ---------------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------------

/// The workspace root (the parent of the `tests/` crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate has a parent directory").to_path_buf()
}

/// The directory holding the built debug binaries: `KO_TEST_BIN_DIR` (exported by
/// scripts/test.sh), else `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = env::var_os("KO_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => workspace().join(dir).join("debug"),
        None => workspace().join("target").join("debug"),
    }
}

/// One of the suite's binaries, e.g. `bin("kubectl-ko-build")`.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(format!("{name}{}", env::consts::EXE_SUFFIX))
}

/// `host:port` of the plain-HTTP test registry started by scripts/test.sh.
pub fn registry() -> String {
    match env::var("KO_TEST_REGISTRY") {
        Ok(r) if !r.is_empty() => r,
        _ => panic!(
            "KO_TEST_REGISTRY is not set: run the tests with scripts/test.sh, which starts \
             a registry on 127.0.0.1 and exports its address"
        ),
    }
}

/// `DOCKER_HOST` of the throw-away Docker daemon started by scripts/test.sh (scripts/dockerd.sh).
pub fn docker_host() -> String {
    match env::var("KO_TEST_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => panic!(
            "KO_TEST_DOCKER_HOST is not set: run the tests with scripts/test.sh, which starts a \
             Docker daemon (scripts/dockerd.sh start DIR) and exports its DOCKER_HOST"
        ),
    }
}

/// The docker CLI against the test daemon (no isolation; stdin is /dev/null).
pub fn docker(args: &[&str]) -> Run {
    let mut cmd = Command::new(tool("docker"));
    cmd.env("DOCKER_HOST", docker_host()).env_remove("DOCKER_CONTEXT").args(args);
    capture(cmd, DEFAULT_TIMEOUT)
}

/// The kubeconfig of the test API server started by scripts/test.sh (scripts/test-cluster.sh).
pub fn kubeconfig() -> String {
    match env::var("KO_TEST_KUBECONFIG") {
        Ok(k) if !k.is_empty() => k,
        _ => panic!(
            "KO_TEST_KUBECONFIG is not set: run the tests with scripts/test.sh, which starts \
             kube-apiserver on 127.0.0.1 (scripts/test-cluster.sh) and exports its kubeconfig"
        ),
    }
}

/// The real kubectl against the test cluster (KO_TEST_KUBECTL, else kubectl on PATH).
pub fn kubectl(args: &[&str]) -> Run {
    let program = env::var("KO_TEST_KUBECTL").map(PathBuf::from).unwrap_or_else(|_| tool("kubectl"));
    // A fresh discovery cache each time: a cached one misses the CustomResourceDefinitions the
    // tests create, and kubectl may then map a kind to an older CRD's group.
    let cache = tempfile::tempdir().expect("create a temporary directory");
    let mut cmd = Command::new(program);
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

/// A fixture app: `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests").join("fixtures").join(name)
}

/// A program on `PATH`, or in the system directories that a non-login `PATH` may lack
/// (runc is in /usr/sbin on Debian). Panics with an install hint.
pub fn tool(name: &str) -> PathBuf {
    let path = env::var_os("PATH").unwrap_or_default();
    let system = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    env::split_paths(&path)
        .chain(system.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: scripts/test.sh installs the test tools (skopeo, umoci, runc, ...)")
        })
}

// ---------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------

/// The result of a finished command. `Display` shows everything, for assertion messages.
#[derive(Debug, Clone)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing the output, unless the command exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success, got:\n{self}");
        self
    }

    /// Panics, showing the output, if the command exited 0.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.success(), "expected failure, got:\n{self}");
        self
    }

    /// Non-empty stdout lines, trimmed.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
    }

    /// The value of the first `key=value` line of stdout (as the hello fixture prints).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.stdout.lines().find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// Run one of the suite's commands: `ko(&["build", "./cmd/app"])` runs
/// `kubectl-ko-build ./cmd/app` (likewise `resolve`, `apply`, `delete`); any other first
/// argument runs the `kubectl-ko` dispatcher with all the arguments (`version`, `login`,
/// `publish`, ...). Use [`kubectl_ko`] to go through the dispatcher for every subcommand.
pub fn ko(args: &[&str]) -> KoCmd {
    match args.split_first() {
        Some((&sub, rest)) if matches!(sub, "build" | "resolve" | "apply" | "create" | "run" | "delete") => {
            KoCmd::new(&format!("kubectl-ko-{sub}")).args(rest)
        }
        _ => kubectl_ko(args),
    }
}

/// Run the `kubectl-ko` dispatcher with these arguments, as `kubectl ko ...` does.
pub fn kubectl_ko(args: &[&str]) -> KoCmd {
    KoCmd::new("kubectl-ko").args(args)
}

/// A command to run with an isolated environment.
///
/// Every `KoCmd` gets its own temporary `HOME` and `XDG_CACHE_HOME` (so no credential,
/// config or cache leaks between tests or from the developer), and the variables in
/// [`REMOVED_ENV`] are dropped. `PATH` and Go's settings are kept, and Go's caches are
/// pinned to the real ones so builds stay fast. The test's own `.env()` calls win over
/// all of this, including `HOME`.
pub struct KoCmd {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    envs: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    sandbox: TempDir,
}

impl KoCmd {
    /// One of the suite's binaries, by name (see [`bin`]).
    pub fn new(binary_name: &str) -> Self {
        Self::program(bin(binary_name))
    }

    /// Any program (a path, or a name looked up on `PATH`), with the same isolation.
    pub fn program(program: impl AsRef<Path>) -> Self {
        let sandbox = tempfile::Builder::new().prefix("ko-e2e-").tempdir().expect("create a temporary directory");
        for sub in ["home", "cache"] {
            fs::create_dir_all(sandbox.path().join(sub)).expect("create sandbox directories");
        }
        KoCmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            cwd: None,
            envs: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            sandbox,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The working directory (default: the test process's, i.e. the tests crate).
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_os_string(), Some(value.as_ref().to_os_string())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_os_string(), None));
        self
    }

    /// Bytes fed to standard input (default: none; stdin is /dev/null).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `HOME` the command will see: the test's override, else the sandbox's. Write
    /// files there (e.g. `.docker/config.json`) before `run()`.
    pub fn home(&self) -> PathBuf {
        self.overridden("HOME").map(PathBuf::from).unwrap_or_else(|| self.sandbox.path().join("home"))
    }

    /// A scratch directory that lives as long as this command (for outputs, layouts...).
    pub fn scratch(&self) -> PathBuf {
        let dir = self.sandbox.path().join("scratch");
        fs::create_dir_all(&dir).expect("create scratch directory");
        dir
    }

    fn overridden(&self, key: &str) -> Option<OsString> {
        self.envs.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| v.clone())
    }

    /// The `std::process::Command` that `run()` executes (stdio not yet set).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for key in REMOVED_ENV {
            cmd.env_remove(key);
        }
        cmd.env("HOME", self.sandbox.path().join("home"));
        cmd.env("XDG_CACHE_HOME", self.sandbox.path().join("cache"));
        for (key, value) in go_pinned_env() {
            if env::var_os(key).is_none() {
                cmd.env(key, value);
            }
        }
        for (key, value) in &self.envs {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Run to completion (killed after the timeout) and collect the output.
    pub fn run(&self) -> Run {
        let mut cmd = self.command();
        let what = self.describe();
        let child = cmd
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                let hint = if self.program.starts_with(bin_dir()) {
                    " (build the binaries first: scripts/test.sh, or cargo build --workspace --bins)"
                } else {
                    ""
                };
                panic!("cannot start {what}: {e}{hint}")
            });
        wait_with_output(child, self.stdin.clone(), self.timeout, &what)
    }

    fn describe(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// Run a plain command (no isolation) with stdin from /dev/null and collect its output.
pub fn capture(mut cmd: Command, timeout: Duration) -> Run {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_with_output(child, None, timeout, &what)
}

fn wait_with_output(mut child: Child, stdin: Option<Vec<u8>>, timeout: Duration, what: &str) -> Run {
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
            // The child may exit without reading everything: ignore EPIPE.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("wait for child process") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Run { status, stdout, stderr },
        None => panic!(
            "{what} did not finish within {timeout:?}; killed.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Go's settings from [`GO_PINNED`] as the developer's real environment has them
/// (`go env`, run once with the original `HOME`); empty when Go is missing.
pub fn go_pinned_env() -> &'static BTreeMap<String, String> {
    static GO_ENV: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    GO_ENV.get_or_init(|| {
        let mut cmd = Command::new("go");
        cmd.arg("env").arg("-json").args(GO_PINNED);
        let out = match cmd.stderr(Stdio::null()).stdin(Stdio::null()).output() {
            Ok(out) if out.status.success() => out,
            _ => return BTreeMap::new(),
        };
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        json.as_object()
            .map(|obj| {
                obj.iter()
                    .filter_map(|(k, v)| {
                        let v = v.as_str()?;
                        (!v.is_empty()).then(|| (k.clone(), v.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
}

// ---------------------------------------------------------------------------------
// Inspecting images
// ---------------------------------------------------------------------------------

const TRANSPORTS: &[&str] =
    &["docker://", "oci:", "oci-archive:", "docker-archive:", "docker-daemon:", "dir:", "containers-storage:"];

/// A skopeo image name: the reference itself when it names a transport (`oci:DIR`,
/// `docker-archive:FILE`...), else `docker://REFERENCE`.
pub fn skopeo_name(reference: &str) -> String {
    if TRANSPORTS.iter().any(|t| reference.starts_with(t)) {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    }
}

/// Run skopeo with these arguments (no isolation; stdin is /dev/null).
pub fn skopeo(args: &[&str]) -> Run {
    let mut cmd = Command::new(tool("skopeo"));
    cmd.args(args);
    capture(cmd, DEFAULT_TIMEOUT)
}

fn skopeo_json(flag: Option<&str>, reference: &str) -> Value {
    let name = skopeo_name(reference);
    let mut args = vec!["inspect"];
    if name.starts_with("docker://") {
        args.push("--tls-verify=false");
    }
    args.extend(flag);
    args.push(&name);
    let run = skopeo(&args);
    assert!(run.success(), "skopeo {} failed:\n{run}", args.join(" "));
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("skopeo {} printed invalid JSON ({e}):\n{run}", args.join(" ")))
}

/// Copies an image or index between test registry references, converting it to Docker
/// schema 2 media types (every platform of an index).
pub fn copy_as_docker_v2s2(from: &str, to: &str) {
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &skopeo_name(from),
        &skopeo_name(to),
    ])
    .assert_success();
}

/// `skopeo inspect [--raw]` of an image: with `raw`, the manifest or index exactly as
/// stored; without, skopeo's summary (Digest, Layers, Env, Architecture...). Plain
/// registry references get `docker://` and `--tls-verify=false`. Panics on failure.
pub fn skopeo_inspect(reference: &str, raw: bool) -> Value {
    skopeo_json(raw.then_some("--raw"), reference)
}

/// The image's config blob (`skopeo inspect --config`): `config.Entrypoint`,
/// `config.Env`, `config.User`, `history`, ...
pub fn skopeo_inspect_config(reference: &str) -> Value {
    skopeo_json(Some("--config"), reference)
}

// ---------------------------------------------------------------------------------
// Running images
// ---------------------------------------------------------------------------------

/// Run an image with its own entrypoint, cmd and user. Plain references are pulled from
/// the (plain HTTP) test registry; an index yields the host's platform.
pub fn run_image(reference: &str) -> Run {
    run_image_with(reference, &[], None)
}

/// Run an image like `docker run [--user USER] IMAGE [ARGS...]`: non-empty `args`
/// replace the image's cmd (the entrypoint stays); `user` is `uid`, `uid:gid`, `name` or
/// `name:group` (names from the image's /etc/passwd and /etc/group).
pub fn run_image_with(reference: &str, args: &[&str], user: Option<&str>) -> Run {
    run_registry_image(reference, args, user, true)
}

/// [`run_image_with`] without `noNewPrivileges`, so the kernel grants the binary's file
/// capabilities (`security.capability`) on exec, as a plain `docker run` does.
pub fn run_image_with_file_caps(reference: &str, user: Option<&str>) -> Run {
    run_registry_image(reference, &[], user, false)
}

fn run_registry_image(reference: &str, args: &[&str], user: Option<&str>, no_new_privileges: bool) -> Run {
    let work = work_dir();
    let layout = work.path().join("layout");
    let name = skopeo_name(reference);
    let dest = format!("oci:{}:img", layout.display());
    let mut copy = vec!["copy", "--quiet"];
    if name.starts_with("docker://") {
        copy.push("--src-tls-verify=false");
    }
    copy.extend([name.as_str(), dest.as_str()]);
    let run = skopeo(&copy);
    assert!(run.success(), "skopeo {} failed:\n{run}", copy.join(" "));
    run_bundle(work.path(), &layout, args, user, no_new_privileges)
}

/// Run the image with this digest (a manifest or an index; `sha256:...`, or anything
/// ending in `@sha256:...`) from an OCI image layout directory on disk.
pub fn run_layout_image(layout_dir: &Path, digest: &str) -> Run {
    run_layout_image_with(layout_dir, digest, &[], None)
}

/// [`run_layout_image`] with [`run_image_with`]'s arguments and user.
pub fn run_layout_image_with(layout_dir: &Path, digest: &str, args: &[&str], user: Option<&str>) -> Run {
    let digest = digest.rsplit('@').next().unwrap_or(digest);
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    let blobs = fs::canonicalize(layout_dir.join("blobs"))
        .unwrap_or_else(|e| panic!("{} is not an OCI layout: {e}", layout_dir.display()));
    let blob = fs::read(blobs.join("sha256").join(hex))
        .unwrap_or_else(|e| panic!("{digest} is not in {}: {e}", layout_dir.display()));
    let doc: Value = serde_json::from_slice(&blob)
        .unwrap_or_else(|e| panic!("{digest} in {} is not JSON: {e}", layout_dir.display()));
    let media_type = doc["mediaType"].as_str().map(str::to_string).unwrap_or_else(|| {
        if doc.get("manifests").is_some() {
            "application/vnd.oci.image.index.v1+json".into()
        } else {
            "application/vnd.oci.image.manifest.v1+json".into()
        }
    });

    // A one-entry view of the layout that names the digest "img", sharing its blobs;
    // skopeo then picks the host's platform from an index and converts Docker media
    // types to OCI for umoci.
    let work = work_dir();
    let view = work.path().join("view");
    fs::create_dir_all(&view).expect("create layout view");
    fs::write(view.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": blob.len(),
            "annotations": {"org.opencontainers.image.ref.name": "img"},
        }],
    });
    fs::write(view.join("index.json"), index.to_string()).expect("write index.json");
    symlink_dir(&blobs, &view.join("blobs"));

    let layout = work.path().join("layout");
    let src = format!("oci:{}:img", view.display());
    let dest = format!("oci:{}:img", layout.display());
    let run = skopeo(&["copy", "--quiet", &src, &dest]);
    assert!(run.success(), "skopeo copy {src} {dest} failed:\n{run}");
    run_bundle(work.path(), &layout, args, user, true)
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink blobs");
}

#[cfg(not(unix))]
fn symlink_dir(_target: &Path, _link: &Path) {
    panic!("running images needs Linux (runc)");
}

fn work_dir() -> TempDir {
    tempfile::Builder::new().prefix("ko-e2e-run-").tempdir().expect("create a temporary directory")
}

/// Unpack `layout:img` into a runtime bundle under `work`, adjust its config, run it.
fn run_bundle(work: &Path, layout: &Path, args: &[&str], user: Option<&str>, no_new_privileges: bool) -> Run {
    let bundle = work.join("bundle");
    let mut unpack = Command::new(tool("umoci"));
    unpack.arg("unpack").arg("--image").arg(format!("{}:img", layout.display())).arg(&bundle);
    let run = capture(unpack, DEFAULT_TIMEOUT);
    assert!(run.success(), "umoci unpack failed:\n{run}");

    let image_config = layout_config(layout, "img");
    let config = &image_config["config"];
    let spec_path = bundle.join("config.json");
    let mut spec: Value =
        serde_json::from_slice(&fs::read(&spec_path).expect("read config.json")).expect("config.json is JSON");
    let process = &mut spec["process"];
    // No terminal: output goes to our pipes. umoci adds TERM=xterm for its terminal.
    process["terminal"] = json!(false);
    let image_env: Vec<&str> = strings(&config["Env"]);
    if !image_env.iter().any(|e| e.starts_with("TERM="))
        && let Some(env) = process["env"].as_array_mut()
    {
        env.retain(|e| e.as_str().is_none_or(|e| !e.starts_with("TERM=")));
    }
    if !args.is_empty() {
        let mut argv: Vec<&str> = strings(&config["Entrypoint"]);
        argv.extend(args);
        process["args"] = json!(argv);
    }
    if !no_new_privileges {
        process["noNewPrivileges"] = json!(false);
    }
    if let Some(user) = user {
        let (uid, gid) = resolve_user(&bundle.join("rootfs"), user);
        process["user"] = json!({"uid": uid, "gid": gid});
    }
    fs::write(&spec_path, serde_json::to_vec_pretty(&spec).expect("serialise config.json")).expect("write config.json");

    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let id = format!("ko-e2e-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let runc = tool("runc");
    let mut cmd = Command::new(&runc);
    cmd.arg("run").arg("--bundle").arg(&bundle).arg(&id);
    let what = format!("runc run {id} (bundle {})", bundle.display());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // On timeout wait_with_output kills runc and panics; make sure the container dies too.
    struct Cleanup<'a>(&'a Path, &'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = Command::new(self.0)
                .args(["delete", "--force", self.1])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let _cleanup = Cleanup(&runc, &id);
    wait_with_output(child, None, IMAGE_TIMEOUT, &what)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The config blob of the image tagged `tag` in an OCI layout.
pub fn layout_config(layout: &Path, tag: &str) -> Value {
    let read = |path: PathBuf| -> Value {
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        layout.join("blobs").join("sha256").join(hex)
    };
    let index = read(layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no image tagged {tag} in {}", layout.display()));
    let manifest = read(blob(desc["digest"].as_str().unwrap_or_default()));
    read(blob(manifest["config"]["digest"].as_str().unwrap_or_default()))
}

/// `uid`, `uid:gid`, `name` or `name:group` → numeric ids, names looked up in the
/// rootfs's /etc/passwd and /etc/group; without a group, the user's primary group
/// from /etc/passwd, else 0 (as Docker does).
pub fn resolve_user(rootfs: &Path, user: &str) -> (u32, u32) {
    let table = |file: &str| -> Vec<Vec<String>> {
        fs::read_to_string(rootfs.join("etc").join(file))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    let passwd = table("passwd");
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = passwd.iter().find(|e| e.len() > 3 && (e[0] == user_part || e[2] == user_part));
    let uid = match user_part.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry
            .and_then(|e| e[2].parse().ok())
            .unwrap_or_else(|| panic!("user {user_part} is not in the image's /etc/passwd")),
    };
    let gid = match group_part {
        Some(g) => g.parse::<u32>().unwrap_or_else(|_| {
            table("group")
                .iter()
                .find(|e| e.len() > 2 && e[0] == g)
                .and_then(|e| e[2].parse().ok())
                .unwrap_or_else(|| panic!("group {g} is not in the image's /etc/group"))
        }),
        None => entry.and_then(|e| e[3].parse().ok()).unwrap_or(0),
    };
    (uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skopeo_names_get_a_transport() {
        assert_eq!(skopeo_name("127.0.0.1:5000/a/b:t"), "docker://127.0.0.1:5000/a/b:t");
        assert_eq!(skopeo_name("docker://x/y"), "docker://x/y");
        assert_eq!(skopeo_name("oci:/tmp/l:img"), "oci:/tmp/l:img");
    }

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = unique_name("Hello_World");
        let b = unique_name("Hello_World");
        assert_ne!(a, b);
        assert!(a.starts_with("hello-world-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn users_resolve_against_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n",
        )
        .unwrap();
        fs::write(root.path().join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
        assert_eq!(resolve_user(root.path(), "nonroot"), (65532, 65532));
        assert_eq!(resolve_user(root.path(), "65532"), (65532, 65532));
        assert_eq!(resolve_user(root.path(), "1234"), (1234, 0));
        assert_eq!(resolve_user(root.path(), "1234:5"), (1234, 5));
        assert_eq!(resolve_user(root.path(), "nonroot:root"), (65532, 0));
    }

    #[test]
    fn commands_get_an_isolated_environment() {
        let cmd = KoCmd::program("sh")
            .args(["-c", "echo home=$HOME; echo cache=$XDG_CACHE_HOME; echo repo=${KO_DOCKER_REPO-unset}; echo x=$X; read l; echo in=$l"])
            .env("X", "y")
            .stdin("line\n");
        let run = cmd.run();
        run.assert_success();
        assert_eq!(run.value("home"), Some(cmd.home().to_str().unwrap()));
        assert_ne!(run.value("cache"), env::var("XDG_CACHE_HOME").ok().as_deref());
        assert_eq!(run.value("repo"), Some("unset"));
        assert_eq!(run.value("x"), Some("y"));
        assert_eq!(run.value("in"), Some("line"));
        let run = KoCmd::program("sh").args(["-c", "exit 3"]).run();
        assert_eq!(run.code(), Some(3));
    }

    /// The image runner itself: a hand-made one-layer image of the hello fixture (no
    /// kubectl-ko involved), run from an OCI layout and then from the test registry.
    #[test]
    fn runs_a_hand_made_image() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        fs::create_dir_all(root.join("ko-app")).unwrap();
        KoCmd::program("go")
            .args(["build", "-trimpath", "-ldflags", "-X main.version=selftest", "-o"])
            .arg(root.join("ko-app/hello"))
            .arg(".")
            .cwd(fixture("hello"))
            .env("CGO_ENABLED", "0")
            .run()
            .assert_success();

        let layout = work.path().join("layout");
        let image = format!("{}:img", layout.display());
        let umoci = |args: &[&str]| {
            let mut cmd = Command::new(tool("umoci"));
            cmd.args(args);
            capture(cmd, DEFAULT_TIMEOUT).assert_success().clone()
        };
        umoci(&["init", "--layout", layout.to_str().unwrap()]);
        umoci(&["new", "--image", &image]);
        umoci(&["insert", "--image", &image, root.to_str().unwrap(), "/"]);
        let kodata = fixture("hello").join("kodata");
        umoci(&["insert", "--image", &image, kodata.to_str().unwrap(), "/var/run/ko"]);
        umoci(&[
            "config",
            "--image",
            &image,
            "--config.entrypoint",
            "/ko-app/hello",
            "--config.env",
            "KO_DATA_PATH=/var/run/ko",
            "--config.user",
            "65532",
        ]);
        let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();

        let run = run_layout_image(&layout, &digest);
        run.assert_success();
        assert_eq!(run.value("version"), Some("selftest"), "{run}");
        assert_eq!(run.value("uid"), Some("65532"), "{run}");
        assert_eq!(run.value("kodata"), Some("hello from kodata"), "{run}");
        assert_eq!(run.value("args"), Some(""), "{run}");

        let run = run_layout_image_with(&layout, &digest, &["a", "b"], Some("1234:5"));
        run.assert_success();
        assert_eq!(run.value("uid"), Some("1234"), "{run}");
        assert_eq!(run.value("args"), Some("a,b"), "{run}");

        let reference = format!("{}:latest", unique_repo("selftest"));
        let copy = skopeo(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{reference}"),
        ]);
        copy.assert_success();
        let summary = skopeo_inspect(&reference, false);
        assert_eq!(summary["Layers"].as_array().map(Vec::len), Some(2), "{summary}");
        assert_eq!(skopeo_inspect_config(&reference)["config"]["Entrypoint"], json!(["/ko-app/hello"]));
        let run = run_image_with(&reference, &["x"], None);
        run.assert_success();
        assert_eq!(run.value("version"), Some("selftest"), "{run}");
        assert_eq!(run.value("args"), Some("x"), "{run}");
    }
}
