//! Registry credentials: where they come from (a chain of small sources, Docker's
//! `config.json` first) and how they are represented. Talking to token services lives in
//! `registry::challenge`; this module never performs network requests itself.

mod docker_config;

use std::fmt;
use std::path::PathBuf;

pub use docker_config::DockerConfig;

/// A secret that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Username and password, sent as HTTP basic auth or to a token realm.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config).
    IdentityToken(Secret),
}

/// Credentials together with a description of where they were found, for error messages.
#[derive(Clone, Debug)]
pub struct FoundCredential {
    pub credential: Credential,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading docker config {path}: {detail}; fix or remove the file")]
    BadConfig { path: PathBuf, detail: String },
}

/// Looks credentials up for a registry host, trying each source in order.
#[derive(Clone, Debug, Default)]
pub struct Keychain {
    docker: Option<DockerConfig>,
}

impl Keychain {
    /// Reads `DOCKER_AUTH_CONFIG`, `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn from_env() -> Result<Keychain, AuthError> {
        Ok(Keychain { docker: DockerConfig::from_env()? })
    }

    pub fn anonymous() -> Keychain {
        Keychain::default()
    }

    pub fn lookup(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        match &self.docker {
            Some(config) => config.lookup(registry),
            None => Ok(None),
        }
    }
}
