//! Registry credentials: where they come from and how they are represented. The lookup is a
//! [`Keychain`], a chain of small sources tried in order (the first that knows the registry
//! wins), so cloud registries can be added as sources without touching callers. This module
//! also owns the suite's own credential store and the Docker credential-helper protocol
//! (both sides). Talking to registries and token services lives in `registry`.

mod config_file;
mod docker_config;
mod environment;
mod error;
mod helper;
mod keys;
mod podman;
mod protocol;
mod store;

use std::fmt;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

pub use config_file::DockerConfigFile;
pub use docker_config::{DockerConfig, config_dir, config_path};
pub use environment::GithubToken;
pub use error::AuthError;
pub use helper::Helper;
pub use keys::{helper_server, normalise_host};
pub use podman::PodmanAuthFile;
pub use protocol::{NOT_FOUND, serve};
pub use store::{CredentialStore, StoredCredential};

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
    /// An OAuth2 refresh token (`identitytoken` in Docker's config, `<token>` from a helper).
    IdentityToken(Secret),
}

impl Credential {
    /// What Docker's helpers call `Username` and `Secret` (`<token>` for identity tokens).
    pub fn from_helper(username: &str, secret: &str) -> Credential {
        if username == "<token>" {
            Credential::IdentityToken(Secret::new(secret))
        } else {
            Credential::Basic { username: username.to_string(), password: Secret::new(secret) }
        }
    }
}

/// Credentials together with a description of where they were found, for error messages:
/// `auths[r.example] in /home/u/.docker/config.json`,
/// `credHelpers[ghcr.io] = docker-credential-gcloud`, `GITHUB_TOKEN`...
#[derive(Clone, Debug)]
pub struct FoundCredential {
    pub credential: Credential,
    pub source: String,
}

/// A credential given outright (for example the one `login` is checking) serves every registry.
impl Source for FoundCredential {
    fn lookup<'a>(&'a self, _registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        futures_util::future::ready(Ok(Some(self.clone()))).boxed()
    }
}

/// One place credentials may come from.
pub trait Source: fmt::Debug + Send + Sync {
    /// The credentials this source holds for a registry host (normalised, `host[:port]`),
    /// `None` when it has none. An error means the source is broken (a helper that is not
    /// installed or failed), which is reported rather than silently skipped.
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>>;
}

/// Looks credentials up for a registry host, trying each source in order.
#[derive(Debug, Default)]
pub struct Keychain {
    sources: Vec<Box<dyn Source>>,
}

impl Keychain {
    /// Docker's precedence, then podman's, then the environment:
    /// `DOCKER_AUTH_CONFIG`; `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`
    /// (`credHelpers`, `credsStore`, `auths`); `REGISTRY_AUTH_FILE` or
    /// `$XDG_RUNTIME_DIR/containers/auth.json`; `GITHUB_TOKEN` for ghcr.io.
    /// A malformed file is an error that names it.
    pub fn from_env() -> Result<Keychain, AuthError> {
        let mut keychain = Keychain::default();
        if let Some(config) = DockerConfig::from_auth_config_env()? {
            keychain.sources.push(Box::new(config));
        }
        if let Some(config) = DockerConfig::from_file(&config_path())? {
            keychain.sources.push(Box::new(config));
        }
        if let Some(podman) = PodmanAuthFile::from_env()? {
            keychain.sources.push(Box::new(podman));
        }
        keychain.sources.push(Box::new(GithubToken::from_env()));
        Ok(keychain)
    }

    pub fn anonymous() -> Keychain {
        Keychain::default()
    }

    /// A keychain of exactly these sources, in this order.
    pub fn with_sources(sources: Vec<Box<dyn Source>>) -> Keychain {
        Keychain { sources }
    }

    pub async fn lookup(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        let registry = normalise_host(registry);
        for source in &self.sources {
            if let Some(found) = source.lookup(&registry).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let c = Credential::Basic { username: "u".into(), password: Secret::new("hunter2") };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Credential::from_helper("<token>", "t"), Credential::IdentityToken(Secret::new("t")));
    }

    #[tokio::test]
    async fn the_first_source_that_knows_the_registry_wins() {
        let first = DockerConfig::parse(br#"{"auths":{"a.example":{"auth":"dTE6cDE="}}}"#, "first").unwrap();
        let second = DockerConfig::parse(
            br#"{"auths":{"a.example":{"auth":"dTI6cDI="},"b.example":{"auth":"dTI6cDI="}}}"#,
            "second",
        )
        .unwrap();
        let keychain = Keychain::with_sources(vec![Box::new(first), Box::new(second)]);
        let a = keychain.lookup("a.example").await.unwrap().unwrap();
        assert!(a.source.contains("first"), "{}", a.source);
        let b = keychain.lookup("b.example").await.unwrap().unwrap();
        assert!(b.source.contains("second"), "{}", b.source);
        assert!(keychain.lookup("c.example").await.unwrap().is_none());
    }
}
