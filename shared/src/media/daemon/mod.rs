//! The Docker daemon as a medium: `ko.local/...` base images are read from it ([`load`]),
//! built images are loaded into it ([`publish`], `ko.local`) or, through it, into the nodes of
//! a kind cluster ([`kind`], `kind.local`).
//!
//! This file is the driver they share, the Docker CLI: the daemon's platform, `docker load`
//! and `docker exec` fed from a stream, `docker save`, and containers by label. Going through
//! the CLI honours `DOCKER_HOST`, contexts and TLS settings exactly as the user's own `docker`
//! does. Without a CLI on PATH, `ko.local` speaks the daemon's API itself ([`api`]), as ko
//! does; kind needs the CLI, as kind itself does. The driver knows nothing about images.

pub mod api;
pub mod kind;
pub mod load;
pub mod publish;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::platform::Platform;
use crate::settings::Environment;

pub use kind::Kind;
pub use publish::Daemon;

/// The registry-like domain that names the Docker daemon: `ko.local/...` bases, and
/// `KO_DOCKER_REPO=ko.local[/prefix]`.
pub const LOCAL_DOMAIN: &str = "ko.local";

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot run the docker CLI ({program}): {source}; install it (Debian: apt-get install docker.io) or put docker on PATH{why_cli}"
    )]
    NoCli { program: String, source: std::io::Error, why_cli: String },
    #[error(
        "cannot reach the Docker daemon at {host} ({detail}); start one (`systemctl start docker`, or `dockerd`) or point DOCKER_HOST at a running daemon"
    )]
    NoDaemon { host: String, detail: String },
    #[error(
        "the docker CLI cannot use its settings ({detail}); fix DOCKER_CONTEXT (`docker context ls`), DOCKER_CERT_PATH or DOCKER_TLS_VERIFY, or the context in the Docker config"
    )]
    ClientSettings { detail: String },
    #[error("`docker {command}` failed ({status}): {detail}")]
    Failed { command: String, status: String, detail: String },
}

/// The docker CLI on PATH (or `$DOCKER` when set, e.g. a podman shim); without one, the
/// daemon's API when `DOCKER_HOST` needs nothing only the CLI knows.
#[derive(Clone, Debug)]
pub struct Docker {
    program: PathBuf,
    /// The program came from `$DOCKER`, which messages then name.
    from_env: bool,
    /// `DOCKER_HOST`, for messages.
    host: Option<String>,
    /// No CLI was found, and the API can be reached without one.
    api: Option<api::Api>,
    /// No CLI was found, and why the API cannot be used instead (a TLS setting, say).
    api_refused: Option<&'static str>,
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    // The daemon can end its error with an empty `stderr:` label (a failed `docker load`
    // says `ApplyLayer ... stdout: {...}` and then ` stderr: `): the reason is above it.
    let label = |l: &str| matches!(l, "stdout:" | "stderr:");
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty() && !label(l)).unwrap_or("no output");
    line.strip_prefix("Error response from daemon: ").unwrap_or(line).to_string()
}

impl Default for Docker {
    /// `docker` from PATH, on the default socket.
    fn default() -> Self {
        Docker::new(&Environment::default())
    }
}

impl Docker {
    /// The CLI `env` names: `$DOCKER` or `docker`, talking to `$DOCKER_HOST` or the default.
    pub fn new(env: &Environment) -> Docker {
        let from_env = env.path("DOCKER");
        let host = env.text("DOCKER_HOST").filter(|h| !h.is_empty()).map(str::to_string);
        // No PATH at all (a bare test environment): the CLI is assumed.
        let no_cli = env.non_empty("PATH").is_some() && env.find_on_path("docker").is_none();
        let (api, api_refused) = match from_env.is_none() && no_cli {
            true => match api::Api::from_env(env) {
                Ok(api) => (Some(api), None),
                Err(why) => (None, Some(why)),
            },
            false => (None, None),
        };
        Docker { from_env: from_env.is_some(), program: from_env.unwrap_or("docker".into()), host, api, api_refused }
    }

    /// The CLI as messages name it: `docker`, or `podman, named by the DOCKER variable`.
    fn cli(&self) -> String {
        let program = self.program.display();
        if self.from_env { format!("{program}, named by the DOCKER variable") } else { program.to_string() }
    }

    /// Where the CLI will connect, for messages.
    fn host(&self) -> String {
        match &self.host {
            Some(host) => host.clone(),
            None => "the default socket (unix:///var/run/docker.sock, or the current docker context)".into(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    fn no_cli(&self, source: std::io::Error) -> DockerError {
        let why_cli = self
            .api_refused
            .map(|why| {
                format!(
                    " (without it, the daemon's API is spoken only when no TLS, SSH or context is set; here {why} is)"
                )
            })
            .unwrap_or_default();
        DockerError::NoCli { program: self.cli(), source, why_cli }
    }

    /// Runs `docker ARGS` to completion off the async runtime and returns its stdout.
    async fn run(&self, args: &[&str]) -> Result<String, DockerError> {
        let mut cmd = self.command(args);
        let command = args.join(" ");
        let output =
            tokio::task::spawn_blocking(move || crate::interrupt::output_std(&mut cmd)).await.expect("docker task");
        let output = output.map_err(|e| self.no_cli(e))?;
        if !output.status.success() {
            return Err(self.failure(command, &output.status, &output.stderr, &output.stdout));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The error of a failed `docker` command, from the last line of its stderr, or of its
    /// stdout when stderr is empty (`docker exec` prints the runtime's "executable file not
    /// found" there).
    fn failure(&self, command: String, status: &std::process::ExitStatus, stderr: &[u8], stdout: &[u8]) -> DockerError {
        let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().is_empty();
        let detail = last_line(if said(stderr) { stdout } else { stderr });
        // Only the CLI's own words: a command run inside a container may fail with
        // "connection refused" about something else entirely.
        if detail.contains("Cannot connect to the Docker daemon")
            || detail.contains("while trying to connect to the Docker daemon")
        {
            return DockerError::NoDaemon { host: self.host(), detail };
        }
        DockerError::Failed { command, status: status.to_string(), detail }
    }

    /// The daemon's own platform (`docker version`), which also proves it is reachable.
    pub async fn server_platform(&self) -> Result<Platform, DockerError> {
        if let Some(api) = &self.api {
            return api.server_platform().await;
        }
        let out = self.run(&["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]).await.map_err(|e| match e {
            // A context that does not exist, or TLS files that cannot be read: the daemon may
            // be fine, the CLI's settings are not.
            DockerError::Failed { detail, .. } if is_settings_error(&detail) => DockerError::ClientSettings { detail },
            DockerError::Failed { detail, .. } => DockerError::NoDaemon { host: self.host(), detail },
            other => other,
        })?;
        let text = out.trim();
        let (os, arch) =
            text.split_once('/').filter(|(os, arch)| !os.is_empty() && !arch.is_empty()).ok_or_else(|| {
                DockerError::NoDaemon {
                    host: self.host(),
                    detail: format!("`docker version` ({}) reported the platform {text:?}", self.cli()),
                }
            })?;
        Ok(Platform { os: os.to_string(), arch: arch.to_string(), ..Platform::default() })
    }

    /// The running containers that carry `label` (`key=value`), by name, each with the value
    /// of its label `other` (empty when it has none).
    pub async fn containers_with_label(
        &self,
        label: &str,
        other: &str,
        stopped_too: bool,
    ) -> Result<Vec<(String, String)>, DockerError> {
        let filter = format!("label={label}");
        let format = format!("{{{{.Names}}}}\t{{{{.Label \"{other}\"}}}}");
        let mut args = vec!["ps", "--filter", &filter, "--format", &format];
        if stopped_too {
            args.push("--all");
        }
        let out = self.run(&args).await?;
        let mut found: Vec<(String, String)> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once('\t').unwrap_or((l, ""));
                (name.to_string(), value.trim().to_string())
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// `docker save -o DEST REFERENCE`.
    pub async fn save(&self, reference: &str, dest: &Path) -> Result<(), DockerError> {
        if let Some(api) = &self.api {
            return api.save(reference, dest).await;
        }
        let dest = dest.to_string_lossy().into_owned();
        self.run(&["save", "-o", &dest, reference]).await.map(drop)
    }

    /// `docker exec CONTAINER ARGS...`, returning stdout.
    pub async fn exec(&self, container: &str, args: &[&str]) -> Result<String, DockerError> {
        let mut all = vec!["exec", container];
        all.extend_from_slice(args);
        self.run(&all).await
    }

    /// `docker load` of the archive `feed` writes; see [`Docker::pipe`].
    pub async fn load<E, F>(&self, feed: F) -> Result<Result<String, E>, DockerError>
    where
        E: Send + 'static,
        F: FnOnce(&mut dyn Write) -> Result<(), E> + Send + 'static,
    {
        match &self.api {
            Some(api) => api.load(feed).await,
            None => self.pipe(&["load"], feed).await,
        }
    }

    /// Runs `docker ARGS` with `feed` writing its standard input (on a blocking thread), and
    /// returns its stdout. A failing command wins over the feed's own error (which is then
    /// usually just the closed pipe); a command that succeeds after a failed feed still
    /// reports the feed's error.
    pub async fn pipe<E, F>(&self, args: &[&str], feed: F) -> Result<Result<String, E>, DockerError>
    where
        E: Send + 'static,
        F: FnOnce(&mut dyn Write) -> Result<(), E> + Send + 'static,
    {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped());
        let command = args.join(" ");
        let (mut child, group) = crate::interrupt::spawn_std(&mut cmd).map_err(|e| self.no_cli(e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (fed, out, err, status) = tokio::task::spawn_blocking(move || {
            let out = std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = stdout.read_to_end(&mut buf);
                buf
            });
            let err = std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = stderr.read_to_end(&mut buf);
                buf
            });
            let fed = feed(&mut stdin);
            drop(stdin);
            let status = child.wait();
            group.finished();
            (fed, out.join().unwrap_or_default(), err.join().unwrap_or_default(), status)
        })
        .await
        .expect("docker task");
        let status = status.map_err(|e| self.no_cli(e))?;
        if !status.success() {
            return Err(self.failure(command, &status, &err, &out));
        }
        Ok(fed.map(|()| String::from_utf8_lossy(&out).into_owned()))
    }
}

/// Whether the docker CLI failed on its own settings rather than on the daemon.
fn is_settings_error(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("context not found")
        || (lower.contains("context") && lower.contains("does not exist"))
        || lower.contains("ca.pem")
        || lower.contains("cert.pem")
        || lower.contains("key.pem")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_errors_are_told_from_a_missing_daemon() {
        assert!(is_settings_error(
            "context \"nosuch\": context not found: open /root/.docker/contexts/meta/x/meta.json"
        ));
        assert!(is_settings_error(
            "could not read CA certificate \"/nonexist/ca.pem\": open /nonexist/ca.pem: no such file"
        ));
        assert!(!is_settings_error(
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?"
        ));
    }

    #[test]
    fn daemon_errors_are_recognised() {
        let docker = Docker { program: "docker".into(), from_env: false, host: None, api: None, api_refused: None };
        let status = std::process::Command::new("false").status().unwrap();
        let e = docker.failure(
            "load".into(),
            &status,
            b"Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n",
            b"",
        );
        assert!(matches!(e, DockerError::NoDaemon { .. }), "{e}");
        let e = docker.failure("load".into(), &status, b"Error response from daemon: bad archive\n", b"out\n");
        assert_eq!(e.to_string(), format!("`docker load` failed ({status}): bad archive"));
        let e = docker.failure(
            "load".into(),
            &status,
            b"Error response from daemon: ApplyLayer duplicates of file paths not supported stdout: {\"layerSize\":6}\n stderr: \n",
            b"",
        );
        assert!(e.to_string().contains("ApplyLayer duplicates of file paths not supported"), "{e}");
        // `docker exec` says why the command did not start on stdout.
        let why = b"OCI runtime exec failed: exec failed: unable to start container process: exec: \"ctr\": executable file not found in $PATH: unknown\r\n";
        let e = docker.failure("exec -i node ctr".into(), &status, b"", why);
        assert!(e.to_string().ends_with("executable file not found in $PATH: unknown"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_cli_says_how_to_get_one() {
        let docker =
            Docker { program: "/nonexistent/docker".into(), from_env: true, host: None, api: None, api_refused: None };
        let e = docker.server_platform().await.unwrap_err();
        assert!(e.to_string().contains("install it"), "{e}");
        assert!(e.to_string().contains("named by the DOCKER variable"), "{e}");
        // With no CLI on PATH and TLS set, the reason the API is not used is given.
        let env = Environment::from_pairs([("PATH", "/nonexistent"), ("DOCKER_TLS_VERIFY", "1")]);
        let docker = Docker { program: "/nonexistent/docker".into(), ..Docker::new(&env) };
        let e = docker.server_platform().await.unwrap_err();
        assert!(e.to_string().contains("here DOCKER_TLS_VERIFY/DOCKER_CERT_PATH (TLS) is"), "{e}");
    }
}
