//! Running commands: the suite's binaries in an isolated environment ([`KoCmd`], [`ko`],
//! [`kubectl_ko`]) and plain external programs ([`capture`]), each with a timeout, their
//! output collected into a [`Run`].

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use serde_json::Value;
use tempfile::TempDir;

use super::paths::{bin, bin_dir};

/// How long a command may run before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Variables removed from the inherited environment of every [`KoCmd`]: they would
/// change what the tool does, and the developer's values must not leak into tests.
pub const REMOVED_ENV: &[&str] = &[
    "KO_DOCKER_REPO",
    "KO_GOCACHE_REPO",
    "KO_GOCACHE_MAX_SIZE",
    "GOCACHEPROG",
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
    "KUBECTL_KO_WATCH_POLL",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "KUBECONFIG",
    "DOCKER_CONFIG",
    "DOCKER_AUTH_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "GITHUB_TOKEN",
    "GITHUB_ACTOR",
    // The cloud registries' credentials (tests/it/cloud/): a developer's own must not leak in.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CA_BUNDLE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "GCE_METADATA_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
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

pub(super) fn wait_with_output(mut child: Child, stdin: Option<Vec<u8>>, timeout: Duration, what: &str) -> Run {
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

/// Writes an executable script (a fake `go`, a credential helper) for a test to run. A child
/// process writes it, never the test process: a file the test process holds open for writing
/// is inherited by every child another test forks meanwhile, until that child execs, and
/// running the script then fails with "Text file busy".
pub fn write_executable(path: &Path, text: &str) {
    let mut writer = Command::new("sh")
        .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    assert!(writer.wait().unwrap().success(), "writing {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
