//! Docker's `config.json` as a credential source, with Docker CLI's precedence for a host:
//! `credHelpers[host]` (that helper only), else `credsStore` (the native store), else
//! `auths[host]` (`registrytoken`, sent as the bearer token itself; `identitytoken`; or `auth`
//! as base64 `user:password`). Docker Hub's keys are
//! normalised. `DOCKER_AUTH_CONFIG` holds the same JSON in the environment (its `auths` only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::keys::{helper_server, normalise_host};
use super::{AuthError, Credential, FoundCredential, Helper, Secret, Source};
use crate::settings::Environment;

/// The variable that holds a config's JSON in the environment.
const ENV_VAR: &str = "DOCKER_AUTH_CONFIG";

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default, deserialize_with = "nulls_as_empty")]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers", deserialize_with = "nulls_as_empty")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    /// The file it came from, or `DOCKER_AUTH_CONFIG`.
    #[serde(skip)]
    origin: String,
    /// `DOCKER_AUTH_CONFIG` only contributes `auths`.
    #[serde(skip)]
    auths_only: bool,
}

/// A map where Go's decoder (Docker's, ko's) takes `null`, for the map or a value, as empty.
fn nulls_as_empty<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Default + Deserialize<'de>,
{
    let map: Option<BTreeMap<String, Option<V>>> = Option::deserialize(deserializer)?;
    Ok(map.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

#[derive(Clone, Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

impl DockerConfig {
    /// `DOCKER_AUTH_CONFIG`, when set and not empty.
    pub fn from_auth_config(env: &Environment) -> Result<Option<DockerConfig>, AuthError> {
        let Some(json) = env.non_empty(ENV_VAR) else {
            return Ok(None);
        };
        let json = json.to_string_lossy().into_owned();
        let mut config = DockerConfig::parse(json.as_bytes(), ENV_VAR)?;
        config.auths_only = true;
        Ok(Some(config))
    }

    /// A config file; `None` when it does not exist.
    pub fn from_file(path: &Path) -> Result<Option<DockerConfig>, AuthError> {
        match std::fs::read(path) {
            Ok(bytes) => DockerConfig::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unreadable(path, e)),
        }
    }

    /// A malformed config: the file, or the variable (which is not a file to fix or remove).
    fn malformed(origin: &str, detail: String) -> AuthError {
        if origin == ENV_VAR {
            AuthError::BadEnv { var: ENV_VAR, detail }
        } else {
            AuthError::BadConfig { path: PathBuf::from(origin), detail }
        }
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<DockerConfig, AuthError> {
        let mut config: DockerConfig =
            serde_json::from_slice(bytes).map_err(|e| Self::malformed(origin, e.to_string()))?;
        config.origin = origin.to_string();
        Ok(config)
    }

    /// The helper this config sends `registry` to, with how to describe it in messages.
    fn helper_for(&self, registry: &str) -> Option<(Helper, String)> {
        if self.auths_only {
            return None;
        }
        if let Some((key, name)) = exact_first(self.cred_helpers.iter(), registry) {
            // An empty entry names no helper, and Docker then reads this server's `auths`,
            // not the `credsStore`.
            if name.is_empty() {
                return None;
            }
            let helper = Helper::new(name);
            let desc = format!("credHelpers[{key}] = {} in {}", helper.program(), self.origin);
            return Some((helper, desc));
        }
        let store = self.creds_store.as_deref().filter(|s| !s.is_empty())?;
        let helper = Helper::new(store);
        let desc = format!("credsStore = {} in {}", helper.program(), self.origin);
        Some((helper, desc))
    }

    pub async fn lookup(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        let registry = normalise_host(registry);
        if let Some((helper, source)) = self.helper_for(&registry) {
            let found = helper.get(&helper_server(&registry), &registry, &source, &self.origin).await?;
            return Ok(found.map(|credential| FoundCredential { credential, source }));
        }
        self.lookup_auths(&registry)
    }

    fn lookup_auths(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        let Some((key, entry)) = exact_first(self.auths.iter(), registry) else {
            return Ok(None);
        };
        let source = format!("auths[{key}] in {}", self.origin);
        // As Docker's and ko's clients read an entry: a registry token first, as it is.
        if let Some(token) = entry.registry_token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(FoundCredential { credential: Credential::RegistryToken(Secret::new(token)), source }));
        }
        if let Some(token) = entry.identity_token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(FoundCredential { credential: Credential::IdentityToken(Secret::new(token)), source }));
        }
        let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
            (Some(auth), _, _) if !auth.is_empty() => {
                let bad = |detail: &str| Self::malformed(&self.origin, format!("auths[{key}].auth {detail}"));
                let decoded =
                    base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad("is not base64"))?;
                let text = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
                let (u, p) = text.split_once(':').ok_or_else(|| bad("is not user:password"))?;
                (u.to_string(), p.to_string())
            }
            (_, Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => return Ok(None),
        };
        Ok(Some(FoundCredential {
            credential: Credential::Basic { username, password: Secret::new(password) },
            source,
        }))
    }
}

impl Source for DockerConfig {
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        DockerConfig::lookup(self, registry).boxed()
    }
}

/// The entry for `registry`: the one whose key is written exactly so, else the first whose key
/// names the same host another way (`https://r.example/v1/`), as Docker's lookup goes.
fn exact_first<'a, V>(
    entries: impl Iterator<Item = (&'a String, &'a V)> + Clone,
    registry: &str,
) -> Option<(&'a String, &'a V)> {
    entries
        .clone()
        .find(|(k, _)| *k == registry)
        .or_else(|| entries.into_iter().find(|(k, _)| normalise_host(k) == registry))
}

/// `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir(env: &Environment) -> PathBuf {
    env.path("DOCKER_CONFIG").unwrap_or_else(|| env.path_or_empty("HOME").join(".docker"))
}

/// Why `config.json` at `path` could not be read. A config directory that is a file (usually
/// `DOCKER_CONFIG` pointing at the config.json itself) is named as such.
pub fn unreadable(path: &Path, error: std::io::Error) -> AuthError {
    let dir = path.parent().unwrap_or(Path::new("."));
    if error.kind() == std::io::ErrorKind::NotADirectory && dir.is_file() {
        return AuthError::BadConfig {
            path: dir.to_path_buf(),
            detail: "is a file, not the directory that holds config.json (as DOCKER_CONFIG must name)".into(),
        };
    }
    AuthError::BadConfig { path: path.to_path_buf(), detail: error.to_string() }
}

/// `config.json` in [`config_dir`].
pub fn config_path(env: &Environment) -> PathBuf {
    config_dir(env).join("config.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_go_reads_them() {
        for json in
            [r#"{"auths":null}"#, r#"{"credHelpers":null}"#, r#"{"auths":{"h":null}}"#, r#"{"credHelpers":{"h":null}}"#]
        {
            assert!(DockerConfig::parse(json.as_bytes(), "config.json").is_ok(), "{json}");
        }
    }

    #[test]
    fn a_config_directory_that_is_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        let error = DockerConfig::from_file(&file.join("config.json")).err().unwrap().to_string();
        assert!(error.contains(&format!("{}: is a file, not the directory", file.display())), "{error}");
    }

    #[tokio::test]
    async fn finds_basic_auth_under_any_docker_hub_spelling() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#;
        let config = DockerConfig::parse(json, "test").unwrap();
        for name in ["index.docker.io", "docker.io"] {
            let found = config.lookup(name).await.unwrap().unwrap();
            assert_eq!(found.credential, Credential::Basic { username: "user".into(), password: Secret::new("pass") });
        }
        assert!(config.lookup("ghcr.io").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_key_written_as_the_registry_wins_over_other_spellings_of_it() {
        // base64 of stale:x and user:pass; the URL form sorts first.
        let json =
            br#"{"auths":{"http://localhost:5000/":{"auth":"c3RhbGU6eA=="},"localhost:5000":{"auth":"dXNlcjpwYXNz"}}}"#;
        let found = DockerConfig::parse(json, "t").unwrap().lookup("localhost:5000").await.unwrap().unwrap();
        assert_eq!(found.credential, Credential::Basic { username: "user".into(), password: Secret::new("pass") });
        assert_eq!(found.source, "auths[localhost:5000] in t");
    }

    #[tokio::test]
    async fn identity_tokens_win_over_basic_auth() {
        let json = br#"{"auths":{"r.example":{"auth":"dXNlcjpwYXNz","identitytoken":"tok"}}}"#;
        let found = DockerConfig::parse(json, "t").unwrap().lookup("r.example").await.unwrap().unwrap();
        assert_eq!(found.credential, Credential::IdentityToken(Secret::new("tok")));
        assert_eq!(found.source, "auths[r.example] in t");
    }

    #[tokio::test]
    async fn malformed_files_name_themselves() {
        let err = DockerConfig::parse(b"{not json", "/x/config.json").unwrap_err();
        assert!(err.to_string().contains("/x/config.json"));
        let config = DockerConfig::parse(br#"{"auths":{"r":{"auth":"!!"}}}"#, "/c.json").unwrap();
        let err = config.lookup("r").await.unwrap_err();
        assert!(err.to_string().contains("not base64") && err.to_string().contains("/c.json"), "{err}");
    }

    #[tokio::test]
    async fn a_helper_that_is_not_installed_is_named() {
        let json = br#"{"credHelpers":{"ghcr.io":"surely-missing-helper"},"auths":{"ghcr.io":{"auth":"dTpw"}}}"#;
        let config = DockerConfig::parse(json, "/c.json").unwrap();
        let err = config.lookup("ghcr.io").await.unwrap_err().to_string();
        assert!(err.contains("docker-credential-surely-missing-helper"), "{err}");
        assert!(err.contains("credHelpers[ghcr.io]") && err.contains("/c.json"), "{err}");
        // Other hosts still use auths; credsStore would take them all.
        assert!(config.lookup("r.example").await.unwrap().is_none());
        let store = DockerConfig::parse(br#"{"credsStore":"surely-missing-store","auths":{"r":{"auth":"dTpw"}}}"#, "s")
            .unwrap();
        let err = store.lookup("r").await.unwrap_err().to_string();
        assert!(err.contains("credsStore = docker-credential-surely-missing-store"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_cred_helpers_entry_means_auths_as_in_docker() {
        for helper in ["\"\"", "null"] {
            let json = format!(
                r#"{{"credsStore":"surely-missing","credHelpers":{{"r":{helper}}},"auths":{{"r":{{"auth":"dTpw"}}}}}}"#
            );
            let config = DockerConfig::parse(json.as_bytes(), "c.json").unwrap();
            let found = config.lookup("r").await.unwrap().unwrap();
            assert_eq!(found.source, "auths[r] in c.json", "{json}");
        }
    }

    #[tokio::test]
    async fn docker_auth_config_uses_only_auths() {
        let json = br#"{"credsStore":"surely-missing","auths":{"r":{"auth":"dTpw"}}}"#;
        let mut config = DockerConfig::parse(json, "DOCKER_AUTH_CONFIG").unwrap();
        config.auths_only = true;
        let found = config.lookup("r").await.unwrap().unwrap();
        assert_eq!(found.source, "auths[r] in DOCKER_AUTH_CONFIG");
    }

    #[tokio::test]
    async fn a_bad_docker_auth_config_is_called_a_variable_not_a_file() {
        let err = DockerConfig::parse(b"{not json", ENV_VAR).unwrap_err().to_string();
        assert!(err.starts_with("the environment variable DOCKER_AUTH_CONFIG is not valid: "), "{err}");
        assert!(err.ends_with("; fix or unset it") && !err.contains("file"), "{err}");
        let config = DockerConfig::parse(br#"{"auths":{"r":{"auth":"!!"}}}"#, ENV_VAR).unwrap();
        let err = config.lookup("r").await.unwrap_err().to_string();
        assert!(err.contains("DOCKER_AUTH_CONFIG is not valid: auths[r].auth is not base64"), "{err}");
    }
}
