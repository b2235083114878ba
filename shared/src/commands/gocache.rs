//! `kubectl ko gocache`: Go's `GOCACHEPROG` on stdin and stdout, over the local tier and, when
//! `KO_GOCACHE_REPO` is set, the registry tier with the suite's client (its keychain, TLS
//! options and retries). The cache itself is `crate::gocache`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dispatch::dispatcher_for;
use crate::auth::Keychain;
use crate::cli::{GocacheCommand, PublishArgs};
use crate::error::Error;
use crate::gobuild::GoTool;
use crate::gocache::{self, GoCache, Settings, serve};
use crate::output;
use crate::registry::{ClientOptions, RegistryClient};
use crate::settings::Environment;

/// Go learnt `GOCACHEPROG` in 1.24.
const MIN_GO_MINOR: u32 = 24;

pub async fn run(command: GocacheCommand) -> Result<(), Error> {
    let env = Environment::process();
    let settings = Settings::from_env(env)?;
    let client = match settings.repo {
        Some(_) => {
            let options = ClientOptions::new(command.insecure_registry, &command.registry_ca_file, env)?;
            Some(Arc::new(RegistryClient::new(Keychain::new(env)?, options)?))
        }
        None => None,
    };
    let cache = Arc::new(GoCache::new(settings, client));
    // Reads larger than std's own buffer of stdin go straight to the pipe.
    let input = std::io::BufReader::with_capacity(READ_BUFFER, std::io::stdin());
    widen_input_pipe();
    serve(cache, input, std::io::stdout()).await?;
    Ok(())
}

/// Go writes every put's body (base64) on stdin under one lock, so while a large output
/// crosses, Go's other cache requests wait: the pipe and the read buffer are made large enough
/// for Go to write megabytes without waiting for this process to be scheduled.
const READ_BUFFER: usize = 1 << 20;

/// Raises stdin's pipe buffer from the kernel's 64 KiB to [`READ_BUFFER`] (Linux allows
/// 1 MiB to every user by default); anything else on stdin, or a refusal, leaves it as it is.
fn widen_input_pipe() {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsFd;
        let _ = rustix::pipe::fcntl_setpipe_size(std::io::stdin().as_fd(), READ_BUFFER);
    }
}

/// The `GOCACHEPROG` that `build`, `resolve` and `apply` give their own `go build`: this
/// suite's `gocache`, when `KO_GOCACHE_REPO` is set (and valid), the user has no `GOCACHEPROG`
/// of their own, and Go is 1.24 or newer. Otherwise `None`, saying why on stderr when the
/// user asked for the shared cache. `exe` is `std::env::current_exe()`, read by the caller.
pub(super) async fn program_for_builds(
    go: &GoTool,
    dir: &Path,
    publish: &PublishArgs,
    exe: std::io::Result<PathBuf>,
    env: &Environment,
) -> Result<Option<String>, Error> {
    if gocache::repository(env)?.is_none() {
        return Ok(None);
    }
    if env.non_empty("GOCACHEPROG").is_some() {
        output::detail("GOCACHEPROG is set: go build uses it, not kubectl ko gocache");
        return Ok(None);
    }
    // The program reads its settings when Go starts it: a bad one is refused here, before
    // any build, not by Go's first request (and only when Go has something to build).
    gocache::Settings::from_env(env)?;
    match go.version(dir).await {
        Some((1, minor)) if minor >= MIN_GO_MINOR => {}
        found => {
            let version = found.map_or_else(|| "of unknown version".to_string(), |(a, b)| format!("{a}.{b}"));
            output::warn(format!(
                "{} is set but Go {version} has no GOCACHEPROG (Go 1.{MIN_GO_MINOR}+ has): building without the shared Go build cache",
                gocache::REPO_ENV
            ));
            return Ok(None);
        }
    }
    let Some(program) = exe.ok().as_deref().and_then(dispatcher_for) else {
        output::warn(format!(
            "{} is set but no kubectl-ko executable was found to serve it: building without the shared Go build cache",
            gocache::REPO_ENV
        ));
        return Ok(None);
    };
    // Go runs the program in the package's directory: relative CA paths are made absolute.
    let ca_files: Vec<PathBuf> = publish.registry_ca_file.iter().map(|f| dir.join(f)).collect();
    Ok(Some(command_line(&program, publish.insecure_registry, &ca_files)))
}

/// The line Go splits (`cmd/internal/quoted`), with the registry flags of the build passed on.
fn command_line(program: &Path, insecure: bool, ca_files: &[PathBuf]) -> String {
    let mut words = vec![quote(&program.display().to_string()), "gocache".to_string()];
    if insecure {
        words.push("--insecure-registry".into());
    }
    for file in ca_files {
        words.push(quote(&format!("--registry-ca-file={}", file.display())));
    }
    words.join(" ")
}

/// A word single-quoted when it has blanks or quotes (Go's splitter has no escapes).
fn quote(word: &str) -> String {
    if !word.contains([' ', '\t', '\n', '"', '\'']) {
        word.to_string()
    } else if !word.contains('\'') {
        format!("'{word}'")
    } else {
        format!("\"{word}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_quoted_as_go_splits_it() {
        assert_eq!(command_line(Path::new("/usr/bin/kubectl-ko"), false, &[]), "/usr/bin/kubectl-ko gocache");
        let ca = [PathBuf::from("/etc/my ca.pem")];
        assert_eq!(
            command_line(Path::new("/My Apps/kubectl-ko"), true, &ca),
            "'/My Apps/kubectl-ko' gocache --insecure-registry '--registry-ca-file=/etc/my ca.pem'"
        );
        assert_eq!(quote("/it's here"), "\"/it's here\"");
    }
}
