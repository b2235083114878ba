//! Amazon ECR with no login step, as ko does it: for an ECR host (`host`), AWS credentials from
//! the standard chain (`credentials`: access-key variables, web identity through STS
//! (`sts`), the profile files (`profile`), the container and EC2 metadata endpoints
//! (`metadata`)), then `GetAuthorizationToken` for the registry's region (`ecr`), SigV4-signed
//! (`sigv4`). The answer is `AWS` and a password, kept for its lifetime within the run, per
//! registry host. Any other host, or no AWS credentials at all, is `None` without a sound.

mod credentials;
mod ecr;
mod host;
mod metadata;
mod profile;
mod sigv4;
mod sts;

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::OnceCell;

use self::credentials::{AwsCredentials, Chain};
use self::host::EcrHost;
use super::{CloudHttp, TokenCache, host_name};
use crate::auth::{AuthError, Credential, FoundCredential, Source};
use crate::settings::Environment;

/// How this source names itself in messages.
const PROVIDER: &str = "ECR";

/// The source for this cloud: always present, as it answers only for ECR hosts and only
/// when AWS credentials are configured.
pub fn source(env: &Environment, http: &Arc<CloudHttp>) -> Option<Box<dyn Source>> {
    Some(Box::new(Ecr::new(env, http)))
}

#[derive(Debug)]
struct Ecr {
    env: Environment,
    http: Arc<CloudHttp>,
    /// The chain's answer, found once per run (STS and metadata calls are not repeated).
    credentials: OnceCell<Option<AwsCredentials>>,
    tokens: TokenCache,
}

impl Source for Ecr {
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        self.find(registry).boxed()
    }
}

impl Ecr {
    fn new(env: &Environment, http: &Arc<CloudHttp>) -> Ecr {
        Ecr { env: env.clone(), http: http.clone(), credentials: OnceCell::new(), tokens: TokenCache::default() }
    }

    async fn find(&self, registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        let Some(host) = EcrHost::parse(host_name(registry)) else { return Ok(None) };
        let Some(credentials) = self.credentials(host.region()).await? else { return Ok(None) };
        let found = self.tokens.get_or_fetch(registry, || self.fetch(&host, credentials)).await?;
        Ok(Some(found))
    }

    /// The chain's credentials; `region` is the registry's, which STS uses when no region is
    /// configured.
    async fn credentials(&self, region: &str) -> Result<Option<&AwsCredentials>, AuthError> {
        let resolve = || async { Chain::new(&self.env, &self.http, region).resolve().await };
        self.credentials.get_or_try_init(resolve).await.map(Option::as_ref)
    }

    async fn fetch(
        &self,
        host: &EcrHost,
        credentials: &AwsCredentials,
    ) -> Result<(FoundCredential, Option<SystemTime>), AuthError> {
        let token = ecr::authorization_token(&self.http, &self.env, host, credentials).await?;
        let found = FoundCredential {
            credential: Credential::Basic { username: token.username, password: token.password },
            source: format!("ECR ({})", credentials.origin),
        };
        Ok((found, token.expires_at))
    }
}

/// A configured ECR source that failed: `ECR: <detail>`.
fn error(detail: impl Into<String>) -> AuthError {
    AuthError::Cloud { provider: PROVIDER, detail: detail.into() }
}

/// The start of an unexpected answer, on one line, for an error message.
fn excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None if line.is_empty() => "(empty answer)".to_string(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)], registry: &str) -> Result<Option<FoundCredential>, AuthError> {
        let env = Environment::from_pairs(pairs.iter().copied());
        let source = source(&env, &Arc::new(CloudHttp::new(&env, &[]))).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(source.lookup(registry))
    }

    #[test]
    fn other_hosts_and_no_credentials_are_none() {
        let keys =
            [("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:1")];
        assert!(lookup(&keys, "gcr.io").unwrap().is_none());
        assert!(lookup(&keys, "123456789012.dkr.ecr.us-east-1.amazonaws.com.example:443").unwrap().is_none());
        let home = tempfile::tempdir().unwrap();
        let nothing = [("HOME", home.path().to_str().unwrap()), ("AWS_EC2_METADATA_DISABLED", "true")];
        assert!(lookup(&nothing, "123456789012.dkr.ecr.us-east-1.amazonaws.com").unwrap().is_none());
    }

    #[test]
    fn an_unreachable_endpoint_names_ecr_the_region_and_the_endpoint() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:1"),
        ];
        let err = lookup(&keys, "123456789012.dkr.ecr.eu-west-1.amazonaws.com:5000").unwrap_err().to_string();
        assert!(
            err.starts_with("ECR: GetAuthorizationToken in eu-west-1 failed: cannot reach http://127.0.0.1:1: "),
            "{err}"
        );
        assert!(!err.contains("s3cr3t") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\n  b"), "a b");
        assert_eq!(excerpt(""), "(empty answer)");
        assert_eq!(excerpt(&"x".repeat(300)).len(), 203);
    }
}
