//! Registry credentials: where they come from and how they are represented. The lookup is a
//! [`Keychain`], a chain of small sources tried in order (the first that knows the registry
//! wins), so cloud registries can be added as sources without touching callers. This module
//! also owns the suite's own credential store and the Docker credential-helper protocol
//! (both sides). Talking to registries and token services lives in `registry`.

mod cloud;
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

use crate::settings::Environment;

pub use config_file::DockerConfigFile;
pub use docker_config::{DockerConfig, config_path};
pub use environment::GithubToken;
pub use error::AuthError;
pub use helper::Helper;
pub use keys::{helper_server, normalise_host};
pub use podman::PodmanAuthFile;
pub use protocol::{USAGE as HELPER_USAGE, serve};
pub use store::CredentialStore;

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
    /// A bearer token for the registry itself (`registrytoken` in Docker's config), sent as
    /// it is, with no token service asked.
    RegistryToken(Secret),
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
    /// `$XDG_RUNTIME_DIR/containers/auth.json`; then [`Keychain::environment`].
    /// A malformed file is an error that names it.
    pub fn new(env: &Environment) -> Result<Keychain, AuthError> {
        let mut keychain = Keychain::default();
        if let Some(config) = DockerConfig::from_auth_config(env)? {
            keychain.sources.push(Box::new(config));
        }
        if let Some(config) = DockerConfig::from_file(&config_path(env))? {
            keychain.sources.push(Box::new(config));
        }
        if let Some(podman) = PodmanAuthFile::find(env)? {
            keychain.sources.push(Box::new(podman));
        }
        keychain.sources.extend(Keychain::environment(env).sources);
        Ok(keychain)
    }

    /// The sources that need no file, in ko's order: Amazon ECR, Google, `GITHUB_TOKEN` for
    /// ghcr.io, Azure. Each answers only for its own hosts and only when configured.
    /// `docker-credential-ko get` answers from these too.
    pub fn environment(env: &Environment) -> Keychain {
        let cloud = cloud::CloudSources::new(env);
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        sources.extend(cloud.aws);
        sources.extend(cloud.google);
        sources.push(Box::new(GithubToken::new(env)));
        sources.extend(cloud.azure);
        Keychain { sources }
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

    /// Writes `{"auths":{HOST:user:pass}}` for each host as `dir/config.json`.
    fn docker_config(dir: &std::path::Path, hosts: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        let auths: Vec<String> = hosts.iter().map(|h| format!(r#""{h}":{{"auth":"dTpw"}}"#)).collect();
        std::fs::write(dir.join("config.json"), format!(r#"{{"auths":{{{}}}}}"#, auths.join(","))).unwrap();
    }

    #[tokio::test]
    async fn docker_auth_config_then_docker_config_then_home_then_podman_then_github() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        docker_config(&home.join(".docker"), &["a.example", "b.example", "c.example"]);
        docker_config(&root.path().join("docker-config"), &["a.example", "b.example"]);
        docker_config(&root.path().join("run/containers"), &["a.example", "d.example"]);
        std::fs::rename(root.path().join("run/containers/config.json"), root.path().join("run/containers/auth.json"))
            .unwrap();
        let docker_config_dir = root.path().join("docker-config");
        let pairs = |with_docker_config: bool| {
            let mut pairs = vec![
                ("DOCKER_AUTH_CONFIG", std::ffi::OsString::from(r#"{"auths":{"a.example":{"auth":"dTpw"}}}"#)),
                ("HOME", home.clone().into()),
                ("XDG_RUNTIME_DIR", root.path().join("run").into()),
                ("GITHUB_TOKEN", "t".into()),
            ];
            if with_docker_config {
                pairs.push(("DOCKER_CONFIG", docker_config_dir.clone().into()));
            }
            pairs
        };
        let source = |keychain: Keychain, host: &'static str| async move {
            keychain.lookup(host).await.unwrap().map(|f| f.source).unwrap_or_default()
        };
        let keychain = || Keychain::new(&Environment::from_pairs(pairs(true))).unwrap();
        assert_eq!(source(keychain(), "a.example").await, "auths[a.example] in DOCKER_AUTH_CONFIG");
        let b = source(keychain(), "b.example").await;
        assert!(b.ends_with("docker-config/config.json"), "DOCKER_CONFIG before HOME: {b}");
        assert_eq!(source(keychain(), "c.example").await, "", "DOCKER_CONFIG replaces ~/.docker");
        assert!(source(keychain(), "d.example").await.ends_with("run/containers/auth.json"));
        assert_eq!(source(keychain(), "ghcr.io").await, "GITHUB_TOKEN");
        let without = Keychain::new(&Environment::from_pairs(pairs(false))).unwrap();
        let c = source(without, "c.example").await;
        assert!(c.ends_with("home/.docker/config.json"), "{c}");
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
