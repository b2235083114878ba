//! Podman's and skopeo's `auth.json` (the same format as Docker's `config.json`):
//! `REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
//! `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{AuthError, DockerConfig, FoundCredential, Source};

#[derive(Debug)]
pub struct PodmanAuthFile {
    config: DockerConfig,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl PodmanAuthFile {
    /// The first of the candidate files that exists; an explicit `REGISTRY_AUTH_FILE` that
    /// does not exist is skipped like the others (podman does the same).
    pub fn from_env() -> Result<Option<PodmanAuthFile>, AuthError> {
        let mut candidates = Vec::new();
        candidates.extend(env_path("REGISTRY_AUTH_FILE"));
        candidates.extend(env_path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
        let config_home = env_path("XDG_CONFIG_HOME").or_else(|| env_path("HOME").map(|h| h.join(".config")));
        candidates.extend(config_home.map(|d| d.join("containers/auth.json")));
        for path in candidates {
            if let Some(config) = DockerConfig::from_file(&path)? {
                return Ok(Some(PodmanAuthFile { config }));
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
