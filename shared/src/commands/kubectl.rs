//! Handing work to the user's own kubectl, as ko does: `apply`/`create` with flags after `--`
//! pipe the resolved YAML to `kubectl apply|create -f -`, `delete` in any form but `-f` runs
//! `kubectl delete`, and `run` runs `kubectl run`. kubectl's output reaches the user as is.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::cli::KubeArgs;
use crate::error::Error;
pub use crate::error::KubectlError;
use crate::output;
use crate::settings::Environment;

/// kubectl from PATH; `why` says what needs it, for the error.
pub fn program(why: &str) -> Result<PathBuf, KubectlError> {
    Environment::process().find_on_path("kubectl").ok_or_else(|| KubectlError::Missing { why: why.to_string() })
}

/// `--kubeconfig`, `--context`, `--cluster`, `--user` and `-n`, spelled for kubectl.
pub fn cluster_flags(kube: &KubeArgs) -> Vec<OsString> {
    let mut flags = Vec::new();
    if let Some(path) = &kube.kubeconfig {
        flags.push(OsString::from("--kubeconfig"));
        flags.push(path.clone());
    }
    for (flag, value) in [("--context", &kube.context), ("--cluster", &kube.cluster), ("--user", &kube.user)] {
        if let Some(value) = value {
            flags.push(format!("{flag}={value}").into());
        }
    }
    if let Some(namespace) = &kube.namespace {
        flags.push(format!("--namespace={namespace}").into());
    }
    flags
}

fn shown(args: &[OsString]) -> String {
    args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

/// Runs `kubectl ARGS…` with the user's terminal, and `input` (when given) on its stdin.
/// kubectl stays in the tool's process group (it may attach to a pod and read the terminal)
/// and is stopped with the run: a SIGTERM to the tool reaches it too.
pub async fn run(args: Vec<OsString>, input: Option<&[u8]>) -> Result<(), Error> {
    let verb = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let program = program(&format!("`kubectl ko {verb}` with kubectl flags"))?;
    let line = format!("$ kubectl {}", shown(&args));
    // ko shows the command line of `run`; the others are kubectl's business.
    if verb == "run" {
        output::step(line)
    } else {
        output::detail(line)
    }
    let mut command = tokio::process::Command::new(&program);
    command.args(&args).stdin(if input.is_some() { Stdio::piped() } else { Stdio::inherit() });
    let (mut child, group) = crate::interrupt::spawn_in_foreground(&mut command)
        .map_err(|source| KubectlError::Spawn { program: program.clone(), source })?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // kubectl may stop reading early (a bad flag); its own error says why.
        let _ = stdin.write_all(bytes).await;
        drop(stdin);
    }
    let status = child.wait().await.map_err(|source| KubectlError::Spawn { program, source })?;
    group.finished();
    if !status.success() {
        return Err(KubectlError::Failed { verb, status: status.to_string() }.into());
    }
    Ok(())
}

/// `kubectl VERB -f - <cluster flags> <flags>` with the resolved YAML on stdin.
pub async fn pipe(verb: &str, kube: &KubeArgs, flags: &[String], yaml: &[u8]) -> Result<(), Error> {
    let mut args = vec![OsString::from(verb), "-f".into(), "-".into()];
    args.extend(cluster_flags(kube));
    args.extend(flags.iter().map(OsString::from));
    run(args, Some(yaml)).await
}
