//! Docker's `config.json`: the `auths` map with base64 `user:password` or an identity token,
//! and Docker Hub's several spellings of its own key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

use super::{AuthError, Credential, FoundCredential, Secret};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(skip)]
    origin: String,
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
}

impl DockerConfig {
    pub fn from_env() -> Result<Option<DockerConfig>, AuthError> {
        if let Some(json) = std::env::var_os("DOCKER_AUTH_CONFIG").filter(|v| !v.is_empty()) {
            let json = json.to_string_lossy().into_owned();
            return DockerConfig::parse(json.as_bytes(), "DOCKER_AUTH_CONFIG").map(Some);
        }
        let path = config_dir().join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => DockerConfig::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AuthError::BadConfig { path, detail: e.to_string() }),
        }
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<DockerConfig, AuthError> {
        let mut config: DockerConfig = serde_json::from_slice(bytes)
            .map_err(|e| AuthError::BadConfig { path: PathBuf::from(origin), detail: e.to_string() })?;
        config.origin = origin.to_string();
        Ok(config)
    }

    pub fn lookup(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        let wanted = normalise_key(registry);
        let Some((key, entry)) = self.auths.iter().find(|(k, _)| normalise_key(k) == wanted) else {
            return Ok(None);
        };
        let source = format!("auths[{key}] in {}", self.origin);
        if let Some(token) = entry.identity_token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(FoundCredential { credential: Credential::IdentityToken(Secret::new(token)), source }));
        }
        let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
            (Some(auth), _, _) if !auth.is_empty() => {
                let bad = |detail: &str| AuthError::BadConfig {
                    path: PathBuf::from(&self.origin),
                    detail: format!("auths[{key}].auth {detail}"),
                };
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

/// `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".docker")
}

/// Docker Hub is `docker.io`, `index.docker.io`, `registry-1.docker.io` or `https://index.docker.io/v1/`.
fn normalise_key(key: &str) -> String {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "index.docker.io".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_basic_auth_under_any_docker_hub_spelling() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#;
        let config = DockerConfig::parse(json, "test").unwrap();
        let found = config.lookup("index.docker.io").unwrap().unwrap();
        assert_eq!(found.credential, Credential::Basic { username: "user".into(), password: Secret::new("pass") });
        assert!(config.lookup("ghcr.io").unwrap().is_none());
    }

    #[test]
    fn identity_tokens_win_over_basic_auth() {
        let json = br#"{"auths":{"r.example":{"auth":"dXNlcjpwYXNz","identitytoken":"tok"}}}"#;
        let found = DockerConfig::parse(json, "t").unwrap().lookup("r.example").unwrap().unwrap();
        assert_eq!(found.credential, Credential::IdentityToken(Secret::new("tok")));
    }

    #[test]
    fn malformed_files_name_themselves() {
        let err = DockerConfig::parse(b"{not json", "/x/config.json").unwrap_err();
        assert!(err.to_string().contains("/x/config.json"));
        let err = DockerConfig::parse(br#"{"auths":{"r":{"auth":"!!"}}}"#, "/c.json").unwrap().lookup("r").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}
