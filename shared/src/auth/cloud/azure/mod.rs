//! Azure Container Registry, as `az acr login` and docker-credential-acr-env do it: an Entra ID
//! token for a service principal (`AZURE_CLIENT_SECRET`) or an AKS workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`), exchanged at the registry's `/oauth2/exchange` for an ACR
//! refresh token, which registries take as the password of the all-zero user. This file owns
//! the [`Source`]: which hosts are ACR's, when the source exists, the cache and the credential;
//! [`entra`] owns the Entra ID token and [`exchange`] the registry's exchange.

mod entra;
mod exchange;

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::{BoxFuture, FutureExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{CloudHttp, TokenCache, host_name};
use crate::auth::{AuthError, Credential, FoundCredential, Source};
use crate::settings::Environment;

use entra::Entra;

/// How the source names itself in errors: `ACR: ...`.
const PROVIDER: &str = "ACR";

/// The user name ACR expects with a refresh token as the password.
const USERNAME: &str = "00000000-0000-0000-0000-000000000000";

/// Registry domains of the public cloud and the sovereign ones (China, US Government, Germany).
const DOMAINS: [&str; 4] = [".azurecr.io", ".azurecr.cn", ".azurecr.us", ".azurecr.de"];

/// The source, when `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` are set together with
/// `AZURE_CLIENT_SECRET` or `AZURE_FEDERATED_TOKEN_FILE`.
pub fn source(env: &Environment, http: &Arc<CloudHttp>) -> Option<Box<dyn Source>> {
    let entra = Entra::from_env(env)?;
    Some(Box::new(AcrSource { entra, http: http.clone(), cache: TokenCache::default() }))
}

/// Whether `host` (no port) is a registry of ACR: `<name>.azurecr.io` and the sovereign
/// clouds' domains, with a non-empty name.
fn is_acr_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    DOMAINS.iter().any(|domain| host.strip_suffix(domain).is_some_and(|name| !name.is_empty()))
}

#[derive(Debug)]
struct AcrSource {
    entra: Entra,
    http: Arc<CloudHttp>,
    cache: TokenCache,
}

impl AcrSource {
    /// A fresh refresh token for `registry` (`host[:port]`) and when it expires.
    async fn fetch(&self, registry: &str) -> Result<(FoundCredential, Option<SystemTime>), AuthError> {
        let client = self.http.client(PROVIDER)?;
        let access = self.entra.token(client).await?;
        let refresh = exchange::refresh_token(client, registry, self.entra.tenant(), &access.token).await?;
        let expiry = exchange::expiry(&refresh).or(access.expires_at);
        let credential = Credential::Basic { username: USERNAME.to_string(), password: refresh };
        Ok((FoundCredential { credential, source: format!("{PROVIDER} ({})", self.entra.describe()) }, expiry))
    }
}

impl Source for AcrSource {
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        async move {
            if !is_acr_host(host_name(registry)) {
                return Ok(None);
            }
            self.cache.get_or_fetch(registry, || self.fetch(registry)).await.map(Some)
        }
        .boxed()
    }
}

/// A configured source that failed: `ACR: {detail}`.
fn failed(detail: String) -> AuthError {
    AuthError::Cloud { provider: PROVIDER, detail }
}

/// What a form value leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` percent-encoded for a form value or a URL path segment.
fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// An `application/x-www-form-urlencoded` body of these pairs, in order.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(key, value)| format!("{}={}", encode(key), encode(value))).collect::<Vec<_>>().join("&")
}

/// The first line of a service's message, bounded, with any of `secrets` blanked out: what an
/// error may quote of a response.
fn summary(text: &str, secrets: &[&str]) -> String {
    let mut line = text.trim().lines().next().unwrap_or_default().trim().to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        line = line.replace(secret, "***");
    }
    if line.chars().count() > 300 {
        line = line.chars().take(300).chain("...".chars()).collect();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_acr_domains_are_acr_hosts() {
        for host in ["kotest.azurecr.io", "r.azurecr.cn", "r.azurecr.us", "r.azurecr.de", "R.AzureCR.io"] {
            assert!(is_acr_host(host), "{host}");
        }
        for host in ["azurecr.io", ".azurecr.io", "r.azurecr.io.example", "r.azurecr.com", "ghcr.io", "gcr.io"] {
            assert!(!is_acr_host(host), "{host}");
        }
        assert!(is_acr_host(host_name("kotest.azurecr.io:5443")));
    }

    fn configured() -> Environment {
        Environment::from_pairs([("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_SECRET", "s")])
    }

    #[tokio::test]
    async fn other_hosts_are_not_looked_up() {
        let env = configured();
        let source = source(&env, &Arc::new(CloudHttp::new(&env, &[]))).expect("configured");
        for registry in ["ghcr.io", "r.example:5000", "azurecr.io"] {
            assert!(source.lookup(registry).await.unwrap().is_none(), "{registry}");
        }
    }

    #[test]
    fn the_source_exists_only_when_configured() {
        let env = |pairs: &[(&str, &str)]| Environment::from_pairs(pairs.iter().copied());
        let http = |env: &Environment| Arc::new(CloudHttp::new(env, &[]));
        let with = |pairs: &[(&str, &str)]| source(&env(pairs), &http(&env(pairs))).is_some();
        assert!(source(&configured(), &http(&configured())).is_some());
        assert!(with(&[("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t"), ("AZURE_FEDERATED_TOKEN_FILE", "/f")]));
        assert!(!with(&[("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")]));
        assert!(!with(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_SECRET", "s")]));
        assert!(!with(&[("AZURE_CLIENT_ID", "c"), ("AZURE_CLIENT_SECRET", "s")]));
        assert!(!with(&[("AZURE_CLIENT_ID", " "), ("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_SECRET", "s")]));
    }

    #[test]
    fn forms_are_percent_encoded_in_order() {
        assert_eq!(form(&[("b", "x y/z"), ("a", "1+2=3&-._~")]), "b=x%20y%2Fz&a=1%2B2%3D3%26-._~");
    }

    #[test]
    fn summaries_are_one_bounded_line_without_secrets() {
        assert_eq!(summary("AADSTS7000215: bad s3cret.\r\nTrace ID: x", &["s3cret", ""]), "AADSTS7000215: bad ***.");
        assert_eq!(summary(&"x".repeat(400), &[]).len(), 303);
        assert_eq!(summary("", &[]), "");
    }
}
