//! Cloud registries that need no login step: Amazon ECR, Google Artifact Registry and
//! Container Registry, and Azure Container Registry, with the credentials the environment of
//! a CI job or a pod already holds (access keys, a workload identity, a metadata server).
//! Each provider is a [`Source`] that answers only for its own hosts and only when its
//! configuration is present, so the chain goes on silently everywhere else; a provider that
//! is configured but fails is an [`AuthError::Cloud`] naming it and the cause. Registry
//! credentials are fetched on first use and kept for their lifetime within the run
//! ([`TokenCache`]). Nothing here prints a secret.

mod aws;
mod azure;
mod cache;
mod google;
mod http;

use std::sync::Arc;

#[cfg(doc)]
use super::AuthError;
use super::Source;
use crate::settings::Environment;

pub use cache::TokenCache;
pub use http::CloudHttp;

/// The cloud sources in ko's order, each present only when the environment configures it:
/// ECR, then Google; Azure goes after GitHub's token (see [`super::Keychain::new`]).
pub struct CloudSources {
    pub aws: Option<Box<dyn Source>>,
    pub google: Option<Box<dyn Source>>,
    pub azure: Option<Box<dyn Source>>,
}

impl CloudSources {
    pub fn new(env: &Environment) -> CloudSources {
        let http = Arc::new(CloudHttp::new(env, &[]));
        CloudSources {
            aws: aws::source(env, &Arc::new(CloudHttp::new(env, &["AWS_CA_BUNDLE"]))),
            google: google::source(env, &http),
            azure: azure::source(env, &http),
        }
    }
}

/// `host[:port]` → `host`: the host patterns of the clouds are matched without a port.
pub fn host_name(registry: &str) -> &str {
    match registry.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    }
}

/// An error and its causes on one line, each cause once (reqwest's own message leaves out why
/// a connection failed, and some causes repeat what their error already says).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn error_chains_keep_the_causes() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = WithSource("error sending request", inner);
        assert_eq!(error_chain(&outer), "error sending request: connection refused");
    }

    #[derive(Debug)]
    struct WithSource(&'static str, std::io::Error);

    impl std::fmt::Display for WithSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for WithSource {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn ports_are_not_part_of_the_host() {
        assert_eq!(super::host_name("1.dkr.ecr.us-east-1.amazonaws.com:5443"), "1.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(super::host_name("gcr.io"), "gcr.io");
    }
}
