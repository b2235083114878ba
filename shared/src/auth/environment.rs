//! Credentials from the environment of CI systems: `GITHUB_TOKEN` for ghcr.io, with
//! `GITHUB_ACTOR` as the user (GitHub ignores the user name, so a placeholder serves).
//! Cloud keychains (ECR, GCR, ACR) would be further sources here.

use futures_util::future::{BoxFuture, FutureExt, ready};

use super::{AuthError, Credential, FoundCredential, Secret, Source};
use crate::settings::Environment;

pub const GITHUB_REGISTRY: &str = "ghcr.io";

#[derive(Debug, Default)]
pub struct GithubToken {
    token: Option<Secret>,
    actor: Option<String>,
}

impl GithubToken {
    /// `GITHUB_TOKEN` and `GITHUB_ACTOR`, trimmed; blank is unset.
    pub fn new(env: &Environment) -> GithubToken {
        let var = |name: &str| env.trimmed(name).map(str::to_string);
        GithubToken { token: var("GITHUB_TOKEN").map(Secret::new), actor: var("GITHUB_ACTOR") }
    }

    /// The credential for `registry` (normalised host), if it is ghcr.io and a token is set.
    pub fn credential(&self, registry: &str) -> Option<FoundCredential> {
        if registry != GITHUB_REGISTRY {
            return None;
        }
        let token = self.token.clone()?;
        let username = self.actor.clone().unwrap_or_else(|| "unset".to_string());
        Some(FoundCredential {
            credential: Credential::Basic { username, password: token },
            source: "GITHUB_TOKEN".to_string(),
        })
    }
}

impl Source for GithubToken {
    fn lookup<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<FoundCredential>, AuthError>> {
        ready(Ok(self.credential(registry))).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ghcr_gets_the_token() {
        let env = GithubToken { token: Some(Secret::new("ghp_x")), actor: None };
        let found = env.credential("ghcr.io").unwrap();
        assert_eq!(found.credential, Credential::Basic { username: "unset".into(), password: Secret::new("ghp_x") });
        assert_eq!(found.source, "GITHUB_TOKEN");
        assert!(env.credential("r.example").is_none());
        assert!(GithubToken::default().credential("ghcr.io").is_none());
    }

    #[test]
    fn the_token_and_actor_come_trimmed_from_the_environment() {
        let env = Environment::from_pairs([("GITHUB_TOKEN", " ghp_y\n"), ("GITHUB_ACTOR", " octo ")]);
        let found = GithubToken::new(&env).credential("ghcr.io").unwrap();
        assert_eq!(found.credential, Credential::Basic { username: "octo".into(), password: Secret::new("ghp_y") });
        let blank = Environment::from_pairs([("GITHUB_TOKEN", "  ")]);
        assert!(GithubToken::new(&blank).credential("ghcr.io").is_none());
    }
}
