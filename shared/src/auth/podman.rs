//! Podman's and skopeo's `auth.json` (the same format as Docker's `config.json`):
//! `REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
//! `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{AuthError, DockerConfig, FoundCredential, Source};
use crate::settings::Environment;

#[derive(Debug)]
pub struct PodmanAuthFile {
    config: DockerConfig,
}

/// The files podman would read, in its order (those whose variables are unset are left out).
fn candidates(env: &Environment) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    candidates.extend(env.path("REGISTRY_AUTH_FILE"));
    candidates.extend(env.path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    let config_home = env.absolute_path("XDG_CONFIG_HOME").or_else(|| env.home().map(|h| h.join(".config")));
    candidates.extend(config_home.map(|d| d.join("containers/auth.json")));
    candidates
}

impl PodmanAuthFile {
    /// The first of the candidate files that exists; an explicit `REGISTRY_AUTH_FILE` that
    /// does not exist is skipped like the others (podman does the same). One that cannot be
    /// read is an error when `REGISTRY_AUTH_FILE` names it, and otherwise skipped with a
    /// warning: a podman login's leftover must not stop a push that needs nothing from it
    /// (ko reads these files only without a Docker config).
    pub fn find(env: &Environment) -> Result<Option<PodmanAuthFile>, AuthError> {
        let explicit = env.path("REGISTRY_AUTH_FILE");
        for path in candidates(env) {
            match DockerConfig::from_file(&path) {
                Ok(Some(config)) => return Ok(Some(PodmanAuthFile { config })),
                Ok(None) => {}
                Err(e) if explicit.as_ref() == Some(&path) => return Err(e),
                Err(e) => crate::output::warn(format!("{e} (skipped: set REGISTRY_AUTH_FILE to use another)")),
            }
        }
        Ok(None)
    }
}

impl Source for PodmanAuthFile {
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        self.config.lookup(registry).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_file_then_runtime_dir_then_config_home() {
        let env = |pairs: &[(&str, &str)]| candidates(&Environment::from_pairs(pairs.iter().copied()));
        let all =
            [("REGISTRY_AUTH_FILE", "/a.json"), ("XDG_RUNTIME_DIR", "/run"), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")];
        let paths = |list: &[&str]| list.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(env(&all), paths(&["/a.json", "/run/containers/auth.json", "/x/containers/auth.json"]));
        assert_eq!(env(&all[1..]), paths(&["/run/containers/auth.json", "/x/containers/auth.json"]));
        assert_eq!(env(&all[3..]), paths(&["/h/.config/containers/auth.json"]));
        assert_eq!(env(&[("REGISTRY_AUTH_FILE", ""), ("HOME", "")]), paths(&[]));
    }

    #[tokio::test]
    async fn the_first_file_that_exists_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(runtime.join("containers")).unwrap();
        std::fs::write(runtime.join("containers/auth.json"), r#"{"auths":{"r":{"auth":"dTpw"}}}"#).unwrap();
        let missing = dir.path().join("missing.json");
        let env = Environment::from_pairs([
            ("REGISTRY_AUTH_FILE", missing.as_os_str()),
            ("XDG_RUNTIME_DIR", runtime.as_os_str()),
            ("HOME", dir.path().as_os_str()),
        ]);
        let file = PodmanAuthFile::find(&env).unwrap().expect("the runtime directory's file");
        let found = file.lookup("r").await.unwrap().unwrap();
        assert!(found.source.ends_with("run/containers/auth.json"), "{}", found.source);
        assert!(PodmanAuthFile::find(&Environment::default()).unwrap().is_none());
    }
}
