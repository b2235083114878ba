//! Google Artifact Registry (`*-docker.pkg.dev`) and Container Registry (`gcr.io`,
//! `*.gcr.io`): an access token from Application Default Credentials ([`adc`]), used as the
//! password of the user `oauth2accesstoken`. Other hosts are not looked at; with no
//! credentials present the chain goes on silently; credentials that are present but fail are
//! one `Google: ...` error. One token serves every Google registry, so the cache is keyed by
//! the credentials, not the host.

mod adc;
mod external;
mod impersonate;
mod impersonated;
mod metadata;
mod service_account;
mod token;
mod user;

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};

use super::{CloudHttp, TokenCache, host_name};
use crate::auth::{AuthError, Credential, FoundCredential, Source};
use crate::settings::Environment;
use adc::{Adc, AdcSettings};
use token::{AccessToken, PROVIDER};

/// The user name Google's registries take with an access token as the password.
const USERNAME: &str = "oauth2accesstoken";

/// The source for this cloud. It does nothing until asked about a Google host.
pub fn source(env: &Environment, http: &Arc<CloudHttp>) -> Option<Box<dyn Source>> {
    Some(Box::new(GoogleSource {
        settings: AdcSettings::from_env(env),
        http: http.clone(),
        cache: TokenCache::default(),
    }))
}

#[derive(Debug)]
struct GoogleSource {
    settings: AdcSettings,
    http: Arc<CloudHttp>,
    cache: TokenCache,
}

/// `gcr.io`, `*.gcr.io` and `*-docker.pkg.dev`, with any port.
fn is_google_registry(registry: &str) -> bool {
    let host = host_name(registry);
    let named = |suffix: &str| host.strip_suffix(suffix).is_some_and(|name| !name.is_empty());
    // ko's hosts (go-containerregistry's Google keychain): Artifact Registry is
    // `<region>-docker.pkg.dev`, under `pkg.dev` like its other formats.
    host == "gcr.io" || named(".gcr.io") || named(".pkg.dev") || named(".google.com")
}

impl GoogleSource {
    async fn find(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        if !is_google_registry(registry) {
            return Ok(None);
        }
        let Some(adc) = self.settings.find()? else { return Ok(None) };
        let source = adc.describe();
        let fetch = || async {
            let token = fetch(&adc, self.http.client(PROVIDER)?).await?;
            let credential = Credential::Basic { username: USERNAME.to_string(), password: token.token };
            Ok((FoundCredential { credential, source: source.clone() }, token.expires_at))
        };
        self.cache.get_or_fetch(&source, fetch).await.map(Some)
    }
}

async fn fetch(adc: &Adc, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
    match adc {
        Adc::Impersonated(impersonated) => {
            let source = fetch_direct(&impersonated.source, client).await?;
            impersonated.fetch(client, &source.token).await
        }
        direct => fetch_direct(direct, client).await,
    }
}

/// The token of credentials that impersonate no one.
async fn fetch_direct(adc: &Adc, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
    match adc {
        Adc::ServiceAccount(account) => account.fetch(client).await,
        Adc::AuthorizedUser(user) => user.fetch(client).await,
        Adc::External(external) => external.fetch(client).await,
        Adc::Metadata(server) => server.fetch(client).await,
        Adc::Impersonated(imp) => Err(token::error(format!("{}: nested impersonation", imp.file.display()))),
    }
}

impl Source for GoogleSource {
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        self.find(registry).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_registries_with_or_without_a_port() {
        for host in [
            "gcr.io",
            "eu.gcr.io",
            "kotest.gcr.io:5443",
            "us-docker.pkg.dev",
            "europe-west1-docker.pkg.dev:443",
            "x.google.com",
        ] {
            assert!(is_google_registry(host), "{host}");
        }
        for host in [
            "gcr.io.example",
            "evilgcr.io",
            "docker.pkg.dev.example",
            "pkg.dev",
            "google.com",
            "ghcr.io",
            "r.example:5000",
        ] {
            assert!(!is_google_registry(host), "{host}");
        }
    }

    #[tokio::test]
    async fn other_hosts_and_no_credentials_go_on_silently() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let env =
            Environment::from_pairs([("GOOGLE_APPLICATION_CREDENTIALS", &broken), ("HOME", &dir.path().to_path_buf())]);
        let source = source(&env, &Arc::new(CloudHttp::new(&env, &[]))).unwrap();
        assert!(source.lookup("r.example").await.unwrap().is_none(), "not a Google host: the file is not read");
        let err = source.lookup("gcr.io").await.unwrap_err().to_string();
        assert!(err.starts_with("Google: the credentials file ") && err.contains("broken.json is not JSON"), "{err}");
    }
}
