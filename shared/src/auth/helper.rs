//! The client side of Docker's credential-helper protocol: `docker-credential-<name> get`
//! with the server on stdin and `{"ServerURL","Username","Secret"}` on stdout. A helper that
//! answers "credentials not found" means anonymous; one that is missing or fails is an error
//! that names it and shows its message, never its output on success.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{AuthError, Credential};

/// How long a helper may take (some prompt a keyring or refresh a cloud token).
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// A credential helper, by the suffix Docker's config names it with (`gcloud`, `ko`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Helper {
    suffix: String,
    /// Where to find the program instead of PATH (tests).
    dir: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// What a run that did not succeed tells us.
enum RunError {
    Missing,
    NotFound,
    Failed(String),
}

impl Helper {
    pub fn new(suffix: impl Into<String>) -> Helper {
        Helper { suffix: suffix.into(), dir: None }
    }

    #[cfg(test)]
    fn in_dir(suffix: &str, dir: &std::path::Path) -> Helper {
        Helper { suffix: suffix.into(), dir: Some(dir.to_path_buf()) }
    }

    /// `docker-credential-<suffix>`, the program that is run.
    pub fn program(&self) -> String {
        format!("docker-credential-{}", self.suffix)
    }

    /// Asks the helper for `server`'s credentials; `None` when it has none.
    /// `registry`, `source_desc` and `config` only serve error messages.
    pub async fn get(
        &self,
        server: &str,
        registry: &str,
        source_desc: &str,
        config: &str,
    ) -> Result<Option<Credential>, AuthError> {
        let Some(output) = self.answer("get", server.as_bytes(), registry, source_desc, config).await? else {
            return Ok(None);
        };
        // The output holds the secret: never show it, even when it is malformed.
        let answer: HelperAnswer = serde_json::from_slice(&output).map_err(|_| {
            self.failed(
                registry,
                "get",
                "it printed something that is not the expected JSON (not shown: it may hold a secret)".into(),
                source_desc,
            )
        })?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credential::from_helper(&answer.username, &answer.secret)))
    }

    /// Hands `server`'s credentials to the helper to keep (`login` with a helper the Docker
    /// config names for the server, as Docker and ko do). `source_desc` and `config` only
    /// serve error messages.
    pub async fn store(
        &self,
        server: &str,
        username: &str,
        secret: &str,
        source_desc: &str,
        config: &str,
    ) -> Result<(), AuthError> {
        let input = serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret}).to_string();
        self.answer("store", input.as_bytes(), server, source_desc, config).await.map(drop)
    }

    /// Asks the helper to forget `server`'s credentials; false when it had none.
    pub async fn erase(&self, server: &str, source_desc: &str, config: &str) -> Result<bool, AuthError> {
        Ok(self.answer("erase", server.as_bytes(), server, source_desc, config).await?.is_some())
    }

    /// Runs `action` with `input`: its output, `None` when the helper has no credentials for
    /// the server, or the error naming `registry`, `source_desc` and `config`.
    async fn answer(
        &self,
        action: &str,
        input: &[u8],
        registry: &str,
        source_desc: &str,
        config: &str,
    ) -> Result<Option<Vec<u8>>, AuthError> {
        match self.run(action, input).await {
            Ok(output) => Ok(Some(output)),
            Err(RunError::NotFound) => Ok(None),
            Err(RunError::Missing) => Err(AuthError::HelperMissing {
                registry: registry.to_string(),
                source_desc: source_desc.to_string(),
                helper: self.program(),
                config: config.to_string(),
            }),
            Err(RunError::Failed(detail)) => Err(self.failed(registry, action, detail, source_desc)),
        }
    }

    fn failed(&self, registry: &str, action: &str, detail: String, source_desc: &str) -> AuthError {
        AuthError::HelperFailed {
            registry: registry.to_string(),
            helper: self.program(),
            action: action.to_string(),
            detail,
            source_desc: source_desc.to_string(),
        }
    }

    async fn run(&self, action: &str, input: &[u8]) -> Result<Vec<u8>, RunError> {
        let program = match &self.dir {
            Some(dir) => dir.join(self.program()),
            None => self.program().into(),
        };
        let mut child = tokio::process::Command::new(program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => RunError::Missing,
                _ => RunError::Failed(format!("cannot run it: {e}")),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit without reading its input; that shows in its exit status.
            let _ = stdin.write_all(input).await;
            drop(stdin);
        }
        let output = match tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(RunError::Failed(format!("waiting for it: {e}"))),
            Err(_) => return Err(RunError::Failed(format!("it did not answer within {}s", HELPER_TIMEOUT.as_secs()))),
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        // Helpers write their error message to stdout (and some to stderr). Output that looks
        // like the protocol's JSON answer may carry a secret: it is not shown.
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let stdout = if stdout.starts_with('{') || stdout.contains("Secret") {
            "(its output is not shown: it may hold a secret)".to_string()
        } else {
            stdout
        };
        let message = [stdout, String::from_utf8_lossy(&output.stderr).trim().to_string()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if message.contains("credentials not found") {
            return Err(RunError::NotFound);
        }
        let mut message = message.replace('\n', " ");
        if message.len() > 300 {
            let cut = (0..=300).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        let status = output.status.code().map(|c| format!("exit status {c}")).unwrap_or_else(|| "killed".into());
        Err(RunError::Failed(if message.is_empty() { status } else { format!("{status}: {message}") }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    /// Writes an executable helper script. A child process writes it, never this one: a file
    /// this process holds open for writing is inherited by every child another test forks
    /// meanwhile, until that child execs, and running the script then fails with "Text file
    /// busy".
    fn script(dir: &std::path::Path, suffix: &str, body: &str) -> Helper {
        use std::io::Write;
        let path = dir.join(format!("docker-credential-{suffix}"));
        let mut writer = std::process::Command::new("sh")
            .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = writer.stdin.take().unwrap();
        stdin.write_all(format!("#!/bin/sh\n{body}\n").as_bytes()).unwrap();
        drop(stdin);
        assert!(writer.wait().unwrap().success(), "writing {}", path.display());
        Helper::in_dir(suffix, dir)
    }

    #[tokio::test]
    async fn helpers_answer_found_not_found_and_failure() {
        let dir = tempfile::tempdir().unwrap();
        let good = script(
            dir.path(),
            "good",
            r#"read server; [ "$1" = get ] && [ "$server" = r.example ] && echo '{"ServerURL":"r.example","Username":"alice","Secret":"pw"}'"#,
        );
        let got = good.get("r.example", "r.example", "src", "cfg").await.unwrap();
        assert_eq!(got, Some(Credential::Basic { username: "alice".into(), password: Secret::new("pw") }));

        let token = script(dir.path(), "token", r#"echo '{"Username":"<token>","Secret":"refresh"}'"#);
        let got = token.get("r.example", "r.example", "src", "cfg").await.unwrap();
        assert_eq!(got, Some(Credential::IdentityToken(Secret::new("refresh"))));

        let none = script(dir.path(), "none", "echo 'credentials not found in native keychain'; exit 1");
        assert_eq!(none.get("r.example", "r.example", "src", "cfg").await.unwrap(), None);

        let broken = script(dir.path(), "broken", "echo 'the keyring is locked' >&2; exit 3");
        let err = broken.get("r.example", "r.example", "credHelpers[r.example]", "cfg").await.unwrap_err().to_string();
        assert!(err.contains("docker-credential-broken get for r.example failed"), "{err}");
        assert!(
            err.contains("exit status 3: the keyring is locked") && err.contains("credHelpers[r.example]"),
            "{err}"
        );

        let leaky = script(dir.path(), "leaky", "echo 'Secret: hunter2 and not JSON'");
        let err = leaky.get("r.example", "r.example", "src", "cfg").await.unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("not the expected JSON"), "{err}");

        let missing = Helper::in_dir("missing", dir.path());
        let err = missing.get("r.example", "r.example", "src", "/c.json").await.unwrap_err().to_string();
        assert!(err.contains("docker-credential-missing is not installed") && err.contains("/c.json"), "{err}");
    }

    #[tokio::test]
    async fn store_and_erase_hand_the_protocols_input_to_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let body = format!(
            r#"case "$1" in store) cat > {0} ;; erase) read s; [ -f {0} ] || {{ echo 'credentials not found in native keychain'; exit 1; }}; echo "$s" > {0}.erased; rm {0} ;; esac"#,
            kept.display()
        );
        let helper = script(dir.path(), "keep", &body);
        helper.store("r.example", "alice", "pw", "src", "cfg").await.unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
        assert_eq!(stored, serde_json::json!({"ServerURL": "r.example", "Username": "alice", "Secret": "pw"}));
        assert!(helper.erase("r.example", "src", "cfg").await.unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("kept.erased")).unwrap(), "r.example\n");
        assert!(!helper.erase("r.example", "src", "cfg").await.unwrap(), "nothing left to erase");
        let err = Helper::in_dir("missing", dir.path()).store("r.example", "a", "b", "src", "/c.json").await;
        assert!(err.unwrap_err().to_string().contains("docker-credential-missing is not installed"));
    }
}
